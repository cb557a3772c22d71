"""Dask: a ``distributed`` scheduler and workers, and a client that finds them.

>>> from clusterkit import dask
>>> client = dask.connect_to_scheduler("127.0.0.1:8786", timeout=30)  # doctest: +SKIP
>>> dask.report_status().workers  # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from clusterkit import client_env
from clusterkit.backends.base import Backend, run_async
from clusterkit.backends.dask.status import (
    drift_summary,
    identity,
    node_versions,
    quiet_version_warning,
    warn_drift,
    worker_statuses,
)
from clusterkit.errors import BadAddress, ClusterUnavailable
from clusterkit.facts import DASK
from clusterkit.net import format_host, parse_address
from clusterkit.status import ClusterStatus, local_versions
from clusterkit.waiting import NotReady, wait_for

__all__ = ["RECONNECT_WINDOW", "DaskBackend", "backend", "drift_summary", "quiet_version_warning"]

_CONNECT_HINT = (
    "Is the cluster up (`clusterkit status`)? Start it with `clusterkit up`, or check the host and port"
)

#: Seconds a client keeps trying to reach a scheduler that went away (restarted by the engine or
#: the supervisor) before it closes; its running futures fail at once with a clear error.
RECONNECT_WINDOW = 60.0

#: tornado raises this when a TLS handshake starts on a connection the other side has already
#: dropped (a published port whose scheduler is not listening yet): "not yet", like OSError.
_TLS_NOT_YET = ValueError


def _tls_flags(secrets_dir: str | None) -> list[str]:
    """distributed's TLS options from the cluster's files (:mod:`clusterkit.security`)."""
    if not secrets_dir:
        return []
    from clusterkit import security

    folder = secrets_dir.rstrip("/")
    return [
        "--tls-ca-file",
        f"{folder}/{security.CA}",
        "--tls-cert",
        f"{folder}/{security.NODE_CERT}",
        "--tls-key",
        f"{folder}/{security.NODE_KEY}",
    ]


class DaskBackend(Backend):
    """Dask through ``distributed``; the seed API as methods of one ready object."""

    facts = DASK
    name = DASK.name
    scheme = DASK.scheme
    scheduler_port = DASK.scheduler_port
    dashboard_port = DASK.dashboard_port
    credential = ("security", "dask_security")
    health_path = DASK.scheduler_ready.path
    health_marker = DASK.scheduler_ready.marker
    #: A worker container's own HTTP server (``/health``, what its probe reads); not published.
    worker_ui_port = DASK.worker_ui_port
    #: Every node container gets this (a spec's ``env`` overrides it). The nanny forks its
    #: worker process instead of spawning a fresh interpreter, so a worker imports
    #: ``distributed`` once, not twice (~0.8 CPU-s less per worker in a container);
    #: ``client.restart()`` forks a new one from the nanny and keeps working. In a container
    #: tini signals the nanny alone, which closes its worker. Not for the local runtime: it
    #: signals each node's whole process group, and a forked worker has the nanny's asyncio
    #: SIGTERM handler, which does nothing in the child: `down` took 8.5 s in 2 of 9 benchmark
    #: runs with fork there (0.45-0.9 s otherwise), and the host's imports are fast anyway.
    container_env = {"DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD": "fork"}
    worker_module = "distributed.cli.dask_worker"

    def __init__(self) -> None:
        self._client: Any = None
        self._dashboard_url: str | None = None

    # -- programs -------------------------------------------------------------

    def scheduler_argv(
        self, host: str | None, port: int, dashboard_port: int, secrets_dir: str | None = None
    ) -> list[str]:
        # Through clusterkit.leave: the process ends as soon as the scheduler has closed.
        argv = [
            sys.executable,
            "-m",
            "clusterkit.leave",
            "distributed.cli.dask_scheduler",
            "--port",
            str(port),
        ]
        if secrets_dir:
            argv += ["--protocol", "tls", *_tls_flags(secrets_dir)]
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
        secrets_dir: str | None = None,
        webui_port: int | None = None,
        **_: Any,
    ) -> list[str]:
        shost, sport = parse_address(scheduler_address, self.scheduler_port)
        protocol = "tls" if secrets_dir else "tcp"
        argv = [
            sys.executable,
            "-m",
            self.worker_module,
            f"{protocol}://{format_host(shost)}:{sport}",
            *_tls_flags(secrets_dir),
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
            argv += ["--host", host, "--dashboard-address", f"{format_host(host)}:{webui_port or 0}"]
        elif webui_port is not None:
            # In a container: the HTTP server stays (its probe reads /health) but not the
            # Bokeh dashboard, which nobody outside the container network can open and whose
            # import (~0.6 CPU-s) every worker would pay before it registers.
            argv += ["--dashboard-address", f":{webui_port}", "--no-dashboard"]
        return argv

    def node_process_env(
        self, role: str, work_dir: str | None, secrets_dir: str | None = None
    ) -> dict[str, str]:
        # With TLS, refuse every plain-TCP connection (clients and nodes alike).
        return {"DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True"} if secrets_dir else {}

    # -- the seed API ----------------------------------------------------------

    def connect_to_scheduler(
        self,
        address: str | None = None,
        timeout: float = 30,
        *,
        dashboard_url: str | None = None,
        ui_port: int | None = None,
        security: Any = None,
        ship_project: bool = True,
        **client_kwargs: Any,
    ) -> Any:
        """Return a ``distributed.Client``, retrying with backoff until ``timeout``.

        Results travel through the scheduler, so workers need not be reachable
        from here (they may sit on a container network). ``security`` (a
        ``distributed.Security``, e.g. ``clusterkit.security.dask_security(name)``)
        connects over ``tls://``. Without ``address``: ``$DASK_SCHEDULER_ADDRESS``
        (what ``clusterkit run``, ``shell`` and the notebook set, TLS files included),
        else 127.0.0.1:8786. ``ship_project`` sends the project's own packages to the
        scheduler and every worker, later ones too (:mod:`clusterkit.project`).

        Raises:
            ClusterUnavailable: naming the address, attempts, time and last error.
        """
        from distributed import Client

        url, security = self._scheduler_url(address, security)
        deadline = time.monotonic() + timeout

        def attempt() -> Any:
            # distributed retries inside one attempt too; keep it within our deadline.
            budget = max(0.5, min(5.0, deadline - time.monotonic()))
            return Client(url, timeout=budget, set_as_default=True, security=security, **client_kwargs)

        quiet_version_warning()

        client = wait_for(
            attempt,
            what=f"the Dask scheduler at {url}",
            timeout=timeout,
            interval=0.2,
            retry_on=(OSError, TimeoutError, _TLS_NOT_YET),
            error=ClusterUnavailable,
            hint=_CONNECT_HINT,
        )
        # distributed reconnects a client whose scheduler went away for `_timeout` seconds (then
        # closes it); the short per-attempt budget above must not become that window.
        client._timeout = max(float(client._timeout or 0), RECONNECT_WINDOW)
        warn_drift(client)
        if ship_project and not client.asynchronous:  # an asynchronous one is not connected yet
            self.ship_project(client)
        self._client = client
        self._dashboard_url = dashboard_url
        return client

    def _scheduler_url(self, address: str | None, security: Any) -> tuple[str, Any]:
        """The URL to connect to, and the ``Security`` to use (from the client container's
        environment when there is no ``address``)."""
        if address is None:
            address = os.environ.get(self.facts.address_env) or f"127.0.0.1:{self.scheduler_port}"
            if security is None and address.startswith("tls://"):
                from distributed import Security

                security = Security(require_encryption=True)  # files from DASK_DISTRIBUTED__COMM__TLS__*
        scheme = str(address).split("://", 1)[0] if "://" in str(address) else None
        if scheme not in (None, "tcp", "tls"):
            raise BadAddress(
                f"address: {address!r} has scheme {scheme!r}; expected tcp://host:port or tls://"
            )
        host, port = parse_address(address, self.scheduler_port)
        return f"{'tls' if security is not None else 'tcp'}://{format_host(host)}:{port}", security

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
        if client is None or client.status in ("closing", "closed"):
            return ClusterStatus.not_connected(
                self.name, "call connect_to_scheduler(address) first, or pass an address"
            )
        info = client.scheduler_info(n_workers=-1)
        workers = worker_statuses(info)
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

    # -- clients in a client container -------------------------------------------

    def client_environment(self, place: client_env.ClientPlace) -> dict[str, str]:
        """The scheduler's address (``tls://`` with ``security: tls``, then the TLS files), the
        working folder's modules preloaded (:mod:`clusterkit.workdir`), the dashboard link.

        >>> place = client_env.ClientPlace("x", DASK.name, "sha256:1", "net", "scheduler", 8786, 8787)
        >>> backend.client_environment(place)["DASK_SCHEDULER_ADDRESS"]
        'tcp://scheduler:8786'
        """
        env = super().client_environment(place)
        scheme = "tls" if place.secured else "tcp"
        env[self.facts.address_env] = f"{scheme}://{place.scheduler_host}:{place.scheduler_port}"
        # Every client sends the working folder's modules to the nodes (clusterkit.workdir).
        env["DASK_DISTRIBUTED__CLIENT__PRELOAD"] = '["clusterkit.workdir"]'
        env["DASK_LOGGING"] = '{"distributed.preloading": "warning"}'  # no "Creating preload" line
        if place.dashboard_link:
            # What `client.dashboard_link` shows: a link the browser on this machine can open.
            env["DASK_DISTRIBUTED__DASHBOARD__LINK"] = place.dashboard_link
        if place.secured:
            folder, (ca, cert, key) = client_env.CREDENTIALS_DIR, self.credential_files()
            tls = "DASK_DISTRIBUTED__COMM__TLS__"
            env[tls + "CA_FILE"] = f"{folder}/{ca}"
            env[tls + "CLIENT__CERT"] = f"{folder}/{cert}"
            env[tls + "CLIENT__KEY"] = f"{folder}/{key}"
            env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] = "True"
        return env

    def credential_files(self) -> tuple[str, ...]:
        """The CA certificate and the client's certificate and key."""
        from clusterkit import security

        return (security.CA, security.CLIENT_CERT, security.CLIENT_KEY)

    def shell_namespace(self, target: client_env.ClientTarget) -> tuple[dict[str, Any], str, Any]:
        """``client``, a ``distributed.Client`` on the container's cluster."""
        client = self.connect_to_scheduler()
        banner = f"client = {client!r}; dashboard: {client.dashboard_link}"
        return {"client": client}, banner, client.close

    # -- what runtimes use -------------------------------------------------------

    def ship(self, connection: Any, archive: str) -> None:
        from pathlib import Path

        from clusterkit.backends.dask.ship import ShipCode, ShipCodeToScheduler

        filename, data = Path(archive).name, Path(archive).read_bytes()
        connection.register_plugin(ShipCodeToScheduler(filename, data))
        connection.register_plugin(ShipCode(filename, data))

    def ship_project(self, client: Any) -> str | None:
        """Send the project's packages through ``client`` (once per scheduler and content)."""
        from clusterkit.backends.dask.ship import send_project

        return client.sync(send_project, client.scheduler)

    def node_versions(self, client: Any) -> dict[str, dict[str, str]]:
        """Versions of the client, scheduler and every worker, keyed by worker name."""
        return node_versions(client)

    def _identity(self, host: str, port: int, security: Any = None, n_workers: int = -1) -> dict[str, Any]:
        try:
            scheme = "tls" if security is not None else "tcp"
            return run_async(identity(f"{scheme}://{format_host(host)}:{port}", 3, security, n_workers))
        except (OSError, TimeoutError, _TLS_NOT_YET) as e:
            raise NotReady(f"scheduler at {host}:{port} does not answer ({e})") from e

    def count_workers(
        self, host: str, scheduler_port: int, dashboard_port: int, security: Any = None, **_: Any
    ) -> int:
        # The count alone: cheap on a busy scheduler, whatever the workers' metrics hold.
        return int(self._identity(host, scheduler_port, security, n_workers=0).get("n_workers", 0))

    def collect_status(
        self, host: str, scheduler_port: int, dashboard_port: int, security: Any = None, **_: Any
    ) -> ClusterStatus:
        info = self._identity(host, scheduler_port, security)
        workers = worker_statuses(info)
        return ClusterStatus(
            backend=self.name,
            scheduler_address=f"{format_host(host)}:{scheduler_port}",
            state="RUNNING",
            dashboard_url=f"http://{format_host(host)}:{dashboard_port}{self.facts.dashboard_path}",
            workers=workers,
            versions={"client": local_versions()},
        )


backend = DaskBackend()
