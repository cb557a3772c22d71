"""The front door: a cluster is a backend (what runs) times a runtime (where it runs).

The CLI, the pytest plugin and the Python :class:`Cluster` go through this
module and never reach into a runtime's internals, so "which runtime holds
cluster X" and "what does a client connect to" are decided in one place.

    >>> from clusterkit import Cluster
    >>> with Cluster("dask", workers=2) as cluster:  # doctest: +SKIP
    ...     print(cluster.status())
"""

from __future__ import annotations

import sys
from typing import Any

from clusterkit import runtimes
from clusterkit.backends import get_backend
from clusterkit.errors import ClusterExists, ClusterNotFound
from clusterkit.progress import Progress, quiet
from clusterkit.runtimes.base import Runtime
from clusterkit.spec import ClusterSpec, parse_count, resolve_spec
from clusterkit.status import ClusterStatus


def default_runtime_name() -> str:
    """``compose`` where a Docker engine answers, ``local`` otherwise (with a notice)."""
    from clusterkit.engine import engine_available

    if engine_available():
        return "compose"
    print("clusterkit: no Docker engine answers; running the cluster as local processes", file=sys.stderr)
    return "local"


def up(
    spec: ClusterSpec,
    runtime: str | Runtime | None = None,
    *,
    timeout: float = 120,
    keep: bool = False,
    progress: Progress = quiet,
) -> ClusterStatus:
    """Start ``spec`` on ``runtime`` and wait until every worker is registered.

    A name is unique across runtimes, so ``status`` and ``down --name`` always
    know which cluster is meant.
    """
    rt = runtimes.get_runtime(runtime or default_runtime_name())
    for other in _runtimes(None):
        if other.name != rt.name and spec.name in other.clusters():
            raise ClusterExists(
                f"a cluster named {spec.name!r} already runs on the {other.name} runtime; "
                f"choose another --name or `clusterkit down --name {spec.name}` first"
            )
    return rt.up(spec, timeout=timeout, keep=keep, progress=progress)


def _runtimes(runtime: str | Runtime | None) -> list[Runtime]:
    return (
        [runtimes.get_runtime(runtime)] if runtime else [runtimes.get_runtime(n) for n in runtimes.RUNTIMES]
    )


def find(name: str | None, runtime: str | Runtime | None = None) -> tuple[Runtime, str]:
    """The runtime holding cluster ``name`` (or the only running cluster if ``None``)."""
    found = [(rt, c) for rt in _runtimes(runtime) for c in rt.clusters() if name in (None, c)]
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
    """What the scheduler of a running cluster reports."""
    rt, found = find(name, runtime)
    return rt.status(found)


def down(name: str | None = None, runtime: str | None = None, *, volumes: bool = False) -> str:
    """Remove a cluster; returns its name."""
    if name is not None:
        # A half-started cluster has no scheduler to be found by; `down` removes it all the same.
        for rt in _runtimes(runtime):
            if rt._exists(name) and name not in rt.clusters():
                rt.down(name, volumes=volumes)
                return name
    rt, found = find(name, runtime)
    rt.down(found, volumes=volumes)
    return found


def scale(
    name: str | None, workers: int | str, runtime: str | None = None, *, timeout: float = 120
) -> ClusterStatus:
    """Reconcile a running cluster to ``workers`` workers and wait until all are registered."""
    count = parse_count("workers", workers)  # a bad count fails before any lookup
    rt, found = find(name, runtime)
    result = rt.scale(found, count, timeout=timeout)
    assert result is not None
    return result


def logs(
    name: str | None = None, service: str | None = None, runtime: str | None = None, **options: Any
) -> None:
    """Print a cluster's logs (``follow``, ``tail`` as keywords)."""
    rt, found = find(name, runtime)
    rt.logs(found, service, **options)


def render(spec: ClusterSpec, fmt: str = "compose") -> str:
    """The text a runtime's tool reads for ``spec`` (``compose``), or the resolved spec (``spec``)."""
    import yaml

    if fmt == "spec":
        return yaml.safe_dump(spec.to_dict(), sort_keys=False)
    from clusterkit import images
    from clusterkit.render import compose

    return compose.dump(compose.render(spec, spec.image or images.image_tag(spec.backend)))


def gc(everything: bool = False) -> list[str]:
    """Remove what test sessions whose process died left behind (``everything``: all of it)."""
    from clusterkit.runtimes.testcontainers import sweep

    return sweep(only_dead=not everything)


def connect(name: str | None = None, runtime: str | None = None, timeout: float = 60) -> Any:
    """A client for a running cluster: a Dask ``Client`` or a ``SparkSession``."""
    rt, found = find(name, runtime)
    return get_backend(rt.spec_of(found).backend).connect(rt.client_spec(found), timeout)


def drift(
    name: str | None = None, runtime: str | None = None, *, tolerance: str | None = None
) -> tuple[list[Any], dict[str, dict[str, str]]]:
    """The graded version differences between this client and every node of a cluster."""
    from clusterkit import drift as drift_check

    rt, found = find(name, runtime)
    backend = get_backend(rt.spec_of(found).backend)
    connection = backend.connect(rt.client_spec(found), 60)
    try:
        versions = backend.node_versions(connection)
    finally:
        backend.close(connection)
    return drift_check.compare(versions, backend=backend.name, tolerance=tolerance), versions


class Cluster:
    """A cluster held in Python, over any runtime; ready when the constructor returns.

    ``Cluster("dask", ...)`` is a ``distributed`` cluster (``Client(cluster)``,
    ``scale``, ``adapt``, ``dashboard_link``); ``Cluster("spark", ...)`` gives
    ``session()``. Both have ``status()``, ``scale(n)``, ``logs()`` and
    ``close()``, and remove everything they started on exit, also when the
    body raised. :meth:`from_name` attaches to a cluster started elsewhere
    (``clusterkit up``) without owning it.

    Args:
        backend: ``dask`` or ``spark``.
        workers: worker count; other spec fields (``cores``, ``memory``, ``name``,
            ``scheduler_port`` ...) as keywords, resolved like the CLI's flags.
        runtime: ``compose``, ``local``, ``testcontainers`` or a ``Runtime``
            (default: compose where an engine answers, else local).
        spec: a complete ``ClusterSpec`` instead of the fields.
        timeout: seconds to wait until every worker is registered.

    >>> with Cluster("spark", workers=2, runtime="local") as cluster:  # doctest: +SKIP
    ...     cluster.session().range(10).count()
    10
    """

    spec: ClusterSpec
    runtime: Runtime
    #: Whether closing this object removes the cluster (``False`` for :meth:`from_name`).
    owned: bool

    def __new__(cls, backend: str = "dask", *args: Any, **kwargs: Any) -> Any:
        if cls is Cluster:
            spec = kwargs.get("spec")
            cls = get_backend(spec.backend if spec else backend).cluster_class()
        return super().__new__(cls)

    def __init__(
        self,
        backend: str = "dask",
        *,
        workers: int | None = None,
        runtime: str | Runtime | None = None,
        spec: ClusterSpec | None = None,
        timeout: float = 120,
        keep: bool = False,
        progress: Progress = quiet,
        **fields: Any,
    ) -> None:
        if spec is None:
            spec = resolve_spec(overrides={"backend": backend, "workers": workers, **fields})
        rt = runtimes.get_runtime(runtime or default_runtime_name())
        self._init(spec, rt, owned=True)
        self._start_cluster(timeout=timeout, keep=keep, progress=progress)

    @classmethod
    def from_name(cls, name: str | None = None, runtime: str | Runtime | None = None) -> Any:
        """Attach to a running cluster (``clusterkit up``); closing it leaves the cluster running."""
        rt, found = find(name, runtime)
        spec = rt.spec_of(found)
        klass = get_backend(spec.backend).cluster_class()
        self = klass.__new__(klass)
        self._init(spec, rt, owned=False)
        self._start_cluster(timeout=60, keep=True, progress=quiet)
        return self

    def _init(self, spec: ClusterSpec, runtime: Runtime, *, owned: bool) -> None:
        self.spec = spec
        self.runtime = runtime
        self.owned = owned

    def _start_cluster(self, *, timeout: float, keep: bool, progress: Progress) -> None:
        raise NotImplementedError

    # -- shared by both backends ------------------------------------------------

    def _up(self, timeout: float, keep: bool, progress: Progress) -> None:
        if self.owned:
            up(self.spec, self.runtime, timeout=timeout, keep=keep, progress=progress)

    def _down(self) -> None:
        if self.owned and self.runtime._exists(self.spec.name):
            self.runtime.down(self.spec.name)

    @property
    def client_spec(self) -> ClusterSpec:
        """The spec as this host reaches the cluster (published ports)."""
        return self.runtime.client_spec(self.spec.name)

    def report(self) -> ClusterStatus:
        """The cluster's status as its scheduler reports it (``status()`` too)."""
        return self.runtime.status(self.spec.name)

    def logs(self, service: str | None = None, *, tail: int = 100) -> None:
        """Print the nodes' logs (``service``: scheduler or worker)."""
        self.runtime.logs(self.spec.name, service, tail=tail)
