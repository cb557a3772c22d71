"""Building the driver's ``SparkSession``: its address, ports, Python, executor size, UI.

What :meth:`SparkBackend.connect_to_scheduler <clusterkit.backends.spark.SparkBackend.connect_to_scheduler>`
settles once the master answers: executors must reach the driver (so its address
is this machine's on the route to a worker), run a Python they have, and ask for
memory a worker offers; a session also suits tests (UTC, few shuffle partitions, a
share of the cores under pytest-xdist) and shows its UI on 127.0.0.1. All of it runs
in the client, never on a node, and none of it changes the process's environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from clusterkit.backends.spark.driver import (
    _fitting_executor_memory,
    _free_port,
    _route_address,
    cluster_share,
    session_usable,
)
from clusterkit.backends.spark.gateway import log_hint, log_level, start_jvm
from clusterkit.errors import ClusterUnavailable
from clusterkit.net import loopback

#: Where the application UI listens, whatever address executors reach the driver at.
UI_HOST = "127.0.0.1"

#: What ``security: tls`` turns on, on the master, the workers, the executors and the driver.
AUTH_SETTINGS = {"spark.authenticate": "true", "spark.network.crypto.enabled": "true"}


def driver_host_for(host: str, port: int, workers: list[dict[str, Any]]) -> str:
    """The address executors reach this driver at: this machine's on the route to a worker
    (a container network's gateway, a LAN address), else to the master at ``host:port``."""
    far = next((w for w in workers if not loopback(str(w.get("host", "")))), None)
    if far is not None:
        return _route_address(str(far["host"]), int(far.get("port") or port))
    return "127.0.0.1" if loopback(host) else _route_address(host, port)


def driver_settings(
    driver_host: str,
    workers: list[dict[str, Any]],
    *,
    bind_address: str | None = None,
    driver_port: int | None = None,
    block_manager_port: int | None = None,
    python: str | None = None,
    executor_memory: str | None = None,
    secret: str | None = None,
    environ: Mapping[str, str] | None = None,
    beside_connect: bool = False,
) -> dict[str, str]:
    """The session's configuration (see ``connect_to_scheduler``); it changes no environment.

    Beside what executors need to reach the driver: the application UI on a free port of
    127.0.0.1 (whatever address executors reach the driver at), UTC, shuffle partitions and
    a share of the cores sized from ``workers`` that leaves room for the cluster's Connect
    server (``beside_connect``) and other pytest-xdist processes (:func:`cluster_share`),
    and the ``CLUSTERKIT_SPARK_LOG`` level read from ``environ`` (default ``os.environ``).
    The caller's ``conf`` goes over all of it.

    >>> settings = driver_settings("127.0.0.1", [{"cores": 2, "memory": 2048}], environ={})
    >>> settings["spark.sql.shuffle.partitions"], settings["spark.sql.session.timeZone"]
    ('4', 'UTC')

    Raises:
        InvalidValue: a bad ``CLUSTERKIT_SPARK_LOG``.
    """
    environ = os.environ if environ is None else environ
    local = loopback(driver_host)
    # Local executors run this interpreter; remote ones their own python3
    # (clusterkit images put their venv first on PATH).
    python = python or (sys.executable if local else "python3")
    if not local:
        # Fixed, known ports for the connections executors open back to us.
        driver_port = driver_port or _free_port(driver_host)
        block_manager_port = block_manager_port or _free_port(driver_host)
    settings = {
        "spark.driver.host": driver_host,
        "spark.driver.bindAddress": bind_address or driver_host,
        "spark.ui.enabled": "true",  # bound to 127.0.0.1: see gateway.JVM_ENV
        "spark.ui.port": str(_free_port(UI_HOST)),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.pyspark.python": python,  # what executors run: start_session gives it to the context
    }
    ports = {"spark.driver.port": driver_port, "spark.blockManager.port": block_manager_port}
    settings.update({key: str(port) for key, port in ports.items() if port})
    memory = executor_memory or _fitting_executor_memory(workers, beside_connect)
    if memory:
        settings["spark.executor.memory"] = memory
    settings.update(cluster_share(workers, environ, beside_connect))
    level = log_level(environ)
    if level:
        settings["spark.log.level"] = level
    if secret is not None:  # the cluster authenticates and encrypts its RPC: so must the driver
        settings.update(AUTH_SETTINGS)
        settings["spark.authenticate.secret"] = secret
    return settings


def start_session(url: str, app_name: str, settings: dict[str, str], secured: bool) -> Any:
    """A ``SparkSession`` on the master at ``url``, its driver JVM started quiet (:mod:`.gateway`).

    Raises:
        ClusterUnavailable: this process has a live session on another master (pyspark has one
            context per process, and would hand back that one), or the driver cannot start.
    """
    from pyspark.sql import SparkSession

    if "SPARK_CONNECT_MODE_ENABLED" in os.environ:  # pyspark's Connect mode: it refuses a classic driver
        raise ClusterUnavailable(
            f"cannot start a Spark driver for {url}: SPARK_CONNECT_MODE_ENABLED is set (pyspark sets "
            "it in a process that made a Spark Connect session, and child processes inherit it), "
            "so pyspark makes every session a Connect one; use session(connect=True), or start "
            "the classic session in a process without it"
        )
    _refuse_another_master(url)
    start_jvm(settings)
    builder = SparkSession.builder.master(url).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as e:  # py4j and JVM errors have no common base
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = (
            ""
            if secured
            else "; if the cluster runs with `security: tls` (every swarm cluster does), the master "
            "refuses a driver without its secret: use `Cluster.from_name(NAME).session()` or pass "
            "secret=clusterkit.security.spark_secret(NAME)"
        )
        raise ClusterUnavailable(
            f"could not start a Spark driver for {url}: {first}{hint}{log_hint()}"
        ) from e
    sc = session.sparkContext
    if "spark.pyspark.python" in settings:  # pyspark takes the executors' Python from here, not the conf
        sc.pythonExec = settings["spark.pyspark.python"]
    if "spark.log.level" in settings:  # also for a session this process made before
        sc.setLogLevel(settings["spark.log.level"])
    return session


def _refuse_another_master(url: str) -> None:
    """Stop this process's session if its master lost it; raise if a live one is on another master."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    sc = SparkContext._active_spark_context
    if sc is None:
        return
    previous = SparkSession._instantiatedSession
    if previous is not None and previous.sparkContext is sc and not session_usable(previous):
        previous.stop()  # lost its master: getOrCreate would hand it back
        return
    if sc.master != url:
        raise ClusterUnavailable(
            f"this process already has a Spark session on {sc.master} (app {sc.appName!r}); "
            f"stop it first (spark.stop()), then connect to {url}"
        )


def ship_project(session: Any) -> str | None:
    """The project's packages (:mod:`clusterkit.project`) to the application's executors.

    ``addPyFile`` (or a Connect session's artifact) reaches every executor of the application, also ones started later; a
    module nothing ships (a test module) is pickled by value by pyspark's cloudpickle.
    Once per session and content; returns the zip's digest, or ``None`` when nothing was added.
    """
    import tempfile

    from clusterkit import project

    if not project.enabled():
        return None
    from pyspark import cloudpickle

    found = project.archive()
    registered = cloudpickle.list_registry_pickle_by_value()
    for name in project.unshipped_modules(found.names if found else ()):
        if name in sys.modules and name not in registered:
            cloudpickle.register_pickle_by_value(sys.modules[name])
    sent: set[str] = session.__dict__.setdefault("_clusterkit_project", set())
    if found is None or found.digest in sent:
        return None
    path = os.path.join(tempfile.mkdtemp(prefix=f"{project.NAME}-"), found.filename)
    with open(path, "wb") as f:
        f.write(found.data)
    add_py_file(session, path)
    sent.add(found.digest)
    return found.digest


def add_py_file(session: Any, path: str) -> None:
    """``addPyFile`` for a classic session; a Connect session has no ``SparkContext``: its
    artifacts (``pyfile=True``) reach the Python of its executors the same way."""
    if type(session).__module__.startswith("pyspark.sql.connect"):
        session.addArtifacts(path, pyfile=True)
    else:
        session.sparkContext.addPyFile(path)
