"""The Dask ``Cluster``: a ``distributed.deploy.Cluster`` over any clusterkit runtime.

Built as dask-kubernetes builds ``KubeCluster``: the runtime starts the
nodes, then ``scheduler_comm`` is an rpc to the scheduler and distributed's
``Cluster`` does the rest (``Client(cluster)``, the HTML repr, ``get_logs``,
and ``adapt`` through distributed's ``Adaptive``, which retires the workers
the scheduler picks and then calls :meth:`DaskCluster.scale_down` to remove
their containers or processes).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from distributed.core import Status, rpc
from distributed.deploy import Cluster as DistributedCluster

from clusterkit.backends import get_backend
from clusterkit.clusters.base import Cluster
from clusterkit.facts import DASK
from clusterkit.progress import Progress
from clusterkit.status import ClusterStatus


class _StatusView:
    """``cluster.status``: distributed compares it with ``Status``; people call it.

    distributed's ``Cluster`` (and ``Client``) read ``cluster.status`` as a
    lifecycle state, while clusterkit's clusters answer ``cluster.status()``
    with a ``ClusterStatus``. This object is both.
    """

    def __init__(self, cluster: DaskCluster, state: Status) -> None:
        self._cluster = cluster
        self._state = state

    def __call__(self) -> ClusterStatus:
        return self._cluster.report()

    def __eq__(self, other: object) -> bool:
        return self._state == (other._state if isinstance(other, _StatusView) else other)

    def __hash__(self) -> int:
        return hash(self._state)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._state, attribute)  # .name, .value

    def __repr__(self) -> str:
        return repr(self._state)


async def _in_thread(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking runtime call (Docker, subprocess) off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(call, *args, **kwargs))


class DaskCluster(Cluster, DistributedCluster):
    """A Dask scheduler and workers on a clusterkit runtime, as distributed knows clusters."""

    backend = DASK.name

    def _init(self, spec: Any, runtime: Any, *, owned: bool) -> None:
        super()._init(spec, runtime, owned=owned)
        DistributedCluster.__init__(self, asynchronous=False, name=spec.name, quiet=True)
        self._worker_names: list[str] = []

    @property  # type: ignore[override]
    def status(self) -> _StatusView:
        return _StatusView(self, self._lifecycle)

    @status.setter
    def status(self, value: Status) -> None:
        self._lifecycle = value

    def _start_cluster(self, *, timeout: float, keep: bool, progress: Progress) -> None:
        self._up_options = (timeout, keep, progress)
        self._loop_runner.start()
        try:
            self.sync(self._start)
        except BaseException:
            self._loop_runner.stop()
            if self.owned and not keep:
                self._down()  # also after Ctrl-C, which the loop thread does not see
            raise

    async def _start(self) -> None:
        from clusterkit.backends.dask import quiet_version_warning

        quiet_version_warning()  # Client(cluster) gets clusterkit's graded note below instead
        timeout, keep, progress = self._up_options
        await _in_thread(self._up, timeout, keep, progress)
        try:
            spec = await _in_thread(self.runtime.client_spec, self.spec.name)
            self._worker_names = await _in_thread(self.runtime.worker_names, self.spec.name)
            # A cluster with `security: tls` is reached over tls://; Client(cluster) reads `security`.
            self.security = (await _in_thread(get_backend(self.backend).credentials, spec)).get("security")
            if self.security is None:
                self.scheduler_comm = rpc(f"tcp://{spec.scheduler_address}")
            else:
                args = self.security.get_connection_args("client")
                self.scheduler_comm = rpc(f"tls://{spec.scheduler_address}", connection_args=args)
            await super()._start()
            await self._warn_drift()
            await self._send_project()
        except BaseException:
            if self.owned and not keep:
                await _in_thread(self._down)
            raise

    async def _send_project(self) -> None:
        """The project's packages to the nodes (:mod:`clusterkit.project`); later workers get them
        from the scheduler. ``Client(cluster)`` never passes through ``connect_to_scheduler``."""
        from clusterkit.backends.dask.ship import send_project

        await send_project(self.scheduler_comm)

    def __await__(self) -> Any:
        """``Client(cluster)`` awaits its cluster while it connects (on the cluster's loop): the
        code as it is now goes out then, so an edit needs a new client, not a new cluster."""
        return self._ready().__await__()

    async def _ready(self) -> DaskCluster:
        if getattr(self, "scheduler_comm", None) is not None and self.status == Status.running:
            await self._send_project()
        return self

    async def _warn_drift(self) -> None:
        """One graded line if this process and the nodes differ (once per cluster object)."""
        import warnings

        from clusterkit import drift
        from clusterkit.backends.dask import drift_summary

        try:
            scheduler = await self.scheduler_comm.versions(packages=[])
            workers = await self.scheduler_comm.broadcast(
                msg={"op": "versions", "packages": []}, on_error="ignore"
            )
        except Exception:  # noqa: BLE001 - a drift note is never worth failing a start
            return
        summary = drift_summary({"scheduler": scheduler, "workers": workers})
        if summary:
            warnings.warn(drift.DriftWarning(summary), stacklevel=2)

    async def _close(self) -> None:
        if self.status == Status.closed:
            return
        await super()._close()
        await _in_thread(self._down)

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        self._loop_runner.stop()

    # -- what distributed asks of a cluster ------------------------------------------

    @property
    def workers(self) -> set[str]:
        """Names of the worker nodes the runtime runs (``plan`` and ``requested`` for ``Adaptive``)."""
        return set(self._worker_names)

    @property
    def dashboard_link(self) -> str:
        from clusterkit.net import format_host

        spec = self.client_spec
        return f"http://{format_host(spec.scheduler_host)}:{spec.dashboard_port}/status"

    def scale(self, n: int, timeout: float = 120) -> Any:
        """Reconcile to ``n`` workers; from your code it waits until all are registered.

        Called by ``Adaptive`` (on the event loop) it returns once the nodes are started.
        """
        wait = not self.called_from_running_loop
        return self.sync(self._scale, n, wait, timeout)

    async def _scale(self, n: int, wait: bool, timeout: float) -> ClusterStatus | None:
        try:
            return await _in_thread(self.runtime.scale, self.spec.name, n, timeout=timeout, wait=wait)
        finally:
            self._worker_names = await _in_thread(self.runtime.worker_names, self.spec.name)

    def scale_down(self, workers: list[str]) -> Any:
        """Remove the named workers (``Adaptive`` retired them at the scheduler first)."""
        return self.sync(self._scale_down, list(workers))

    async def _scale_down(self, workers: list[str]) -> None:
        await _in_thread(self.runtime.remove_workers, self.spec.name, workers)
        self._worker_names = await _in_thread(self.runtime.worker_names, self.spec.name)
