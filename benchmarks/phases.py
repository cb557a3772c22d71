"""Where the time of one ``cluster.up`` goes: its progress events and the engine's container events.

``cluster.up(..., progress=callback)`` calls the callback with a
:class:`clusterkit.progress.Event` as each step begins (``image``, ``start``,
``wait``, ``ready``); a phase lasts from its event to the next one. The engine's
events (container create, start, healthy) are read back after the fact.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

#: The steps of ``up`` in order (clusterkit.progress.UP_STEPS), with what each phase is.
UP_STEPS = ("image", "start", "wait", "ready")
PHASES: tuple[tuple[str, str | None, str | None], ...] = (
    ("before the first event", None, None),
    ("image (prepare: node image, ports)", "image event", "start event"),
    ("start (start the nodes)", "start event", "wait event"),
    ("wait (every worker registered)", "wait event", "ready event"),
    ("ready to `up` returned", "ready event", "up returned"),
)
#: Rows of the compose profile: (mark, label).
PROFILE_ROWS = (
    ("image event", "`image` event: checking the node image"),
    ("start event", "`start` event: the containers are created (engine API, all at once)"),
    ("scheduler create", "scheduler container created"),
    ("scheduler start", "scheduler container started"),
    ("worker create (first)", "first worker container created"),
    ("worker start (first)", "first worker container started"),
    ("worker start (last)", "last worker container started"),
    ("wait event", "`wait` event: waiting for the workers to register"),
    ("ready event", "`ready` event: all workers registered"),
    ("up returned", "cluster.up returned"),
)


class PhaseRecorder:
    """The ``progress`` callback of one ``up``: the offset of each step's first event."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.marks: dict[str, float] = {}
        self.untyped = 0  # progress given as plain text (a runtime without events)

    def start(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, event: Any) -> None:
        step, at = getattr(event, "step", None), getattr(event, "at", None)
        if isinstance(step, str) and isinstance(at, int | float):
            self.marks.setdefault(f"{step} event", at - self.t0)
        else:
            self.untyped += 1

    def returned(self) -> dict[str, float]:
        """The marks, with ``up returned``; call right after ``up`` returned."""
        self.marks["up returned"] = time.monotonic() - self.t0
        return dict(self.marks)


def has_events(marks: list[dict[str, float]]) -> bool:
    return any(key.endswith(" event") for m in marks for key in m)


def engine_marks(name: str, t0_wall: float) -> dict[str, float]:
    """Offsets (s after ``t0_wall``) of the create, start and healthy events of a cluster's containers."""
    import docker

    client = docker.from_env(timeout=30)
    found: dict[str, list[float]] = {}
    try:
        events = client.events(
            since=int(t0_wall) - 1,
            until=int(time.time()) + 1,
            decode=True,
            filters={"type": "container", "label": [f"clusterkit.cluster={name}"]},
        )
        for event in events:
            attrs = event.get("Actor", {}).get("Attributes", {})
            role = attrs.get("clusterkit.role", "?")
            action = str(event.get("Action", "")).replace("health_status: ", "")
            if action in ("create", "start", "healthy"):
                found.setdefault(f"{role} {action}", []).append(event.get("timeNano", 0) / 1e9 - t0_wall)
    finally:
        client.close()
    marks: dict[str, float] = {}
    for key, times in found.items():
        if key.startswith("scheduler"):
            marks[key] = min(times)
        else:
            marks[f"{key} (first)"] = min(times)
            marks[f"{key} (last)"] = max(times)
    return marks


def _spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def profile_medians(profiles: list[dict[str, float]]) -> list[tuple[str, float, float, float]]:
    """(label, median, min, max) of each profile row some run has."""
    rows = []
    for key, label in PROFILE_ROWS:
        values = [p[key] for p in profiles if key in p]
        if values:
            rows.append((label, *_spread(values)))
    return rows


def phase_medians(marks: list[dict[str, float]]) -> dict[str, tuple[float, float, float]]:
    """Phase label -> (median, min, max) duration, over the runs that have both ends."""
    found: dict[str, tuple[float, float, float]] = {}
    firsts = [min(v for k, v in m.items() if k.endswith(" event")) for m in marks if has_events([m])]
    if firsts:
        found[PHASES[0][0]] = _spread(firsts)
    for label, begin, end in PHASES[1:]:
        values = [m[end] - m[begin] for m in marks if begin and end and begin in m and end in m]
        if values:
            found[label] = _spread(values)
    return found


def mark_median(marks: list[dict[str, float]], key: str) -> float | None:
    values = [m[key] for m in marks if key in m]
    return statistics.median(values) if values else None


def span(marks: list[dict[str, float]], begin: str, end: str) -> float | None:
    """Median of ``end - begin`` over the runs that have both marks."""
    values = [m[end] - m[begin] for m in marks if begin in m and end in m]
    return statistics.median(values) if values else None
