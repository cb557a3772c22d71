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
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from clusterkit.facts import FACTS, BackendFacts

#: Packages every image has and no backend owns.
DATA_PACKAGES = ("numpy", "pandas", "pyarrow")
#: Keys of ``local_versions`` that are not Python packages (``java`` is in a ``foreign_packages``).
NOT_PACKAGES = ("python", "java", "lock")


def _own_packages(facts: BackendFacts) -> tuple[str, ...]:
    """A backend's packages: those that must agree, then those the other backends' images lack."""
    others = (p for f in FACTS.values() if f is not facts for p in f.foreign_packages)
    return (*facts.critical_packages, *others)


def _tracked() -> tuple[str, ...]:
    """The default backend's packages, the data packages, then every other backend's; once each."""
    first, *rest = FACTS.values()
    found = [*_own_packages(first), *DATA_PACKAGES, *(p for f in rest for p in _own_packages(f))]
    return tuple(dict.fromkeys(p for p in found if p not in NOT_PACKAGES))


#: What the drift check and the status compare, in this order.
TRACKED_PACKAGES = _tracked()


def _lock_hash() -> str | None:
    """The lock this environment was installed from: a node's image says so in
    ``CLUSTERKIT_LOCK_HASH``; a client from a checkout hashes ``images/requirements.lock``."""
    found = os.environ.get("CLUSTERKIT_LOCK_HASH")
    if found:
        return found
    from clusterkit.lockhash import lock_hash  # standard library only: no image builder here

    try:
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


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """``{name: version}`` of the installed ones among ``names``."""
    from importlib import metadata  # here: slow to import, and nodes start often

    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def local_versions(java: bool = False) -> dict[str, str]:
    """Python, tracked package versions and the lock hash of this interpreter.

    Absent packages are omitted; ``java=True`` adds the JVM's version (Spark). A node
    built with a project's dependencies also reports the packages the project named
    (``CLUSTERKIT_PROJECT_PACKAGES``, set by that image layer).
    """
    project = [n for n in os.environ.get("CLUSTERKIT_PROJECT_PACKAGES", "").split(",") if n]
    versions = {"python": platform.python_version(), **package_versions([*TRACKED_PACKAGES, *project])}
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
    #: The machine it runs on, where the runtime knows it (a swarm node's host name).
    node: str | None = None


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
    #: The notebook beside the cluster (``up --notebook``), with its token: what a browser here opens.
    notebook_url: str | None = None
    #: Spark: the Connect server, as ``sc://localhost:PORT`` (never its token: status lands in CI logs).
    connect_url: str | None = None
    #: ``healthy``, ``degraded`` or ``down`` (:mod:`clusterkit.health`): the scheduler's view
    #: compared with the runtime's nodes and the wanted count; ``None`` where no runtime is known.
    health: str | None = None
    #: Workers the spec (or the last ``scale``) asks for.
    wanted: int | None = None
    #: Every node as its runtime sees it (``health.NodeState``: running, restarting, exited, missing).
    nodes: tuple[Any, ...] = ()
    #: Why the cluster is not healthy, one line each.
    problems: tuple[str, ...] = ()
    #: What this status call repaired (a node started again, workers added).
    repairs: tuple[str, ...] = ()

    @property
    def alive_workers(self) -> tuple[WorkerStatus, ...]:
        return tuple(w for w in self.workers if w.state.upper() in ("ALIVE", "RUNNING"))

    @classmethod
    def not_connected(cls, backend: str, hint: str) -> ClusterStatus:
        """What ``report_status()`` returns with no connection to report on (instead of raising)."""
        return cls(
            backend=backend,
            scheduler_address="",
            state="NOT CONNECTED",
            dashboard_url=None,
            health="down",
            problems=(f"not connected: {hint}",),
        )

    @property
    def exit_code(self) -> int:
        """What ``clusterkit status`` exits with: 0 healthy, 3 degraded, 4 down."""
        from clusterkit.health import EXIT_CODES, HEALTHY

        return EXIT_CODES.get(self.health or HEALTHY, 0)

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
        health = ""
        if self.health:
            colour = {"healthy": "green", "degraded": "yellow"}.get(self.health, "red")
            health = f"  health [bold {colour}]{self.health}[/bold {colour}]"
        console.print(
            f"[bold]{title}[/bold]  scheduler [cyan]{self.scheduler_address}[/cyan]  "
            f"state [bold]{self.state}[/bold]{health}"
        )
        if self.dashboard_url:
            console.print(f"dashboard: {self.dashboard_url}")
        if self.notebook_url:
            console.print(f"notebook: {self.notebook_url}", soft_wrap=True)  # whole, to copy and click
        if self.connect_url:
            console.print(f"spark connect: {self.connect_url}")
        table = Table(show_header=True, header_style="bold")
        on_nodes = any(w.node for w in self.workers)  # a swarm says where each worker runs
        for column in ("worker", "address", "cores", "memory", "state", *(("node",) if on_nodes else ())):
            table.add_column(column, justify="right" if column in ("cores", "memory") else "left")
        for w in sorted(self.workers, key=lambda w: w.name):
            row = [w.name, w.address, str(w.cores), _human(w.memory), w.state]
            table.add_row(*row, *((w.node or "",) if on_nodes else ()))
        console.print(table)
        wanted = self.wanted if self.wanted is not None else len(self.workers)
        console.print(f"{len(self.alive_workers)} of {wanted} workers alive")
        if self.nodes:
            nodes = Table(show_header=True, header_style="bold")
            for column in ("node", "role", "state", "exit code", "restarts", "where"):
                nodes.add_column(column, justify="right" if column in ("exit code", "restarts") else "left")
            for n in self.nodes:
                code = "" if n.exit_code is None else str(n.exit_code)
                where = n.where + (f" ({n.detail})" if n.detail else "")
                nodes.add_row(n.name, n.role, n.state, code, str(n.restarts), where)
            console.print(nodes)
        for problem in self.problems:
            console.print(f"[yellow]problem:[/yellow] {problem}")
        for repair in self.repairs:
            console.print(f"[cyan]repaired:[/cyan] {repair}")
        client = self.versions.get("client")
        if client:
            console.print("versions: " + ", ".join(f"{k} {v}" for k, v in sorted(client.items())))


def _human(size: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"
