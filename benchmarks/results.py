"""What a run measured: series of values, start-up phases and profiles, machine and images.

:class:`Results` is all the report and the plot read, and what ``results.json``
holds, so a report can be written again from a stored run (``--report-only``).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Keys of the profiles in results.json files written before the progress events.
LEGACY_PROFILE_KEYS = {
    "compose up start": "start event",
    "wait start": "wait event",
    "wait end": "ready event",
}


@dataclass
class Series:
    """The runs of one measurement."""

    key: str
    bench: str
    what: str
    runtime: str
    unit: str = "s"  # "s" or "tasks/s"
    values: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    n: int | None = None  # P4: the worker count

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    @property
    def low(self) -> float | None:
        return min(self.values) if self.values else None

    @property
    def high(self) -> float | None:
        return max(self.values) if self.values else None


@dataclass
class Results:
    """Everything one run measured or noted."""

    series: dict[str, Series] = field(default_factory=dict)
    #: Offsets (s after ``cluster.up`` was called) of the progress events of every ``up``, by series key.
    phases: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    #: Progress-event offsets plus the engine's container events of the compose ``up`` of P1 / P2.
    profiles: dict[str, list[dict[str, float]]] = field(default_factory=lambda: {"dask": [], "spark": []})
    images: dict[str, dict[str, str]] = field(default_factory=dict)
    #: "machine", "one-offs" (text), "one-off numbers" (seconds).
    extras: dict[str, Any] = field(default_factory=dict)
    warmups: list[str] = field(default_factory=list)
    #: How the run was made: command, date, only, counts, repeat, warmup, elapsed, loads.
    run: dict[str, Any] = field(default_factory=dict)

    def add(self, key: str, value: float | None = None, error: str | None = None, **meta: Any) -> None:
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = Series(key=key, **meta)
        if value is not None:
            series.values.append(value)
        if error is not None:
            series.errors.append(error)

    @property
    def machine(self) -> dict[str, str]:
        return self.extras.get("machine", {})

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.run.get("command", ""),
            "date": self.run.get("date", ""),
            "machine": self.machine,
            "images": self.images,
            "run": self.run,
            "series": {k: asdict(v) for k, v in self.series.items()},
            "phases": self.phases,
            "profiles": self.profiles,
            "extras": self.extras,
            "warmups": self.warmups,
        }

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2))

    @classmethod
    def load(cls, path: Path) -> Results:
        """A stored run, including files written by the one-file ``bench_cluster`` script."""
        data = json.loads(path.read_text())
        results = cls(
            series={k: Series(**v) for k, v in data.get("series", {}).items()},
            phases=data.get("phases", {}),
            images=data.get("images", {}),
            extras=data.get("extras", {}),
            warmups=data.get("warmups", []),
            run=data.get("run", {}),
        )
        results.extras.setdefault("machine", data.get("machine", {}))
        results.run.setdefault("command", data.get("command", ""))
        results.run.setdefault("date", data.get("date", ""))
        for backend, profiles in data.get("profiles", {}).items():
            results.profiles[backend] = [
                {LEGACY_PROFILE_KEYS.get(k, k): v for k, v in p.items() if k != "compose up end"}
                for p in profiles
            ]
        if not results.phases:
            # Old files: the phases of the profiled compose runs are all there is.
            for backend, key in (("dask", "P1/compose"), ("spark", "P2/compose")):
                marks = [
                    {k: v for k, v in p.items() if k.endswith(" event") or k == "up returned"}
                    for p in results.profiles.get(backend, [])
                ]
                if any(len(m) > 1 for m in marks):
                    results.phases[key] = marks
        return results


def load_fresh(path: Path) -> dict[str, Any] | None:
    """What ``python -m benchmarks.fresh`` stored (P7a / P7b), or ``None`` if there is nothing usable.

    The file: ``{"date": ISO, "command": str, "runs": {"P7a": {"seconds": float,
    "steps": {step: seconds}}, "P7b": {...}}}``.
    """
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), dict):
        return None
    return data
