"""Spark standalone: a master and workers from the PyPI ``pyspark`` package.

The pyspark wheel carries Spark itself but no ``start-master.sh``; the master
and workers run as ``spark-class org.apache.spark.deploy.master.Master`` and
``...worker.Worker``, with ``SPARK_HOME`` set to the pyspark package folder.

    >>> from clusterkit import spark
    >>> session = spark.connect_to_scheduler("127.0.0.1:7077")  # doctest: +SKIP
    >>> session.sparkContext.parallelize(range(10)).sum()  # doctest: +SKIP
    45
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from clusterkit import client_env, mounts
from clusterkit.backends.base import Backend
from clusterkit.backends.spark.driver import _executor_versions, find_ui_port, session_usable, stop_session
from clusterkit.backends.spark.session import (
    AUTH_SETTINGS,
    add_py_file,
    driver_host_for,
    driver_settings,
    start_session,
)
from clusterkit.backends.spark.session import ship_project as ship_session_project
from clusterkit.backends.spark.state import MasterView
from clusterkit.backends.spark.watch import SessionWatch
from clusterkit.errors import ClusterUnavailable
from clusterkit.facts import SPARK
from clusterkit.net import format_host, parse_address
from clusterkit.spec import ClusterSpec, format_memory
from clusterkit.status import ClusterStatus, local_versions
from clusterkit.waiting import NotReady, accepts_connections, wait_for

__all__ = ["AUTH_SETTINGS", "SparkBackend", "backend", "session_usable", "spark_env", "stop_session"]

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"

_CONNECT_HINT = (
    "Is the cluster up (`clusterkit status`)? Start it with `clusterkit up --backend spark`, "
    "or check the host and port"
)


def spark_home() -> Path:
    """The pyspark package folder, which is a complete ``SPARK_HOME``."""
    import pyspark

    return Path(pyspark.__file__).parent


def spark_env(work_dir: str | None = None) -> dict[str, str]:
    """Environment for ``spark-class``: where Spark is and where it may write."""
    home = spark_home()
    scratch = Path(work_dir or os.environ.get("SPARK_WORKER_DIR") or tempfile.gettempdir())
    env = {
        "SPARK_HOME": str(home),
        "SPARK_WORKER_DIR": str(scratch / "work"),
        "SPARK_LOG_DIR": str(scratch / "logs"),
        "SPARK_LOCAL_DIRS": str(scratch / "local"),
        # Executors launched by a worker run this interpreter unless the driver says otherwise.
        "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
    }
    return env


class SparkBackend(MasterView, Backend):
    """Spark standalone; the seed API as methods of one ready object."""

    facts = SPARK
    name = SPARK.name
    scheme = SPARK.scheme
    scheduler_port = SPARK.scheduler_port
    dashboard_port = SPARK.dashboard_port
    listens_on_all_interfaces = False
    credential = ("secret", "spark_secret")
    health_path = SPARK.scheduler_ready.path
    health_marker = SPARK.scheduler_ready.marker
    #: The worker daemon, the executor JVM's off-heap memory and Python workers.
    memory_overhead = 1024 * 2**20
    #: Spark's daemons default to 1 GiB of heap each; they need far less.
    node_env = {"SPARK_DAEMON_MEMORY": "256m"}
    #: A worker's root is read-only: Spark's scratch (``spark_env`` puts its dirs under SPARK_WORKER_DIR)
    #: and the JVM's (native libraries it unpacks, e.g. snappy's for parquet) go to the scratch tmpfs.
    scratch_env = {
        "SPARK_LOCAL_DIRS": mounts.SCRATCH,  # a driver started in a node's container (the node sets its own)
        "SPARK_WORKER_DIR": f"{mounts.SCRATCH}/spark",
        "JAVA_TOOL_OPTIONS": f"-Djava.io.tmpdir={mounts.SCRATCH}",
    }
    worker_ui_port = SPARK.worker_ui_port
    local_worker_options = {"webui_port": 0}  # any free port: several workers on one host

    def __init__(self) -> None:
        self._session: Any = None
        self._ui_url: str | None = None
        self._master: tuple[str, int] | None = None

    # -- programs -------------------------------------------------------------

    def spark_class(self) -> str:
        return str(spark_home() / "bin" / "spark-class")

    def scheduler_argv(
        self,
        host: str | None,
        port: int,
        dashboard_port: int,
        secrets_dir: str | None = None,
        connect_port: int | None = None,
        **options: Any,
    ) -> list[str]:
        """The master; with ``connect_port``, the master and the Connect server as one node
        (:mod:`clusterkit.backends.spark.pair`; ``options``: the workers' size)."""
        if connect_port:
            argv = [sys.executable, "-m", "clusterkit.backends.spark.pair", "--port", str(port)]
            argv += ["--webui-port", str(dashboard_port), "--connect-port", str(connect_port)]
            for key, value in sorted(options.items()):
                argv += [f"--{key.replace('_', '-')}", str(value)]
            if host:
                argv += ["--host", host, "--python", sys.executable]  # local processes: this venv
            return [*argv, *(["--secrets", secrets_dir] if secrets_dir else [])]
        argv = [self.spark_class(), MASTER_CLASS, "--port", str(port), "--webui-port", str(dashboard_port)]
        if host:
            argv += ["--host", host]
        return argv

    def scheduler_options(self, spec: ClusterSpec) -> dict[str, int]:
        """The Connect server's port, and the sizes its executors are cut to (:mod:`.connect`)."""
        from clusterkit.backends.spark.connect import node_options

        return node_options(spec)

    def status_options(self, spec: ClusterSpec) -> dict[str, Any]:
        """The credentials, and the Connect server's port: ``up`` waits for it, ``status`` reports it."""
        return {**self.credentials(spec), "connect_port": spec.connect_port}

    def worker_argv(
        self,
        scheduler_address: str,
        *,
        cores: int,
        memory: int,
        name: str | None,
        host: str | None,
        webui_port: int = 8081,
        work_dir: str | None = None,
        **_: Any,
    ) -> list[str]:
        mhost, mport = parse_address(scheduler_address, self.scheduler_port, self.scheme)
        argv = [self.spark_class(), WORKER_CLASS, "--cores", str(cores), "--memory", format_memory(memory)]
        argv += ["--webui-port", str(webui_port)]
        argv += ["--work-dir", spark_env(work_dir)["SPARK_WORKER_DIR"]]
        if host:
            argv += ["--host", host]
        return [*argv, f"spark://{format_host(mhost)}:{mport}"]

    def node_process_env(
        self, role: str, work_dir: str | None, secrets_dir: str | None = None
    ) -> dict[str, str]:
        env = spark_env(work_dir)
        options = {"scheduler": "SPARK_MASTER_OPTS", "worker": "SPARK_WORKER_OPTS"}[role]
        flags = []
        if role == "scheduler":
            # Fail instead of drifting to another port if one is taken after the check.
            # No REST submission server: it would take fixed port 6066 on every master.
            flags += ["-Dspark.port.maxRetries=0", "-Dspark.master.rest.enabled=false"]
        if secrets_dir:
            from clusterkit import security

            # Standalone daemons read the shared secret from this variable (Spark reads secret
            # files only on Kubernetes), and pass it on to the executors they launch.
            env["_SPARK_AUTH_SECRET"] = (Path(secrets_dir) / security.SPARK_SECRET).read_text().strip()
            flags += [f"-D{key}={value}" for key, value in AUTH_SETTINGS.items()]
        if flags:
            env[options] = " ".join([*flags, os.environ.get(options, "")]).strip()
        return env

    # -- the seed API ----------------------------------------------------------

    def connect_to_scheduler(
        self,
        address: str | None = None,
        timeout: float = 60,
        *,
        ui_port: int | None = None,
        driver_host: str | None = None,
        bind_address: str | None = None,
        driver_port: int | None = None,
        block_manager_port: int | None = None,
        python: str | None = None,
        executor_memory: str | None = None,
        app_name: str = "clusterkit",
        conf: dict[str, str] | None = None,
        secret: str | None = None,
        ship_project: bool = True,
    ) -> Any:
        """Return a ``SparkSession`` on the master at ``address``; the driver runs here.

        Waits (with backoff, until ``timeout``) for the master to answer. For
        executors elsewhere (containers, other machines) set ``driver_host`` to
        an address of this machine they can reach, and ``python`` to their
        interpreter; the defaults suit a cluster on this machine. ``secret``
        (``clusterkit.security.spark_secret(name)``) authenticates to a cluster
        with ``security: tls`` and encrypts the driver's RPC. Without ``address``:
        ``$SPARK_MASTER`` (what ``clusterkit run``, ``shell`` and the notebook set, with the
        web UI and the secret), else 127.0.0.1:7077. ``ship_project`` adds the project's own
        packages to the application (:mod:`clusterkit.project`).

        Raises:
            ClusterUnavailable: naming the address, attempts, time and last error.
        """
        address, here, ui_port, secret = self._from_client_container(address, ui_port, secret)
        host, port = parse_address(address, self.scheduler_port, self.scheme)
        url = f"{self.scheme}://{format_host(host)}:{port}"
        ui_port, (workers, beside_connect) = self._reach_master(host, port, timeout, ui_port)
        settings = driver_settings(
            driver_host if driver_host is not None else driver_host_for(host, port, workers),
            workers,
            bind_address=bind_address,
            driver_port=driver_port,
            block_manager_port=block_manager_port,
            python=python,
            executor_memory=executor_memory,
            secret=secret,
            beside_connect=beside_connect,
        )
        session = start_session(url, app_name, {**settings, **(conf or {})}, secured=secret is not None)
        self._session = session
        if here is not None:  # a client container: the executors need the job's own modules
            from clusterkit import workdir

            workdir.ship_to_spark(session)
        if ship_project:
            self.ship_project(session)
        SessionWatch.attach(session, url, f"{format_host(host)}:{ui_port}" if ui_port else None, timeout)
        self._master = (host, port)
        self._ui_url = f"http://{format_host(host)}:{ui_port or self.dashboard_port}"
        return session

    def connect_session(self, spec: ClusterSpec, timeout: float = 60) -> Any:
        """A Spark Connect session on the cluster of ``spec`` (as this host reaches it), with the
        token its server requires under ``security: tls``; the driver runs in the cluster."""
        from clusterkit import security
        from clusterkit.backends.spark.connect import remote_session

        if not spec.connect_port:
            raise ClusterUnavailable(f"cluster {spec.name!r} runs no Spark Connect server")
        token = security.spark_connect_token(spec.name) if security.secured(spec) else None
        session = remote_session(spec.scheduler_host, spec.connect_port, token, timeout)
        try:
            self.ship_project(session)  # as a classic session does: the project's code on the executors
        except Exception as e:  # gRPC and Spark errors have no common base
            stop_session(session, 10)
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise ClusterUnavailable(f"could not send the project's code to Spark Connect: {first}") from e
        return session

    def _reach_master(
        self, host: str, port: int, timeout: float, ui_port: int | None
    ) -> tuple[int | None, tuple[list[dict[str, Any]], bool]]:
        """Wait for the master to accept connections; then its web UI port, ALIVE workers and
        whether a Connect server shares them.

        Where the workers are is read from the master's web UI: its port is found from the
        running cluster, never assumed (a guess that misses makes executors unreachable).
        """
        wait_for(
            lambda: accepts_connections(host, port),
            what=f"the Spark master at {self.scheme}://{format_host(host)}:{port}",
            timeout=timeout,
            interval=0.2,
            error=ClusterUnavailable,
            hint=_CONNECT_HINT,
        )
        ui_port = ui_port or find_ui_port(host, port)
        return ui_port, self._alive_workers(host, ui_port) if ui_port else ([], False)

    def _from_client_container(
        self, address: str | None, ui_port: int | None, secret: str | None
    ) -> tuple[str, client_env.ClientTarget | None, int | None, str | None]:
        """Without ``address``: the master, web UI port and secret the client container's
        environment names (:mod:`clusterkit.client_env`), else 127.0.0.1 on the default port."""
        if address is not None:
            return address, None, ui_port, secret
        address = os.environ.get(self.facts.address_env) or f"127.0.0.1:{self.scheduler_port}"
        here = client_env.target()
        if here is not None and here.backend == self.name:
            ui_port = ui_port or here.dashboard_port
            secret = secret if secret is not None else here.spark_secret()
        return address, here, ui_port, secret

    def close(self, connection: Any, timeout: float = 60) -> None:
        """Stop the session, waiting at most ``timeout`` seconds.

        With its cluster unreachable, ``SparkSession.stop()`` can wait minutes on
        RPC time-outs; past the deadline the driver is left to end with this process.
        """
        stop_session(connection, timeout)

    def report_status(
        self,
        address: str | None = None,
        *,
        ui_port: int | None = None,
        session: Any = None,
        check: bool = False,
        tolerance: str | None = None,
        **_: Any,
    ) -> ClusterStatus:
        """Status from the master's JSON endpoint (``/json/``).

        ``check=True`` also runs the drift check: a small job reads the versions
        on every executor (it needs a session: the last ``connect_to_scheduler``
        or ``session``) and raises ``VersionMismatch`` on an error.
        """
        if address is not None:
            host, port = parse_address(address, self.scheduler_port, self.scheme)
        elif self._master is not None:
            host, port = self._master
        else:
            return ClusterStatus.not_connected(
                self.name, "call connect_to_scheduler(address) first, or pass an address"
            )
        if ui_port is None and address is None and self._ui_url:
            ui_port = int(self._ui_url.rsplit(":", 1)[1])
        ui = ui_port or self.dashboard_port
        try:
            found = self.collect_status(host, port, ui)
        except NotReady as e:
            raise ClusterUnavailable(f"Spark master web UI at {host}:{ui} does not answer: {e}") from e
        if not check:
            return found
        from clusterkit import drift

        session = session or self._session
        if session is None:
            raise ClusterUnavailable("check=True needs a session: call connect_to_scheduler(address) first")
        versions = self.node_versions(session)
        differences = drift.compare(versions, backend=self.name, tolerance=tolerance)
        drift.raise_on_errors(differences)
        return dataclasses.replace(found, versions=versions, differences=tuple(differences))

    def node_versions(self, session: Any) -> dict[str, dict[str, str]]:
        """Versions of the client (driver) and of each executor host, from a tiny job."""
        sc = session.sparkContext
        tasks = max(2, sc.defaultParallelism) * 2
        found = {"client": local_versions(java=True)}
        for host, versions in sc.parallelize(range(tasks), tasks).mapPartitions(_executor_versions).collect():
            found[f"executor@{host}"] = versions
        return found

    # -- clients in a client container -------------------------------------------

    def client_environment(self, place: client_env.ClientPlace) -> dict[str, str]:
        """The master's address, and with ``security: tls`` the file holding the secret.

        >>> place = client_env.ClientPlace("x", SPARK.name, "sha256:1", "net", "scheduler", 7077, 8080)
        >>> backend.client_environment(place)["SPARK_MASTER"]
        'spark://scheduler:7077'
        """
        env = super().client_environment(place)
        env[self.facts.address_env] = f"{self.scheme}://{place.scheduler_host}:{place.scheduler_port}"
        if place.secured:
            (secret,) = self.credential_files()
            env[client_env.SPARK_SECRET_FILE] = f"{client_env.CREDENTIALS_DIR}/{secret}"
        return env

    def credential_files(self) -> tuple[str, ...]:
        """The shared secret the cluster authenticates with."""
        from clusterkit import security

        return (security.SPARK_SECRET,)

    def shell_namespace(self, target: client_env.ClientTarget) -> tuple[dict[str, Any], str, Any]:
        """``spark``, a ``SparkSession`` on the container's cluster, and ``sc``, its context."""
        session = self.connect_to_scheduler()
        banner = f"spark = SparkSession on {target.address} (version {session.version})"
        banner += "; sc = spark.sparkContext"
        return {"spark": session, "sc": session.sparkContext}, banner, session.stop

    # -- what runtimes use -------------------------------------------------------

    def ship(self, connection: Any, archive: str) -> None:
        add_py_file(connection, archive)

    def ship_project(self, connection: Any) -> str | None:
        return ship_session_project(connection)


backend = SparkBackend()
