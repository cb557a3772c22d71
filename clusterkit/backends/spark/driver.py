"""The Spark driver's side: finding the master's UI, choosing the driver's address and ports,
sizing executors, and stopping a session within a deadline.

Kept apart from :mod:`clusterkit.backends.spark` (the backend's data and programs)
because all of it runs in the client, never on a node.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

from clusterkit import records
from clusterkit.backends.spark.connect import SMALLEST_EXECUTOR_MB, executor_memory_mb
from clusterkit.backends.spark.watch import usable
from clusterkit.facts import SPARK
from clusterkit.net import format_host
from clusterkit.probe import fetch_json
from clusterkit.status import local_versions
from clusterkit.waiting import NotReady

#: Spark's own default for the master's web UI.
DEFAULT_UI_PORT = SPARK.dashboard_port


def stop_session(session: Any, timeout: float = 60) -> None:
    """``session.stop()`` with a deadline (see :meth:`SparkBackend.close`)."""
    import threading
    import warnings

    watch = getattr(session, "_clusterkit_watch", None)
    if watch is not None:
        watch.stop()
    stopper = threading.Thread(target=session.stop, name="clusterkit-spark-stop", daemon=True)
    stopper.start()
    stopper.join(timeout)
    if stopper.is_alive():
        warnings.warn(
            f"the Spark session did not stop within {timeout:.0f}s (its cluster does not answer); "
            "the driver ends with this process",
            RuntimeWarning,
            stacklevel=3,
        )


def session_usable(session: Any) -> bool:
    """False once ``session`` is stopped or its master lost it (then make a new one)."""
    return usable(session)


def find_ui_port(host: str, port: int) -> int | None:
    """The web UI port of the master at ``host:port``, from the running cluster.

    A clusterkit cluster (any runtime) whose scheduler this host reaches at
    that address says it; else Spark's default 8080, but only if the master
    answering there says it is the one on ``port``. ``None`` if neither.
    """
    found = records.reached_at(SPARK.name, host, port)
    if found is not None:
        return int(found["dashboard_port"])
    try:
        state = fetch_json(f"http://{format_host(host)}:{DEFAULT_UI_PORT}/json/", timeout=2)
    except NotReady:
        return None
    url = str(state.get("url") or "")
    return DEFAULT_UI_PORT if url.rsplit(":", 1)[-1] == str(port) else None


def _route_address(host: str, port: int) -> str:
    """This machine's address on the route to ``host`` (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((host, port))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _fitting_executor_memory(workers: list[dict[str, Any]], beside_connect: bool = False) -> str | None:
    """Executor memory that fits the smallest worker, capped at Spark's 1g default.

    An executor asking for more than any worker offers is the classic
    "Initial job has not accepted any resources" hang. ``beside_connect``: what is left
    beside one executor of the cluster's Connect server, where that is enough for one.

    >>> one_gib = [{"memory": 1024}]
    >>> _fitting_executor_memory(one_gib), _fitting_executor_memory(one_gib, beside_connect=True)
    ('1024m', '512m')
    """
    offers = [int(w.get("memory", 0)) for w in workers]
    if not offers:
        return None
    offer = min(offers)
    rest = offer - executor_memory_mb(offer * 2**20) if beside_connect else 0
    return f"{min(1024, rest if rest >= SMALLEST_EXECUTOR_MB else offer)}m"


def cluster_share(
    workers: list[dict[str, Any]], environ: Mapping[str, str], beside_connect: bool = False
) -> dict[str, str]:
    """Settings that size a session to the cluster's cores (the workers' ``cores``).

    Shuffles get 2 partitions per core (Spark's 200 make a test's small shuffle 200 tasks).
    A standalone application keeps its executors while it lives, so the cores it may
    take (``spark.cores.max``) leave room: ``beside_connect``, one executor of the
    cluster's Connect server (else its queries would wait until this session ends), with
    executors small enough (``spark.executor.cores``) that the master's spread-out placement
    leaves those cores free on one worker; under pytest-xdist (``PYTEST_XDIST_WORKER_COUNT``
    > 1), the other processes' shares.

    >>> workers = [{"cores": 4}, {"cores": 4}]
    >>> cluster_share(workers, {})
    {'spark.sql.shuffle.partitions': '16'}
    >>> beside = cluster_share(workers, {}, beside_connect=True)
    >>> beside["spark.cores.max"], beside["spark.executor.cores"]
    ('6', '2')
    >>> cluster_share(workers, {"PYTEST_XDIST_WORKER_COUNT": "3"}, beside_connect=True)["spark.cores.max"]
    '2'
    """
    cores = sum(int(w.get("cores") or 0) for w in workers)
    if cores <= 0:  # the master's web UI did not say: Spark's defaults
        return {}
    settings = {"spark.sql.shuffle.partitions": str(2 * cores)}
    smallest = min(int(w.get("cores") or 1) for w in workers)
    reserve = max(1, smallest // 2) if beside_connect else 0  # a Connect executor's cores
    mine = cores - reserve
    processes = environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if processes.isdigit() and int(processes) > 1:
        mine //= int(processes)
    if mine < cores:
        settings["spark.cores.max"] = str(max(1, mine))
    if beside_connect:
        settings["spark.executor.cores"] = str(max(1, min(smallest - reserve, mine)))
    return settings


def _executor_versions(_: Any) -> list[tuple[str, dict[str, str]]]:
    """Runs on an executor (clusterkit is on its path in every node image)."""
    return [(socket.gethostname(), local_versions(java=True))]
