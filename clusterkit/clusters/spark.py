"""The Spark ``Cluster``: a Spark master and workers held in Python, with ``session()``.

It follows distributed's cluster protocol where Spark has an equivalent:
``status`` (a :class:`~clusterkit.clusters.base.Status`), ``get_logs()``,
``asynchronous=True`` (``await``, ``async with``), a notebook repr.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from html import escape
from typing import Any

from clusterkit.clusters.base import Cluster, Status
from clusterkit.facts import SPARK
from clusterkit.progress import Progress
from clusterkit.status import ClusterStatus


class SparkCluster(Cluster):
    """A Spark standalone cluster on a clusterkit runtime.

    >>> with Cluster(SPARK.name, workers=2) as cluster:  # doctest: +SKIP
    ...     cluster.session().range(100).count()
    100
    """

    backend = SPARK.name

    def _init(self, spec: Any, runtime: Any, *, owned: bool) -> None:
        super()._init(spec, runtime, owned=owned)
        self._session: Any = None
        self._connect_session: Any = None
        self._starting: asyncio.Future[Any] | None = None

    def _start_cluster(self, *, timeout: float, keep: bool, progress: Progress) -> None:
        self.status = Status.starting
        try:
            self._up(timeout, keep, progress)
        except BaseException:
            self.status = Status.failed
            if self.owned and not keep:
                self._down()  # what a Ctrl-C between two steps left
            raise
        self.status = Status.running

    @property
    def asynchronous(self) -> bool:
        """Whether ``await`` starts and closes it (``Cluster(..., asynchronous=True)``)."""
        return bool(getattr(self, "_asynchronous", False))

    def __await__(self) -> Any:
        """Start an ``asynchronous=True`` cluster in a thread (once); the event loop goes on."""
        return self._ready().__await__()

    async def _ready(self) -> SparkCluster:
        if self.status == Status.created or self._starting is not None:
            if self._starting is None:
                self._starting = asyncio.ensure_future(
                    asyncio.to_thread(self._start_cluster, **self._start_options)
                )
            try:
                await asyncio.shield(self._starting)
            finally:
                if self._starting.done():
                    self._starting = None
        return self

    async def __aenter__(self) -> SparkCluster:
        return await self

    async def __aexit__(self, *exc: Any) -> None:
        await asyncio.to_thread(self._close_now)

    def session(self, timeout: float = 60, *, connect: bool = False, **options: Any) -> Any:
        """A ``SparkSession`` whose executors run on this cluster (made once, then reused).

        ``options`` go to ``clusterkit.spark.connect_to_scheduler`` (``conf=``, ``app_name=`` ...).
        ``connect=True``: a Spark Connect session instead (the driver runs in the cluster, this
        process needs no JVM), with the cluster's token when its server requires one.
        """
        from clusterkit.backends.spark import backend, session_usable, stop_session

        if connect:
            if options:
                raise TypeError(f"session(connect=True) takes no driver options: {sorted(options)}")
            from clusterkit.backends.spark.connect import usable

            if self._connect_session is None or not usable(self._connect_session):
                if self._connect_session is not None:  # so the new one becomes pyspark's active one
                    stop_session(self._connect_session, timeout=10)
                self._connect_session = backend.connect_session(self.client_spec, timeout)
            return self._connect_session
        if self._session is None or not session_usable(self._session):
            # A session whose master restarted was stopped (it raised instead of hanging): a new one.
            self._session = backend.connect(self.client_spec, timeout, **options)
        return self._session

    def get_logs(
        self, cluster: bool = True, scheduler: bool = True, workers: bool | Iterable[str] = True
    ) -> Any:
        """The nodes' logs as distributed's clusters return them: ``{"Scheduler": master's log,
        worker name: its log}`` (``cluster`` is accepted for the same signature; Spark keeps no
        cluster-manager log here). An awaitable when the cluster is asynchronous."""
        if self.asynchronous:
            return asyncio.to_thread(self._node_logs, scheduler, workers)
        return self._node_logs(scheduler, workers)

    @property
    def scheduler_address(self) -> str:
        return f"spark://{self.client_spec.scheduler_address}"

    @property
    def dashboard_link(self) -> str:
        from clusterkit.net import format_host

        spec = self.client_spec
        return f"http://{format_host(spec.scheduler_host)}:{spec.dashboard_port}"

    def scale(self, n: int, timeout: float = 120) -> ClusterStatus | None:
        """Reconcile to ``n`` workers and wait until the master lists all of them ALIVE."""
        return self.runtime.scale(self.spec.name, n, timeout=timeout)

    def close(self, timeout: float | None = None) -> Any:
        """Stop the session, and remove the cluster if this object started it (an awaitable when
        the cluster is asynchronous)."""
        if self.asynchronous:
            return asyncio.to_thread(self._close_now)
        self._close_now()
        return None

    def _close_now(self) -> None:
        if self.status == Status.closed:
            return
        self.status = Status.closing
        from clusterkit.backends.spark import stop_session

        if self._session is not None:
            stop_session(self._session)  # bounded: an unreachable cluster must not hang close()
            self._session = None
        if self._connect_session is not None:
            stop_session(self._connect_session)  # ends this client's server-side session
            self._connect_session = None
        self._down()
        self.status = Status.closed

    def __enter__(self) -> SparkCluster:
        if self.asynchronous:
            raise TypeError("Used 'with' with an asynchronous cluster; use 'async with'")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SparkCluster({self.spec.name!r}, {self.scheduler_address!r}, runtime={self.runtime.name!r})"

    def _repr_html_(self) -> str:
        """The notebook's view: master URL, web UI link, workers wanted and registered, cores, memory."""
        from clusterkit.spec import format_memory

        try:
            report: ClusterStatus | None = self.report() if self.status == Status.running else None
            master, link = self.scheduler_address, self.dashboard_link
        except Exception:  # noqa: BLE001 - a repr shows what it can
            report, master, link = None, f"spark://{self.spec.scheduler_address}", ""
        registered = "?" if report is None else str(len(report.alive_workers))
        wanted = report.wanted if report is not None and report.wanted is not None else self.spec.workers
        rows = [
            ("Master", escape(master)),
            ("Web UI", f'<a href="{escape(link)}" target="_blank">{escape(link)}</a>' if link else "-"),
            ("Workers", f"{registered} registered of {wanted} wanted"),
            ("Cores per worker", str(self.spec.cores)),
            ("Memory per worker", format_memory(self.spec.memory)),
            ("Status", escape(self.status.name)),
            ("Runtime", escape(self.runtime.name)),
        ]
        body = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>{v}</td></tr>"
            for k, v in rows
        )
        return f"<div><h3>SparkCluster {escape(self.spec.name)}</h3><table>{body}</table></div>"
