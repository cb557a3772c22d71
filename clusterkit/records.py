"""What this machine remembers about a cluster between commands, and who owns it.

One small JSON file per cluster, ``<run dir>/.records/<name>.json`` (the run
dir of :func:`clusterkit.paths.run_root`), written by ``up``,
``scale`` and the reconciler:

- ``wanted``: the worker count the spec or the last ``scale`` asks for (what
  ``status`` compares with, and what the reconciler restores);
- ``owner``: the process that ran ``up`` (PID and start time), ``ready``:
  whether that ``up`` finished, ``held``: whether the owner keeps the cluster
  for its whole life (a Python ``Cluster``, a pytest session) rather than
  only until it is ready (``clusterkit up``);
- ``restarts``: nodes the kit started again, by name;
- ``stopping``: ``down`` has begun (a reconciler must not start anything now);
- ``supervisor``: the detached reconciler ``clusterkit up`` leaves running.

Every resource ``up`` creates also carries the owner as labels
(:func:`owner_labels`), so :func:`orphaned` (``clusterkit gc``) can tell a
cluster whose ``up`` was killed (SIGKILL, a closed terminal) from one that
started and is simply running.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clusterkit import labels
from clusterkit.paths import run_root

#: When the owning process started (with ``labels.SESSION_PID``: a recycled PID is not the owner).
OWNER_STARTED = "clusterkit.session-started"
#: The same, in the kernel's clock ticks since boot: what :func:`alive` compares where it can
#: (a wall-clock step moves ``OWNER_STARTED`` as psutil reads it, and a live owner looked dead).
OWNER_TICKS = "clusterkit.session-ticks"
#: ``1`` on resources whose owner holds them for its whole life (a pytest session).
HELD = "clusterkit.held"


def directory() -> Path:
    return run_root() / ".records"  # a cluster name cannot start with "."


def _path(name: str) -> Path:
    return directory() / f"{name}.json"


def load(name: str) -> dict[str, Any]:
    """The record of cluster ``name``, or ``{}`` if this machine has none."""
    try:
        return json.loads(_path(name).read_text())
    except (FileNotFoundError, ValueError):
        return {}


_LOCKS: dict[str, Any] = {}


@contextmanager
def locked(name: str, timeout: float = 30) -> Iterator[None]:
    """Hold the cluster's lock: one repair or record change at a time, across processes and threads.

    Re-entrant in one thread (a repair records the restarts it made); ``filelock.Timeout``
    (a ``TimeoutError``) when another holder keeps it longer than ``timeout``.
    """
    from filelock import FileLock

    directory().mkdir(parents=True, exist_ok=True)
    path = str(directory() / f"{name}.lock")
    lock = _LOCKS.get(path)
    if lock is None:
        lock = _LOCKS.setdefault(path, FileLock(path))  # one object per file: nesting works
    with lock.acquire(timeout=timeout):
        yield


def update(name: str, **changes: Any) -> dict[str, Any]:
    """Merge ``changes`` into the record (atomically, under the cluster's lock); returns it."""
    with locked(name):
        return _write(name, {**load(name), **changes})


def _write(name: str, record: dict[str, Any]) -> dict[str, Any]:
    path = _path(name)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True))
    tmp.replace(path)
    return record


def count_restart(name: str, node: str) -> None:
    """Remember that the kit started node ``node`` again (``status`` shows restart counts)."""
    with locked(name):
        record = load(name)
        restarts = dict(record.get("restarts") or {})
        restarts[node] = int(restarts.get(node, 0)) + 1
        _write(name, {**record, "restarts": restarts})


def forget(name: str) -> None:
    """Remove the record (the cluster is gone)."""
    for path in (_path(name), directory() / f"{name}.lock", directory() / f"{name}.supervisor.log"):
        path.unlink(missing_ok=True)


def reached_at(backend: str, host: str, port: int) -> dict[str, Any] | None:
    """How this host reaches a ready ``backend`` cluster whose scheduler it finds at ``host:port``.

    ``up`` records it (``reach``: host, scheduler and dashboard ports, as published), so a
    client given only an address (``spark.connect_to_scheduler("127.0.0.1:17177")``) learns
    the rest (its web UI port) without asking every runtime.
    """
    from clusterkit.net import loopback

    def same(other: str) -> bool:
        return loopback(other) if loopback(host) else other == host

    if not directory().is_dir():
        return None
    for path in sorted(directory().glob("*.json")):
        reach = load(path.stem).get("reach") or {}
        if (
            reach.get("backend") == backend
            and reach.get("scheduler_port") == port
            and same(reach.get("host", ""))
        ):
            return reach
    return None


# -- owners -------------------------------------------------------------------------


def process_start_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return None


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (Linux ``/proc``; else ``None``).

    Unlike ``create_time`` (boot time plus this, in wall-clock seconds), it does
    not move when the machine's clock is stepped: equal ticks, same process.
    """
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])  # field 22, counted after the command name
    except (OSError, IndexError, ValueError):
        return None


def owner(pid: int | None = None) -> dict[str, Any]:
    """``{"pid", "started", "ticks"}`` of this process (or of ``pid``)."""
    pid = pid or os.getpid()
    return {"pid": pid, "started": process_start_time(pid), "ticks": start_ticks(pid)}


def owner_labels(pid: int | None = None) -> dict[str, str]:
    """The labels that name the owning process on every container and network ``up`` creates."""
    found = owner(pid)
    started = found["started"]
    return {
        labels.SESSION_PID: str(found["pid"]),
        **({OWNER_STARTED: f"{started:.3f}"} if started is not None else {}),
        **({OWNER_TICKS: str(found["ticks"])} if found["ticks"] is not None else {}),
    }


def alive(pid: int, started: float | None, ticks: int | str | None = None) -> bool:
    """Is process ``pid`` still the one that started at ``started`` (or at ``ticks``, where known)?"""
    if ticks is not None:
        found = start_ticks(int(pid))
        if found is not None:
            return found == int(ticks)
    now = process_start_time(int(pid))
    return now is not None and (started is None or abs(now - float(started)) < 1.0)


def owner_alive(found: Mapping[str, str]) -> bool:
    """Is the owner named by a resource's labels still running? (No owner label: yes.)"""
    pid = found.get(labels.SESSION_PID)
    if pid is None:
        return True
    started = found.get(OWNER_STARTED)
    return alive(int(pid), float(started) if started else None, found.get(OWNER_TICKS))


def orphaned(name: str, resource_labels: Mapping[str, str]) -> bool:
    """Was cluster ``name`` left by an owner that died before it was done with it?

    True when the owner named by the labels is gone and either the resources
    say it held them for its whole life (``clusterkit.held``: a pytest
    session), or this machine's record says its ``up`` never finished or
    that it held the cluster (a Python ``Cluster``). A cluster ``clusterkit
    up`` brought up and left running is not an orphan, and neither is one
    this machine has no record of (started with another run directory):
    ``gc`` never removes a cluster it cannot prove abandoned.
    """
    if owner_alive(resource_labels):
        return False
    if resource_labels.get(HELD) == "1":
        return True
    record = load(name)
    return bool(record) and (not record.get("ready") or bool(record.get("held")))
