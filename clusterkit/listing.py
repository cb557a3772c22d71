"""What runs, across every runtime (``clusterkit ls``), and who still holds a cluster (``down --all``, ``gc``).

Looking never repairs: a row is each runtime's list of cluster names
(:meth:`Runtime.clusters`) and its status without healing
(:meth:`Runtime.status` with ``repair=False``). Whether a cluster is held by
a live owner (a test session, a Python ``Cluster``) is decided as ``gc``
decides it: by the lease the owner renews on the engine
(:mod:`clusterkit.runtimes.leases`) where the cluster has one, else by the
owner's PID and start time (:mod:`clusterkit.records`).
"""

from __future__ import annotations

import json
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clusterkit import labels, records, runtimes
from clusterkit.errors import ClusterKitError, ClusterNotFound, EngineUnavailable
from clusterkit.runtimes import leases
from clusterkit.runtimes.base import Runtime
from clusterkit.runtimes.local import LocalRuntime


@dataclass(frozen=True)
class Listed:
    """One running cluster as ``clusterkit ls`` shows it."""

    name: str
    backend: str
    runtime: str
    #: Workers the spec (or the last ``scale``) asks for; ``None`` when it could not be read.
    wanted: int | None
    #: Workers the scheduler has registered (alive).
    registered: int
    #: ``healthy``, ``degraded``, ``down`` (:mod:`clusterkit.health`), or ``unknown``.
    health: str
    #: When the cluster's scheduler was created (epoch seconds), where the runtime says.
    created: float | None

    def to_dict(self) -> dict[str, Any]:
        """The keys ``ls --json`` prints; ``created`` in ISO 8601 (UTC), or ``None``."""
        when = None
        if self.created is not None:
            when = datetime.fromtimestamp(self.created, UTC).isoformat(timespec="seconds")
        return {
            "name": self.name,
            "backend": self.backend,
            "runtime": self.runtime,
            "wanted": self.wanted,
            "registered": self.registered,
            "health": self.health,
            "created": when,
        }


def runtimes_of(runtime: str | Runtime | None) -> list[Runtime]:
    """The one runtime named, or every runtime (in ``runtimes.RUNTIMES`` order)."""
    if runtime:
        return [runtimes.get_runtime(runtime)]
    return [runtimes.get_runtime(n) for n in runtimes.RUNTIMES]


def running(runtime: str | Runtime | None = None) -> list[tuple[Runtime, str]]:
    """Every running cluster as (its runtime, its name): what ``ls`` lists."""
    return [(rt, name) for rt in runtimes_of(runtime) for name in rt.clusters()]


def clusters(runtime: str | Runtime | None = None) -> list[Listed]:
    """Every running cluster with its health, sorted by name; nothing is repaired."""
    found = [_row(rt, name) for rt, name in running(runtime)]
    return sorted((row for row in found if row is not None), key=lambda r: (r.name, r.runtime))


def _row(rt: Runtime, name: str) -> Listed | None:
    try:
        found = rt.status(name, repair=False)
    except ClusterNotFound:
        return None  # gone since the runtime listed it
    except ClusterKitError:
        backend = ""
        with suppress(Exception):  # a row with what is known beats no listing
            backend = rt.spec_of(name).backend
        return Listed(name, backend, rt.name, None, 0, "unknown", created(rt, name))
    return Listed(
        name=name,
        backend=found.backend,
        runtime=rt.name,
        wanted=found.wanted,
        registered=len(found.alive_workers),
        health=found.health or "unknown",
        created=created(rt, name),
    )


def created(rt: Runtime, name: str) -> float | None:
    """When cluster ``name``'s scheduler was created (epoch seconds); ``None`` where unknown.

    Local processes: the oldest recorded node process; containers: the
    scheduler container; a swarm: the scheduler service.
    """
    try:
        if rt.name == "local":
            state = json.loads((LocalRuntime().root / name / "state.json").read_text())
            times = [float(p["create_time"]) for p in state.get("processes", []) if p.get("create_time")]
            return min(times) if times else None
        selector = {"label": labels.selector(cluster=name, role="scheduler")}
        if rt.name == "swarm":
            found = [s.attrs.get("CreatedAt") for s in rt.docker.services.list(filters=selector)]
        else:
            listed = rt.docker.containers.list(all=True, filters=selector, ignore_removed=True)
            found = [c.attrs.get("Created") for c in listed]
        times = [leases.engine_time(t) for t in found if t]
        return min(times) if times else None
    except Exception:  # noqa: BLE001 - an age is a nicety; the listing goes on without it
        return None


def age(seconds: float | None) -> str:
    """A short age, as ``docker ps`` shows one.

    >>> age(42), age(600), age(7200), age(3 * 86400), age(None)
    ('42s', '10m', '2h', '3d', '-')
    """
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def render(rows: list[Listed], console: Any, now: float) -> None:
    """The ``ls`` table: name, backend, runtime, wanted and registered workers, health, age."""
    from rich.table import Table

    table = Table(box=None, padding=(0, 2, 0, 0), pad_edge=False)
    for column in ("name", "backend", "runtime", "wanted", "registered", "health", "age"):
        table.add_column(column, justify="right" if column in ("wanted", "registered", "age") else "left")
    for r in rows:
        colour = {"healthy": "green", "degraded": "yellow"}.get(r.health, "red")
        wanted = "?" if r.wanted is None else str(r.wanted)
        when = None if r.created is None else now - r.created
        table.add_row(
            r.name, r.backend, r.runtime, wanted, str(r.registered), f"[{colour}]{r.health}[/]", age(when)
        )
    console.print(table)


# -- who holds a cluster ---------------------------------------------------------------


def held_by_live_owner(rt: Runtime, name: str) -> bool:
    """Does a live owner hold cluster ``name`` (a test session's fixture, a Python ``Cluster``)?

    A cluster ``clusterkit up`` started is held by no one once it is ready.
    """
    record = records.load(name)
    found: dict[str, str] = {}
    newest = 0.0
    if rt.name != "local":
        try:
            selector = {"label": labels.selector(cluster=name, runtime=rt.name)}
            for c in rt.docker.containers.list(all=True, filters=selector, ignore_removed=True):
                found = found or dict(c.labels)
                newest = max(newest, leases.engine_time(c.attrs.get("Created") or "1970-01-01T00:00:00Z"))
        except EngineUnavailable:
            found = {}
    if found.get(leases.LEASE) == "1":  # a test cluster parked for reuse is held by no one
        return not leases.expired(rt.docker, name, newest) and not leases.idle(rt.docker, name)
    if labels.SESSION_PID in found and (found.get(records.HELD) == "1" or record.get("held")):
        return records.owner_alive(found)
    owner = record.get("owner") or {}
    if record.get("held") and owner.get("pid"):
        return records.alive(int(owner["pid"]), owner.get("started"), owner.get("ticks"))
    return False


def kept_for_reuse() -> list[str]:
    """The test clusters kept for reuse across pytest runs (:mod:`clusterkit.runtimes.kept`)."""
    from clusterkit.engine import docker_client
    from clusterkit.runtimes.kept import kept

    try:
        return sorted({k.name for k in kept(docker_client())})
    except EngineUnavailable:
        return []


def abandoned(everything: bool = False) -> list[tuple[str, str]]:
    """The clusters ``gc`` removes, as (runtime, name): their owner died before it was done with them.

    See :func:`clusterkit.cluster.gc`; ``everything`` adds live test sessions' clusters.
    """
    return [*_abandoned_on_engine(everything), *_abandoned_here()]


def _abandoned_on_engine(everything: bool) -> list[tuple[str, str]]:
    from clusterkit.engine import docker_client

    owners: dict[tuple[str, str], dict[str, str]] = {}
    newest: dict[tuple[str, str], float] = {}
    try:
        client = docker_client()
        wanted = {"label": [f"{labels.PROJECT}={labels.PROJECT_VALUE}", labels.SESSION_PID]}
        for resource in [
            *client.containers.list(all=True, filters=wanted, ignore_removed=True),
            *client.networks.list(filters=wanted),
        ]:
            found = getattr(resource, "labels", None) or resource.attrs.get("Labels") or {}
            key = (found.get(labels.RUNTIME, ""), found.get(labels.CLUSTER, ""))
            owners.setdefault(key, dict(found))
            made = leases.engine_time(resource.attrs.get("Created") or "1970-01-01T00:00:00Z")
            newest[key] = max(newest.get(key, 0.0), made)
    except EngineUnavailable:
        return []
    now = leases.engine_now(client) if owners else 0.0
    gone = []
    for (runtime_name, name), found in sorted(owners.items()):
        if runtime_name not in runtimes.RUNTIMES or not name:
            continue
        leased = found.get(leases.LEASE) == "1"
        dead = leases.expired(client, name, newest[(runtime_name, name)], now) if leased else None
        dead = records.orphaned(name, found) if dead is None else dead
        if (everything and runtime_name == "testcontainers") or dead:
            gone.append((runtime_name, name))
    return gone


def _abandoned_here() -> list[tuple[str, str]]:
    """Local clusters whose recorded owner is gone (one ``clusterkit up`` never finished, a held one)."""
    root = LocalRuntime().root
    gone = []
    for state in sorted(root.glob("*/state.json")) if root.is_dir() else []:
        name = state.parent.name
        owner = records.load(name).get("owner") or {}
        if not owner.get("pid"):
            continue  # no record of who started it: `clusterkit down` removes it
        found = {labels.SESSION_PID: str(owner["pid"])}
        if owner.get("started"):
            found[records.OWNER_STARTED] = f"{owner['started']:.3f}"
        if owner.get("ticks") is not None:
            found[records.OWNER_TICKS] = str(owner["ticks"])
        if records.orphaned(name, found):
            gone.append(("local", name))
    return gone
