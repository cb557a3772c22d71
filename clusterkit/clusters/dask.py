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
from collections.abc import Iterable
from typing import Any

from distributed.core import Status, rpc
from distributed.deploy import Cluster as DistributedCluster

from clusterkit.backends import get_backend
from clusterkit.clusters.base import Cluster
from clusterkit.facts import DASK
from clusterkit.progress import Progress
from clusterkit.status import ClusterStatus


async def _in_thread(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking runtime call (Docker, subprocess) off the event loop."""
    return await asyncio.to_thread(call, *args, **kwargs)


class DaskCluster(Cluster, DistributedCluster):
    """A Dask scheduler and workers on a clusterkit runtime, as distributed knows clusters."""

    backend = DASK.name

    def _init(self, spec: Any, runtime: Any, *, owned: bool) -> None:
        super()._init(spec, runtime, owned=owned)
        asynchronous = getattr(self, "_asynchronous", False)
        DistributedCluster.__init__(self, asynchronous=asynchronous, name=spec.name, quiet=True)
        self._worker_names: list[str] = []
        self._starting: asyncio.Future[Any] | None = None

    def _start_cluster(self, *, timeout: float, keep: bool, progress: Progress) -> None:
        self._start_options = {"timeout": timeout, "keep": keep, "progress": progress}
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
        self.status = Status.starting
        keep = self._start_options["keep"]
        try:
            await _in_thread(self._up, **self._start_options)
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
            self.status = Status.failed
            if self.owned and not keep:
                await _in_thread(self._down)
            raise

    async def _send_project(self) -> None:
        """The project's packages to the nodes (:mod:`clusterkit.project`); later workers get them
        from the scheduler. ``Client(cluster)`` never passes through ``connect_to_scheduler``."""
        from clusterkit.backends.dask.ship import send_project

        await send_project(self.scheduler_comm)

    def __await__(self) -> Any:
        """``await cluster`` starts an ``asynchronous=True`` cluster (once; the blocking steps in a
        thread). ``Client(cluster)`` awaits its cluster while it connects (on the cluster's loop): the
        code as it is now goes out then, so an edit needs a new client, not a new cluster."""
        return self._ready().__await__()

    async def _ready(self) -> DaskCluster:
        if self.status == Status.created or self._starting is not None:
            if self._starting is None:
                self._starting = asyncio.ensure_future(self._start())
            try:
                await asyncio.shield(self._starting)
            finally:
                if self._starting.done():
                    self._starting = None
        elif getattr(self, "scheduler_comm", None) is not None and self.status == Status.running:
            await self._send_project()
        return self

    async def _warn_drift(self) -> None:
        """One line if this process and the nodes differ in what can break a computation (a Python
        minor version, a critical package, a project dependency; once per cluster object)."""
        import warnings

        from clusterkit import drift
        from clusterkit.backends.dask import drift_summary
        from clusterkit.status import TRACKED_PACKAGES, local_versions, package_versions

        try:
            versions = await self._node_versions()
            if versions is None:  # nodes that cannot run clusterkit's probe: distributed's own list
                scheduler = await self.scheduler_comm.versions(packages=[])
                workers = await self.scheduler_comm.broadcast(
                    msg={"op": "versions", "packages": []}, on_error="ignore"
                )
                summary = drift_summary({"scheduler": scheduler, "workers": workers})
            else:
                project = drift.project_packages(versions, TRACKED_PACKAGES)
                versions["client"] = {**package_versions(project), **local_versions()}
                summary = drift.summarize(drift.compare(versions, backend=self.backend, project=project))
        except Exception:  # noqa: BLE001 - a drift note is never worth failing a start
            return
        if summary:
            warnings.warn(drift.DriftWarning(summary), stacklevel=2)

    async def _node_versions(self) -> dict[str, dict[str, str]] | None:
        """Each node's ``local_versions`` (with the packages a project's image added), as ``clusterkit
        doctor`` reads them, by ``scheduler`` and worker address; ``None`` if the scheduler cannot."""
        from distributed.protocol.pickle import dumps

        from clusterkit.status import local_versions

        call = {"function": dumps(local_versions), "args": dumps(()), "kwargs": dumps({}), "wait": True}
        answer = await self.scheduler_comm.run_function(**call)
        if not isinstance(answer, dict) or answer.get("status") != "OK":
            return None
        found = {"scheduler": dict(answer["result"])}
        answers = await self.scheduler_comm.broadcast(msg={"op": "run", **call}, on_error="ignore")
        for address, one in (answers or {}).items():
            if isinstance(one, dict) and one.get("status") == "OK":
                found[str(address)] = dict(one["result"])
        return found

    async def _close(self) -> None:
        if self.status == Status.closed:
            return
        await super()._close()
        await _in_thread(self._down)

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        self._loop_runner.stop()

    def get_logs(
        self, cluster: bool = True, scheduler: bool = True, workers: bool | Iterable[str] = True
    ) -> Any:
        """The logs as distributed's clusters return them: ``{"Cluster": ..., "Scheduler": ...,
        worker name: ...}``; ``workers``: all, none, or those named (as in ``cluster.workers``).

        Read from the runtime (container output, log files), so a node that crashed is in them too.
        An awaitable when the cluster is asynchronous.
        """
        return self.sync(self._get_logs, cluster=cluster, scheduler=scheduler, workers=workers)

    async def _get_logs(self, cluster: bool = True, scheduler: bool = True, workers: Any = True) -> Any:
        from distributed.utils import Log, Logs

        logs = Logs()
        if cluster:
            logs["Cluster"] = Log("\n".join(line[1] for line in self._cluster_manager_logs))
        found = await _in_thread(self._node_logs, scheduler, workers)
        logs.update((node, Log(text)) for node, text in found.items())
        return logs

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
