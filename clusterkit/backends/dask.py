"""Dask: a ``distributed`` scheduler and workers, and a client that finds them.

>>> from clusterkit import dask
>>> client = dask.connect_to_scheduler("127.0.0.1:8786", timeout=30)  # doctest: +SKIP
>>> dask.report_status().workers  # doctest: +SKIP
"""

from __future__ import annotations

import sys
import time
from typing import Any

from clusterkit.backends.base import (
    Backend,
    format_host,
    parse_address,
    run_async,
)
from clusterkit.errors import ClusterUnavailable
from clusterkit.status import ClusterStatus, WorkerStatus, local_versions
from clusterkit.waiting import NotReady, wait_for

_CONNECT_HINT = (
    "Is the cluster up (`clusterkit status`)? Start it with `clusterkit up`, or check the host and port"
)


async def _identity(address: str, timeout: float) -> dict[str, Any]:
    from distributed.core import rpc

    async with rpc(address, timeout=timeout) as scheduler:
        return await scheduler.identity()


class DaskBackend(Backend):
    """Dask through ``distributed``; the seed API as methods of one ready object."""

    name = "dask"
    scheme = "tcp"
    scheduler_port = 8786
    dashboard_port = 8787
    health_path = "/health"
    health_marker = "ok"

    def __init__(self) -> None:
        self._client: Any = None
        self._dashboard_url: str | None = None

    # -- programs -------------------------------------------------------------

    def scheduler_argv(self, host: str | None, port: int, dashboard_port: int) -> list[str]:
        argv = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", str(port)]
        if host:
            argv += ["--host", host, "--dashboard-address", f"{format_host(host)}:{dashboard_port}"]
        else:
            argv += ["--dashboard-address", f":{dashboard_port}"]
        return argv

    def worker_argv(
        self,
        scheduler_address: str,
        *,
        cores: int,
        memory: int,
        name: str | None,
        host: str | None,
        work_dir: str | None = None,
        **_: Any,
    ) -> list[str]:
        shost, sport = parse_address(scheduler_address, self.scheduler_port, self.scheme)
        argv = [
            sys.executable,
            "-m",
            "distributed.cli.dask_worker",
            f"tcp://{format_host(shost)}:{sport}",
            "--nthreads",
            str(cores),
            "--memory-limit",
            str(memory),
            "--nworkers",
            "1",
            # A worker whose scheduler is gone for a minute exits, not lingers.
            "--death-timeout",
            "60",
        ]
        if name:
            argv += ["--name", name]
        if work_dir:
            argv += ["--local-directory", work_dir]
        if host:
            argv += ["--host", host, "--dashboard-address", f"{format_host(host)}:0"]
        return argv

    # -- the seed API ----------------------------------------------------------

    def connect_to_scheduler(
        self,
        address: str = f"127.0.0.1:{8786}",
        timeout: float = 30,
        *,
        dashboard_url: str | None = None,
        ui_port: int | None = None,
        **client_kwargs: Any,
    ) -> Any:
        """Return a ``distributed.Client``, retrying with backoff until ``timeout``.

        Results travel through the scheduler, so workers need not be reachable
        from here (they may sit on a container network).

        Raises:
            ClusterUnavailable: naming the address, attempts, time and last error.
        """
        from distributed import Client

        host, port = parse_address(address, self.scheduler_port, self.scheme)
        url = f"tcp://{format_host(host)}:{port}"

        deadline = time.monotonic() + timeout

        def attempt() -> Any:
            # distributed retries inside one attempt too; keep it within our deadline.
            budget = max(0.5, min(5.0, deadline - time.monotonic()))
            return Client(url, timeout=budget, set_as_default=True, **client_kwargs)

        client = wait_for(
            attempt,
            what=f"the Dask scheduler at {url}",
            timeout=timeout,
            interval=0.2,
            retry_on=(OSError, TimeoutError),
            error=ClusterUnavailable,
            hint=_CONNECT_HINT,
        )
        self._client = client
        self._dashboard_url = dashboard_url
        return client

    def report_status(
        self,
        address: str | None = None,
        *,
        client: Any = None,
        dashboard_url: str | None = None,
        check: bool = False,
        tolerance: str | None = None,
    ) -> ClusterStatus:
        """Status of the cluster behind ``client`` (default: the last connection).

        ``check=True`` runs the drift check (:mod:`clusterkit.drift`) and raises
        ``VersionMismatch`` on an error; warnings land in ``status.differences``.
        """
        if client is None and address is not None:
            client = self.connect_to_scheduler(address, timeout=10)
        client = client or self._client
        if client is None:
            raise ClusterUnavailable(
                "no Dask cluster to report on: call connect_to_scheduler(address) first or pass an address"
            )
        info = client.scheduler_info(n_workers=-1)
        workers = _worker_statuses(info)
        versions = self.node_versions(client)
        differences: tuple[Any, ...] = ()
        if check:
            from clusterkit import drift

            found = drift.compare(versions, backend=self.name, tolerance=tolerance)
            drift.raise_on_errors(found)
            differences = tuple(found)
        return ClusterStatus(
            backend=self.name,
            scheduler_address=client.scheduler.address,
            state="RUNNING" if client.status == "running" else str(client.status).upper(),
            dashboard_url=dashboard_url or self._dashboard_url or client.dashboard_link,
            workers=workers,
            versions=versions,
            differences=differences,
        )

    # -- what runtimes use -------------------------------------------------------

    def cluster_class(self) -> type:
        from clusterkit.backends.dask_cluster import DaskCluster

        return DaskCluster

    def ship(self, connection: Any, archive: str) -> None:
        from pathlib import Path

        from clusterkit.testing.ship import ShipCode, ShipCodeToScheduler

        filename, data = Path(archive).name, Path(archive).read_bytes()
        connection.register_plugin(ShipCodeToScheduler(filename, data))
        connection.register_plugin(ShipCode(filename, data))

    def node_versions(self, client: Any) -> dict[str, dict[str, str]]:
        """Versions of the client, scheduler and every worker, keyed by worker name."""
        versions = {"client": local_versions()}
        try:
            versions["scheduler"] = client.run_on_scheduler(local_versions)
            names = {
                a: str(w.get("name", a)) for a, w in client.scheduler_info(n_workers=-1)["workers"].items()
            }
            for addr, found in client.run(local_versions).items():
                versions[names.get(addr, addr)] = found
        except Exception:  # noqa: BLE001 - nodes without clusterkit: fall back
            raw = client.get_versions(check=False)
            versions["scheduler"] = _flatten(raw.get("scheduler", {}))
            for addr, found in raw.get("workers", {}).items():
                versions[addr] = _flatten(found)
        return versions

    def _identity(self, host: str, port: int) -> dict[str, Any]:
        try:
            return run_async(_identity(f"tcp://{format_host(host)}:{port}", timeout=3))
        except (OSError, TimeoutError) as e:
            raise NotReady(f"scheduler at {host}:{port} does not answer ({e})") from e

    def count_workers(self, host: str, scheduler_port: int, dashboard_port: int) -> int:
        return len(self._identity(host, scheduler_port).get("workers", {}))

    def collect_status(self, host: str, scheduler_port: int, dashboard_port: int) -> ClusterStatus:
        info = self._identity(host, scheduler_port)
        workers = _worker_statuses(info)
        return ClusterStatus(
            backend=self.name,
            scheduler_address=f"{format_host(host)}:{scheduler_port}",
            state="RUNNING",
            dashboard_url=f"http://{format_host(host)}:{dashboard_port}/status",
            workers=workers,
            versions={"client": local_versions()},
        )


def _worker_statuses(info: dict[str, Any]) -> tuple[WorkerStatus, ...]:
    """Workers from the scheduler's ``identity`` / ``scheduler_info`` answer."""
    return tuple(
        WorkerStatus(
            name=str(w.get("name", addr)),
            address=addr,
            cores=int(w.get("nthreads", 0)),
            memory=int(w.get("memory_limit") or 0),
            state=str(w.get("status", "running")).upper(),
        )
        for addr, w in info.get("workers", {}).items()
    )


def _flatten(raw: dict[str, Any]) -> dict[str, str]:
    found = {k: str(v) for k, v in raw.get("packages", {}).items() if v is not None}
    python = raw.get("host", {}).get("python")
    if python:
        found["python"] = str(python).split()[0]
    return found


backend = DaskBackend()
