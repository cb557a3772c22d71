"""The nodes' logs as text, as distributed's ``Cluster.get_logs`` returns them: node name -> log.

The runtimes' ``logs`` methods print (for ``clusterkit logs``); a held cluster
returns the text instead: from the runtime's ``node_logs`` where it has one,
else read where each runtime keeps it: a container's output through the Docker
SDK (found by the labels of :mod:`clusterkit.labels`), a swarm service's output,
a local process's log file (recorded in its state). Unlike the scheduler's
in-memory log, this also holds a node that crashed.

    >>> wanted("worker-1", ["ck-a1b2c3-worker-1"]), wanted("worker-1.app.0.stderr", ["worker-1"])
    (True, True)
    >>> wanted("worker-12", ["worker-1"])
    False
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from clusterkit import labels

ROLES = ("scheduler", "worker")


class Logs(dict):  # type: ignore[type-arg]
    """``{node: log text}``; shows each under a heading in a notebook (as distributed's ``Logs``)."""

    def _repr_html_(self) -> str:
        from html import escape

        return "".join(
            f"<details><summary>{escape(node)}</summary><pre>{escape(text)}</pre></details>"
            for node, text in self.items()
        )


def _last(text: str, tail: int | None) -> str:
    lines = text.rstrip("\n").splitlines()
    return "\n".join(lines[-tail:] if tail else lines)


def _local(runtime: Any, name: str, role: str, tail: int | None) -> dict[str, str]:
    state = json.loads((Path(runtime.root) / name / "state.json").read_text())
    found = {}
    for record in state.get("processes", []):
        if record.get("role") == role:
            try:
                text = Path(record["log"]).read_text(errors="replace")
            except OSError:
                text = ""
            found[str(record["node"])] = _last(text, tail)
    return found


def _docker(runtime: Any) -> Any:
    found = getattr(runtime, "docker", None)
    if found is None:
        import docker

        found = docker.from_env()
    return found


def _containers(runtime: Any, name: str, role: str, tail: int | None) -> dict[str, str]:
    wanted = labels.selector(cluster=name, role=role, runtime=runtime.name)
    found = {}
    for container in _docker(runtime).containers.list(
        all=True, filters={"label": wanted}, ignore_removed=True
    ):
        raw = container.logs(stdout=True, stderr=True, tail=tail or "all")
        node = container.attrs["Config"]["Hostname"]  # as ``runtime.worker_names``
        found[node] = _last(raw.decode(errors="replace"), tail)
    return found


def _services(runtime: Any, name: str, role: str, tail: int | None) -> dict[str, str]:
    wanted = labels.selector(cluster=name, role=role)
    found = {}
    for service in _docker(runtime).services.list(filters={"label": wanted}):
        chunks = service.logs(stdout=True, stderr=True, tail=tail or "all")
        found[service.name] = _last(b"".join(chunks).decode(errors="replace"), tail)
    return found


def wanted(node: str, chosen: Iterable[str]) -> bool:
    """Whether log ``node`` (``worker-1``, a Spark executor's ``worker-1.<app>.<id>.stderr``) is one
    of the ``chosen`` workers, named short or in full (``cluster.workers``: ``<cluster>-worker-1``)."""
    base = node.split(".", 1)[0]
    return any(c in (node, base) or c.endswith("-" + base) for c in chosen)


def _by_role(runtime: Any, name: str, tail: int | None) -> tuple[dict[str, str], dict[str, str]]:
    """The scheduler's logs and the workers', from the runtime's ``node_logs`` if it has one."""
    try:
        found = runtime.node_logs(name, tail=tail)
    except (NotImplementedError, AttributeError):
        read = {"local": _local, "swarm": _services}.get(runtime.name, _containers)
        return read(runtime, name, "scheduler", tail), read(runtime, name, "worker", tail)
    schedulers = {k: v for k, v in found.items() if k.split(".", 1)[0].endswith("scheduler")}
    return schedulers, {k: v for k, v in found.items() if k not in schedulers}


def node_logs(
    runtime: Any,
    name: str,
    *,
    scheduler: bool = True,
    workers: bool | Iterable[str] = True,
    tail: int | None = None,
) -> Logs:
    """Each node's log text: the scheduler's as ``Scheduler`` (distributed's key), then each worker's
    under its node name; ``workers``: all, none, or those named (short or as ``cluster.workers``).

    ``tail`` keeps each log's last lines (``None``: all of it).
    """
    schedulers, found_workers = _by_role(runtime, name, tail)
    found = Logs()
    if scheduler:
        found.update({"Scheduler": next(iter(schedulers.values()))} if len(schedulers) == 1 else schedulers)
    if workers:
        chosen = None if workers is True else list(workers)
        found.update(
            (node, text)
            for node, text in sorted(found_workers.items())
            if chosen is None or wanted(node, chosen)
        )
    return found
