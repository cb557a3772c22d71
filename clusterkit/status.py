"""What a cluster looks like right now, as data, a table and JSON.

Both backends fill the same ``ClusterStatus`` so scripts read one shape
(``clusterkit status --json``) and people read one table.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

# What the drift check and the status compare, in this order.
TRACKED_PACKAGES = (
    "dask",
    "distributed",
    "cloudpickle",
    "msgpack",
    "tornado",
    "numpy",
    "pandas",
    "pyarrow",
    "pyspark",
    "py4j",
)


def _lock_hash() -> str | None:
    """The lock this environment was installed from: a node's image says so in
    ``CLUSTERKIT_LOCK_HASH``; a client from a checkout hashes ``images/requirements.lock``."""
    found = os.environ.get("CLUSTERKIT_LOCK_HASH")
    if found:
        return found
    try:
        from clusterkit.images.locks import lock_hash

        return lock_hash()
    except Exception:  # noqa: BLE001 - an installed clusterkit has no images/ folder
        return None


def _java_version() -> str | None:
    java = shutil.which(
        "java", path=os.path.join(os.environ.get("JAVA_HOME", "/nonexistent"), "bin")
    ) or shutil.which("java")
    if not java:
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=20).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "([^"]+)"', out)
    return match.group(1) if match else None


def local_versions(java: bool = False) -> dict[str, str]:
    """Python, tracked package versions and the lock hash of this interpreter.

    Absent packages are omitted; ``java=True`` adds the JVM's version (Spark).
    """
    from importlib import metadata  # here: slow to import, and nodes start often

    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    lock = _lock_hash()
    if lock:
        versions["lock"] = lock[:12]
    if java:
        found = _java_version()
        if found:
            versions["java"] = found
    return versions


@dataclass(frozen=True)
class WorkerStatus:
    """One worker as the scheduler sees it."""

    name: str
    address: str
    cores: int
    memory: int
    state: str


@dataclass(frozen=True)
class ClusterStatus:
    """A cluster as its scheduler reports it.

    ``versions`` maps a node (``client``, ``scheduler`` or a worker name) to
    ``{package: version}``.
    """

    backend: str
    scheduler_address: str
    state: str
    dashboard_url: str | None
    workers: tuple[WorkerStatus, ...] = ()
    versions: dict[str, dict[str, str]] = field(default_factory=dict)
    name: str | None = None
    runtime: str | None = None
    #: Filled by ``report_status(check=True)``: graded ``drift.Difference`` items.
    differences: tuple[Any, ...] = ()

    @property
    def alive_workers(self) -> tuple[WorkerStatus, ...]:
        return tuple(w for w in self.workers if w.state.upper() in ("ALIVE", "RUNNING"))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def render(self, console: Any = None) -> None:
        """Print the status as a table (``rich``) for people."""
        from rich.console import Console
        from rich.table import Table

        console = console or Console()
        title = f"{self.name or self.backend} ({self.backend}"
        title += f", {self.runtime})" if self.runtime else ")"
        console.print(
            f"[bold]{title}[/bold]  scheduler [cyan]{self.scheduler_address}[/cyan]  "
            f"state [bold]{self.state}[/bold]"
        )
        if self.dashboard_url:
            console.print(f"dashboard: {self.dashboard_url}")
        table = Table(show_header=True, header_style="bold")
        for column in ("worker", "address", "cores", "memory", "state"):
            table.add_column(column, justify="right" if column in ("cores", "memory") else "left")
        for w in sorted(self.workers, key=lambda w: w.name):
            table.add_row(w.name, w.address, str(w.cores), _human(w.memory), w.state)
        console.print(table)
        console.print(f"{len(self.alive_workers)} of {len(self.workers)} workers alive")
        client = self.versions.get("client")
        if client:
            console.print("versions: " + ", ".join(f"{k} {v}" for k, v in sorted(client.items())))


def _human(size: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"
