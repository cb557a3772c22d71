"""A cluster is a backend (what runs) times a runtime (where it runs).

The CLI and the pytest plugin go through these functions, never through a
runtime directly, so "which runtime holds cluster X" is decided in one place.
"""

from __future__ import annotations

from clusterkit import runtimes
from clusterkit.errors import ClusterNotFound
from clusterkit.runtimes.base import Progress, Runtime, _quiet
from clusterkit.spec import ClusterSpec
from clusterkit.status import ClusterStatus


def default_runtime_name() -> str:
    """``compose`` where a Docker engine answers, ``local`` otherwise."""
    return "local"


def up(
    spec: ClusterSpec,
    runtime: str | None = None,
    *,
    timeout: float = 120,
    keep: bool = False,
    progress: Progress = _quiet,
) -> ClusterStatus:
    """Start ``spec`` on ``runtime`` and wait until every worker is registered."""
    return runtimes.get_runtime(runtime or default_runtime_name()).up(
        spec, timeout=timeout, keep=keep, progress=progress
    )


def find(name: str | None, runtime: str | None = None) -> tuple[Runtime, str]:
    """The runtime holding cluster ``name`` (or the only running cluster if ``None``)."""
    names = [runtime] if runtime else list(runtimes.RUNTIMES)
    found: list[tuple[Runtime, str]] = []
    for runtime_name in names:
        rt = runtimes.get_runtime(runtime_name)
        for cluster in rt.clusters():
            if name in (None, cluster):
                found.append((rt, cluster))
    if not found:
        which = f"named {name!r}" if name else "at all"
        raise ClusterNotFound(
            f"no running cluster {which}; start one with `clusterkit up`"
            + (f" --name {name}" if name else "")
        )
    if len(found) > 1:
        listed = ", ".join(f"{c} ({rt.name})" for rt, c in found)
        raise ClusterNotFound(f"several clusters are running ({listed}); choose one with --name")
    return found[0]


def status(name: str | None = None, runtime: str | None = None) -> ClusterStatus:
    rt, cluster = find(name, runtime)
    return rt.status(cluster)


def down(name: str | None = None, runtime: str | None = None, *, volumes: bool = False) -> str:
    rt, cluster = find(name, runtime)
    rt.down(cluster, volumes=volumes)
    return cluster


def scale(
    name: str | None, workers: int, runtime: str | None = None, *, timeout: float = 120
) -> ClusterStatus:
    from clusterkit.spec import ClusterSpec as _Spec  # validate the count like a spec does

    rt, cluster = find(name, runtime)
    _Spec(name=cluster, workers=workers)
    return rt.scale(cluster, workers, timeout=timeout)
