"""What every held cluster shares: start through the front door, supervise, remove on close.

``Cluster(backend, ...)`` (:mod:`clusterkit.clusters`) picks the backend's
class from a table; each class starts its cluster with :meth:`Cluster._up`
and removes it with :meth:`Cluster._down`.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from clusterkit import cluster as front
from clusterkit import runtimes
from clusterkit.clusters.aliases import merge_aliases
from clusterkit.facts import DEFAULT_BACKEND, facts_of
from clusterkit.net import free_ports
from clusterkit.progress import Progress, quiet
from clusterkit.runtimes.base import Runtime
from clusterkit.spec import ClusterSpec, resolve_spec
from clusterkit.status import ClusterStatus
from clusterkit.supervisor import Supervisor

_PORTS = ("scheduler_port", "dashboard_port")
_BIND = next(f.default for f in dataclasses.fields(ClusterSpec) if f.name == "bind_address")


class Status(enum.Enum):
    """A held cluster's lifecycle state, named as ``distributed.core.Status``.

    ``cluster.status`` of a Dask cluster is distributed's own ``Status``; a Spark
    cluster's is this one. They compare equal by name, so either enum works for both.

    >>> from distributed.core import Status as DistributedStatus
    >>> Status.running == DistributedStatus.running, DistributedStatus.closed == Status.closed
    (True, True)
    >>> Status.running == DistributedStatus.closed
    False
    """

    created = "created"
    starting = "starting"
    running = "running"
    closing = "closing"
    closed = "closed"
    failed = "failed"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, enum.Enum) and type(other).__name__ == "Status":
            return self.name == other.name
        return NotImplemented

    __hash__ = enum.Enum.__hash__


def fresh_defaults(values: Mapping[str, Any]) -> dict[str, Any]:
    """A unique name and free ports, for what no argument, ``CLUSTERKIT_*`` or file set.

    As ``LocalCluster`` does: a second ``Cluster()``, or a ``LocalCluster`` on
    8786/8787, never collides. The CLI and ``make up`` keep the documented
    defaults (the backend's name and ports), which people type and bookmark.

    >>> from clusterkit.facts import DASK
    >>> fresh = fresh_defaults({"backend": DASK.name, "scheduler_port": 9000})
    >>> fresh["name"].startswith(DASK.name + "-"), sorted(fresh), fresh["dashboard_port"] != 9000
    (True, ['dashboard_port', 'name'], True)
    """
    fill: dict[str, Any] = {}
    if "name" not in values:
        fill["name"] = f"{values['backend']}-{secrets.token_hex(3)}"
    ports = _PORTS if facts_of(str(values["backend"])).connect_port is None else (*_PORTS, "connect_port")
    wanted = [key for key in ports if key not in values]
    bind = str(values.get("bind_address", _BIND)).strip()
    try:
        ipaddress.ip_address(bind)
    except ValueError:
        return fill  # the spec says what is wrong with it
    if wanted:
        given = {int(str(values[k]).strip()) for k in ports if str(values.get(k, "")).strip().isdigit()}
        fill.update(zip(wanted, free_ports(bind, len(wanted), avoid=given), strict=True))
    return fill


class Cluster:
    """A cluster held in Python, over any runtime; ready when the constructor returns.

    For Dask it is a ``distributed`` cluster (``Client(cluster)``, ``scale``,
    ``adapt``, ``dashboard_link``); for Spark it gives ``session()``. Both have
    ``status`` (the lifecycle state, a ``Status`` such as ``Status.running``),
    ``report()`` (the scheduler's view: a ``ClusterStatus``), ``scale(n)``,
    ``get_logs()`` and ``close()``, and remove everything they started on exit,
    also when the body raised. :meth:`from_name` attaches to a cluster started
    elsewhere (``clusterkit up``) without owning it.

    With ``asynchronous=True`` nothing starts in the constructor: ``await
    Cluster(...)`` or ``async with Cluster(...)`` starts it (the blocking work in a
    thread, so the event loop goes on), and ``await cluster.close()`` removes it.

    Args:
        backend: ``dask`` or ``spark``.
        workers: worker count; other spec fields (``cores``, ``memory``, ``name``,
            ``scheduler_port`` ...) as keywords, resolved like the CLI's flags,
            except that a name and ports nothing set are a unique name and free
            ports (:func:`fresh_defaults`), not the CLI's ``dask``/8786.
            ``LocalCluster``'s names work too: ``n_workers``, ``threads_per_worker``
            and ``memory_limit`` (``"2GiB"``, bytes ...; :mod:`clusterkit.clusters.aliases`).
        runtime: ``compose``, ``local``, ``testcontainers`` or a ``Runtime``
            (default: compose where an engine answers, else local).
        spec: a complete ``ClusterSpec`` instead of the fields.
        timeout: seconds to wait until every worker is registered.
        supervise: keep the cluster at its spec while this object is open: a
            node that dies (crash, OOM, ``docker kill``) is started again
            (:mod:`clusterkit.supervisor`).
        asynchronous: start and close from an event loop (``await``), as distributed's clusters.

    >>> with Cluster(SPARK.name, workers=2, runtime="local") as cluster:  # doctest: +SKIP
    ...     cluster.session().range(10).count()
    10
    """

    spec: ClusterSpec
    runtime: Runtime
    #: Whether closing this object removes the cluster (``False`` for :meth:`from_name`).
    owned: bool

    #: The held-cluster class of each backend, by name: filled as each subclass is defined.
    classes: dict[str, type[Cluster]] = {}
    #: The backend a subclass holds.
    backend: str = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.backend:
            Cluster.classes[cls.backend] = cls

    def __new__(cls, backend: str = DEFAULT_BACKEND, *args: Any, **kwargs: Any) -> Any:
        if cls is Cluster:
            spec = kwargs.get("spec")
            cls = Cluster.classes[facts_of(spec.backend if spec else backend).name]
        return super().__new__(cls)

    def __init__(
        self,
        backend: str = DEFAULT_BACKEND,
        *,
        workers: int | None = None,
        runtime: str | Runtime | None = None,
        spec: ClusterSpec | None = None,
        timeout: float = 120,
        keep: bool = False,
        progress: Progress = quiet,
        supervise: bool = True,
        asynchronous: bool = False,
        n_workers: int | None = None,
        threads_per_worker: int | None = None,
        memory_limit: str | int | None = None,
        **fields: Any,
    ) -> None:
        aliases = {
            "n_workers": n_workers,
            "threads_per_worker": threads_per_worker,
            "memory_limit": memory_limit,
        }
        if spec is None:
            given = merge_aliases({"backend": backend, "workers": workers, **fields}, **aliases)
            spec = resolve_spec(overrides=given, defaults=fresh_defaults)
        rt = runtimes.get_runtime(runtime or front.default_runtime_name())
        self._asynchronous = asynchronous
        self._init(spec, rt, owned=True)
        self._supervise = supervise
        self._start_options = {"timeout": timeout, "keep": keep, "progress": progress}
        if not asynchronous:
            self._start_cluster(**self._start_options)

    @classmethod
    def from_name(
        cls, name: str | None = None, runtime: str | Runtime | None = None, *, supervise: bool = True
    ) -> Any:
        """Attach to a running cluster (``clusterkit up``); closing it leaves the cluster running."""
        rt, found = front.find(name, runtime)
        spec = rt.spec_of(found)
        klass = Cluster.classes[spec.backend]
        self = klass.__new__(klass)
        self._asynchronous = False
        self._init(spec, rt, owned=False)
        self._supervise = supervise
        self._start_cluster(timeout=60, keep=True, progress=quiet)
        return self

    def _init(self, spec: ClusterSpec, runtime: Runtime, *, owned: bool) -> None:
        self.spec = spec
        self.runtime = runtime
        self.owned = owned
        self.status = Status.created

    def _start_cluster(self, *, timeout: float, keep: bool, progress: Progress) -> None:
        raise NotImplementedError

    # -- shared by both backends ------------------------------------------------

    def _up(self, timeout: float, keep: bool, progress: Progress) -> None:
        if self.owned:
            front.up(self.spec, self.runtime, timeout=timeout, keep=keep, progress=progress, held=True)
            self.spec = self.runtime.spec_of(self.spec.name)  # as recorded: with the runtime's defaults
        if getattr(self, "_supervise", True):
            self._supervisor = Supervisor(self.runtime, self.spec.name).start()

    def _down(self) -> None:
        supervisor = getattr(self, "_supervisor", None)
        if supervisor is not None:
            supervisor.stop()
            self._supervisor = None
        if self.owned and self.runtime.exists(self.spec.name):
            self.runtime.down(self.spec.name)

    @property
    def client_spec(self) -> ClusterSpec:
        """The spec as this host reaches the cluster (published ports)."""
        return self.runtime.client_spec(self.spec.name)

    def report(self) -> ClusterStatus:
        """The cluster's status as its scheduler reports it: workers, health, versions.

        ``cluster.status`` is the lifecycle state (``Status.running``), as distributed's.
        """
        return self.runtime.status(self.spec.name)

    def _node_logs(self, scheduler: bool, workers: bool | Iterable[str], tail: int | None = None) -> Any:
        from clusterkit.clusters.logs import node_logs

        return node_logs(self.runtime, self.spec.name, scheduler=scheduler, workers=workers, tail=tail)

    def logs(self, service: str | None = None, *, tail: int = 100) -> None:
        """Print the nodes' last ``tail`` log lines (``service``: scheduler, worker or a worker's name).

        A thin wrapper of :meth:`get_logs` for people at a prompt; code reads ``get_logs()``.
        """
        scheduler = service in (None, "scheduler")
        workers: bool | list[str] = service in (None, "worker") or (
            [service] if service != "scheduler" else False
        )
        for node, text in self._node_logs(scheduler, workers, tail).items():
            print(f"==> {node} <==\n{text}")
