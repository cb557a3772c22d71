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
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from clusterkit.backends.base import Backend
from clusterkit.backends.spark.driver import (
    DEFAULT_UI_PORT,
    _executor_versions,
    _fetch_json,
    _fitting_executor_memory,
    _free_port,
    _route_address,
    find_ui_port,
    session_usable,
    stop_session,
)
from clusterkit.backends.spark.watch import SessionWatch
from clusterkit.errors import ClusterUnavailable
from clusterkit.net import format_host, loopback, parse_address
from clusterkit.spec import format_memory
from clusterkit.status import ClusterStatus, WorkerStatus, local_versions
from clusterkit.waiting import NotReady, wait_for

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
#: What ``security: tls`` turns on, on the master, the workers, the executors and the driver.
AUTH_SETTINGS = {"spark.authenticate": "true", "spark.network.crypto.enabled": "true"}
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


class SparkBackend(Backend):
    """Spark standalone; the seed API as methods of one ready object."""

    name = "spark"
    scheme = "spark"
    scheduler_port = 7077
    dashboard_port = DEFAULT_UI_PORT
    listens_on_all_interfaces = False
    credential = ("secret", "spark_secret")
    health_path = "/json/"
    health_marker = '"ALIVE"'
    #: The worker daemon, the executor JVM's off-heap memory and Python workers.
    memory_overhead = 1024 * 2**20
    #: Spark's daemons default to 1 GiB of heap each; they need far less.
    node_env = {"SPARK_DAEMON_MEMORY": "256m"}
    worker_ui_port = 8081
    local_worker_options = {"webui_port": 0}  # any free port: several workers on one host

    def __init__(self) -> None:
        self._session: Any = None
        self._ui_url: str | None = None
        self._master: tuple[str, int] | None = None

    # -- programs -------------------------------------------------------------

    def spark_class(self) -> str:
        return str(spark_home() / "bin" / "spark-class")

    def scheduler_argv(
        self, host: str | None, port: int, dashboard_port: int, secrets_dir: str | None = None
    ) -> list[str]:
        argv = [self.spark_class(), MASTER_CLASS, "--port", str(port), "--webui-port", str(dashboard_port)]
        if host:
            argv += ["--host", host]
        return argv

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
        argv = [
            self.spark_class(),
            WORKER_CLASS,
            "--cores",
            str(cores),
            "--memory",
            format_memory(memory),
            "--webui-port",
            str(webui_port),
        ]
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
    ) -> Any:
        """Return a ``SparkSession`` on the master at ``address``; the driver runs here.

        Waits (with backoff, until ``timeout``) for the master to answer. For
        executors elsewhere (containers, other machines) set ``driver_host`` to
        an address of this machine they can reach, and ``python`` to their
        interpreter; the defaults suit a cluster on this machine. ``secret``
        (``clusterkit.security.spark_secret(name)``) authenticates to a cluster
        with ``security: tls`` and encrypts the driver's RPC. Without ``address``:
        ``$SPARK_MASTER`` (what ``clusterkit run``, ``shell`` and the notebook set, with the
        web UI and the secret), else 127.0.0.1:7077.

        Raises:
            ClusterUnavailable: naming the address, attempts, time and last error.
        """
        from pyspark.sql import SparkSession

        from clusterkit import client_env

        here = None
        if address is None:
            address = os.environ.get(client_env.SPARK_MASTER) or f"127.0.0.1:{self.scheduler_port}"
            here = client_env.target()
            if here is not None and here.backend == "spark":
                ui_port = ui_port or here.dashboard_port
                secret = secret if secret is not None else here.spark_secret()
        host, port = parse_address(address, self.scheduler_port, self.scheme)
        url = f"spark://{format_host(host)}:{port}"

        def master_answers() -> None:
            with socket.create_connection((host, port), timeout=2):
                pass

        wait_for(
            master_answers,
            what=f"the Spark master at {url}",
            timeout=timeout,
            interval=0.2,
            error=ClusterUnavailable,
            hint=_CONNECT_HINT,
        )
        # Where the workers are is read from the master's web UI: its port is found from the
        # running cluster, never assumed (a guess that misses makes executors unreachable).
        ui_port = ui_port or find_ui_port(host, port)
        workers = self._alive_workers(host, ui_port) if ui_port else []
        if driver_host is None:
            # Executors must reach the driver: use this machine's address on the
            # route to a worker (a container network's gateway, a LAN address).
            far = next((w for w in workers if not loopback(str(w.get("host", "")))), None)
            if far is not None:
                driver_host = _route_address(str(far["host"]), int(far.get("port") or port))
            else:
                driver_host = "127.0.0.1" if loopback(host) else _route_address(host, port)
        local = loopback(driver_host)
        # Local executors run this interpreter; remote ones their own python3
        # (clusterkit images put their venv first on PATH).
        python = python or (sys.executable if local else "python3")
        # pyspark reads this once, when the context starts: it is what executors run.
        os.environ["PYSPARK_PYTHON"] = python
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        if not local:
            # Fixed, known ports for the connections executors open back to us.
            driver_port = driver_port or _free_port(driver_host)
            block_manager_port = block_manager_port or _free_port(driver_host)
        settings = {
            "spark.driver.host": driver_host,
            "spark.driver.bindAddress": bind_address or driver_host,
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
        }
        if driver_port:
            settings["spark.driver.port"] = str(driver_port)
        if block_manager_port:
            settings["spark.blockManager.port"] = str(block_manager_port)
        settings["spark.pyspark.python"] = python
        memory = executor_memory or _fitting_executor_memory(workers)
        if memory:
            settings["spark.executor.memory"] = memory
        if secret is not None:  # the cluster authenticates and encrypts its RPC: so must the driver
            settings.update(AUTH_SETTINGS)
            settings["spark.authenticate.secret"] = secret
        settings.update(conf or {})
        builder = SparkSession.builder.master(url).appName(app_name)
        for key, value in settings.items():
            builder = builder.config(key, value)
        previous = SparkSession.getActiveSession()
        if previous is not None and not session_usable(previous):
            previous.stop()  # lost its master: getOrCreate would hand it back
        try:
            session = builder.getOrCreate()
        except Exception as e:  # py4j and JVM errors have no common base
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            hint = (
                ""
                if secret is not None
                else "; if the cluster runs with `security: tls` (every swarm cluster does), the master "
                "refuses a driver without its secret: use `Cluster.from_name(NAME).session()` or pass "
                "secret=clusterkit.security.spark_secret(NAME)"
            )
            raise ClusterUnavailable(f"could not start a Spark driver for {url}: {first}{hint}") from e
        self._session = session
        if here is not None:  # a client container: the executors need the job's own modules
            from clusterkit import workdir

            workdir.ship_to_spark(session)
        if getattr(session, "_clusterkit_watch", None) is None:
            ui = f"{format_host(host)}:{ui_port}" if ui_port else None
            session._clusterkit_watch = SessionWatch(session, url, ui, deadline=timeout).start()
        self._master = (host, port)
        self._ui_url = f"http://{format_host(host)}:{ui_port or self.dashboard_port}"
        return session

    def close(self, connection: Any, timeout: float = 60) -> None:
        """Stop the session, waiting at most ``timeout`` seconds.

        With its cluster unreachable, ``SparkSession.stop()`` can wait minutes on
        RPC time-outs; past the deadline the driver is left to end with this process.
        """
        stop_session(connection, timeout)

    def _alive_workers(self, host: str, ui_port: int) -> list[dict[str, Any]]:
        try:
            state = _fetch_json(f"http://{format_host(host)}:{ui_port}/json/", timeout=2)
        except NotReady:
            return []
        return [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]

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

    # -- what runtimes use -------------------------------------------------------

    def ship(self, connection: Any, archive: str) -> None:
        connection.sparkContext.addPyFile(archive)

    def _state(self, host: str, dashboard_port: int) -> dict[str, Any]:
        state = _fetch_json(f"http://{format_host(host)}:{dashboard_port}/json/")
        if state.get("status") != "ALIVE":
            raise NotReady(f"Spark master is {state.get('status')!r}, not ALIVE")
        return state

    def count_workers(self, host: str, scheduler_port: int, dashboard_port: int, **_: Any) -> int:
        state = self._state(host, dashboard_port)
        return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")

    def collect_status(self, host: str, scheduler_port: int, dashboard_port: int, **_: Any) -> ClusterStatus:
        state = self._state(host, dashboard_port)
        workers = tuple(
            WorkerStatus(
                name=str(w.get("id")),
                address=f"{w.get('host')}:{w.get('port')}",
                cores=int(w.get("cores", 0)),
                memory=int(w.get("memory", 0)) * 2**20,
                state=str(w.get("state")),
            )
            for w in state.get("workers", [])
            if w.get("state") != "DEAD"
        )
        return ClusterStatus(
            backend=self.name,
            scheduler_address=f"{format_host(host)}:{scheduler_port}",
            state=str(state.get("status")),
            dashboard_url=f"http://{format_host(host)}:{dashboard_port}",
            workers=workers,
            versions={"client": local_versions()},
        )


backend = SparkBackend()
