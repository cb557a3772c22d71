"""Building the driver's ``SparkSession``: its address, ports, Python and executor size.

What :meth:`SparkBackend.connect_to_scheduler <clusterkit.backends.spark.SparkBackend.connect_to_scheduler>`
settles once the master answers: executors must reach the driver (so its address
is this machine's on the route to a worker), run a Python they have, and ask for
memory a worker offers. All of it runs in the client, never on a node.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from clusterkit.backends.spark.driver import (
    _fitting_executor_memory,
    _free_port,
    _route_address,
    session_usable,
)
from clusterkit.errors import ClusterUnavailable
from clusterkit.net import loopback

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
) -> dict[str, str]:
    """The session's configuration (see ``connect_to_scheduler``); sets ``PYSPARK_PYTHON``."""
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
    return settings


def start_session(url: str, app_name: str, settings: dict[str, str], secured: bool) -> Any:
    """A ``SparkSession`` on the master at ``url``; ``ClusterUnavailable`` if the driver cannot start."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(url).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    previous = SparkSession.getActiveSession()
    if previous is not None and not session_usable(previous):
        previous.stop()  # lost its master: getOrCreate would hand it back
    try:
        return builder.getOrCreate()
    except Exception as e:  # py4j and JVM errors have no common base
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = (
            ""
            if secured
            else "; if the cluster runs with `security: tls` (every swarm cluster does), the master "
            "refuses a driver without its secret: use `Cluster.from_name(NAME).session()` or pass "
            "secret=clusterkit.security.spark_secret(NAME)"
        )
        raise ClusterUnavailable(f"could not start a Spark driver for {url}: {first}{hint}") from e


def ship_project(session: Any) -> str | None:
    """The project's packages (:mod:`clusterkit.project`) to the application's executors.

    ``addPyFile`` reaches every executor of the application, also ones started later; a
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
    session.sparkContext.addPyFile(path)
    sent.add(found.digest)
    return found.digest
