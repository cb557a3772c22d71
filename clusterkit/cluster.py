"""A cluster is a backend (what runs) times a runtime (where it runs).

The CLI and the pytest plugin go through these functions, never through a
runtime directly, so "which runtime holds cluster X" is decided in one place.
"""

from __future__ import annotations

from typing import Any

from clusterkit import runtimes
from clusterkit.errors import ClusterNotFound
from clusterkit.runtimes.base import Progress, Runtime, _quiet
from clusterkit.spec import ClusterSpec
from clusterkit.status import ClusterStatus


def default_runtime_name() -> str:
    """``compose`` where a Docker engine answers, ``local`` otherwise (with a notice)."""
    from clusterkit.engine import engine_available

    if engine_available():
        return "compose"
    import sys

    print("clusterkit: no Docker engine answers; running the cluster as local processes", file=sys.stderr)
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

    count = _Spec(name="scale", workers=workers).workers  # bad counts fail before any lookup
    rt, cluster = find(name, runtime)
    return rt.scale(cluster, count, timeout=timeout)


def connect(name: str | None = None, runtime: str | None = None, timeout: float = 60) -> Any:
    """A client for a running cluster: a Dask ``Client`` or a ``SparkSession``."""
    from clusterkit.backends import get_backend

    rt, found = find(name, runtime)
    spec = rt.spec_of(found)
    return get_backend(spec.backend).connect_to_scheduler(
        spec.scheduler_address, timeout, ui_port=spec.dashboard_port
    )


def drift(
    name: str | None = None, runtime: str | None = None, *, tolerance: str | None = None
) -> tuple[list[Any], dict[str, dict[str, str]]]:
    """The graded version differences between this client and every node of a cluster."""
    from clusterkit import drift as drift_check
    from clusterkit.backends import get_backend

    rt, found = find(name, runtime)
    spec = rt.spec_of(found)
    backend = get_backend(spec.backend)
    connection = connect(found, rt.name)
    try:
        versions = backend.node_versions(connection)
    finally:
        backend.close(connection)
    return drift_check.compare(versions, backend=spec.backend, tolerance=tolerance), versions
