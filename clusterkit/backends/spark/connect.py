"""Spark Connect: the server beside every Spark master, and the sessions that talk to it.

The Connect server is a Spark application whose driver runs in the cluster,
next to the master (:mod:`clusterkit.backends.spark.pair` runs both as the
scheduler node); a client needs no JVM and reaches it through one published
gRPC port. Executors therefore never have to reach back to the client, which is
what a driver on this host cannot offer to a worker on another swarm node.

It shares the workers on purpose: dynamic allocation (with shuffle tracking,
as standalone has no external shuffle service) takes executors only while a
query runs and gives them back after :data:`IDLE`; it takes at most half the
cluster's cores, and each executor asks for half of a worker's memory, so a
classic session (or a second pytest-xdist process) always finds room beside it.

    >>> url("127.0.0.1", 15002)
    'sc://localhost:15002'
"""

from __future__ import annotations

import warnings
from typing import Any

from clusterkit.errors import ClusterUnavailable
from clusterkit.net import format_host, loopback
from clusterkit.probe import grpc_answers
from clusterkit.spec import ClusterSpec
from clusterkit.waiting import wait_for

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
#: The variable the server reads its token from (Spark 4).
TOKEN_ENV = "SPARK_CONNECT_AUTHENTICATE_TOKEN"  # noqa: S105 - a variable name
#: How long an idle Connect application keeps an executor.
IDLE = "30s"
#: The smallest executor Spark accepts is 450 MiB (1.5 x its 300 MiB reserve).
SMALLEST_EXECUTOR_MB = 512
#: The application name the server registers with the master (a classic session leaves it room).
APP_NAME = "Spark Connect server"


def node_options(spec: ClusterSpec) -> dict[str, int]:
    """What the scheduler node of ``spec`` needs to run the server: its port and the workers' size.

    >>> node_options(ClusterSpec(name="s", backend="spark", workers=3, cores=2))["cluster_cores"]
    6
    """
    if not spec.connect_port:
        return {}
    size = {
        "worker_cores": spec.cores,
        "worker_memory": spec.memory,
        "cluster_cores": spec.cores * spec.workers,
    }
    return {"connect_port": spec.connect_port, **size}


def executor_memory_mb(worker_memory: int) -> int:
    """An executor of the Connect application: half a worker (at most 1 GiB), so another
    application's executor fits beside it, but never below what Spark accepts.

    >>> executor_memory_mb(2**30), executor_memory_mb(4 * 2**30), executor_memory_mb(512 * 2**20)
    (512, 1024, 512)
    """
    half = min(1024, worker_memory // 2**20 // 2)
    return max(half, min(SMALLEST_EXECUTOR_MB, worker_memory // 2**20))


def server_conf(
    master_url: str,
    port: int,
    *,
    bind: str,
    driver_host: str,
    worker_cores: int,
    worker_memory: int,
    cluster_cores: int,
    python: str,
    secured: bool,
) -> dict[str, str]:
    """The Connect server's configuration (``spark-submit --conf``): pure data.

    >>> conf = server_conf("spark://m:7077", 15002, bind="0.0.0.0", driver_host="10.0.0.2",
    ...                    worker_cores=2, worker_memory=2**30, cluster_cores=4, python="python3",
    ...                    secured=False)
    >>> conf["spark.connect.grpc.binding.port"], conf["spark.executor.memory"], conf["spark.executor.cores"]
    ('15002', '512m', '1')
    """
    conf = {
        "spark.master": master_url,
        "spark.app.name": APP_NAME,
        "spark.connect.grpc.binding.address": bind,
        "spark.connect.grpc.binding.port": str(port),
        "spark.driver.host": driver_host,
        "spark.driver.bindAddress": "0.0.0.0" if not loopback(bind) else bind,
        # Fail rather than drift to another port (clients are told this one).
        "spark.port.maxRetries": "0",
        "spark.ui.enabled": "false",  # not published: the classic session's UI is the one people open
        "spark.dynamicAllocation.enabled": "true",
        "spark.dynamicAllocation.shuffleTracking.enabled": "true",
        # Executors that hold shuffle data are kept until it is no longer needed: at most this long.
        "spark.dynamicAllocation.shuffleTracking.timeout": IDLE,
        "spark.dynamicAllocation.minExecutors": "0",
        "spark.dynamicAllocation.executorIdleTimeout": IDLE,
        "spark.executor.cores": str(max(1, worker_cores // 2)),
        # At most half the cluster (as it was at start): a classic session always finds room.
        "spark.cores.max": str(max(1, cluster_cores // 2)),
        "spark.executor.memory": f"{executor_memory_mb(worker_memory)}m",
        "spark.pyspark.python": python,
        "spark.sql.session.timeZone": "UTC",
    }
    if secured:
        conf.update({"spark.authenticate": "true", "spark.network.crypto.enabled": "true"})
    return conf


def server_argv(spark_submit: str, properties: str) -> list[str]:
    """``spark-submit`` of the server class (what Spark's ``start-connect-server.sh`` runs), its
    configuration in the ``properties`` file (:func:`properties_text`): it holds the secret."""
    return [spark_submit, "--class", SERVER_CLASS, "--properties-file", properties]


def properties_text(conf: dict[str, str]) -> str:
    r"""``conf`` as a Java properties file (``\`` and line ends escaped).

    >>> properties_text({"spark.app.name": "a b", "k": "x\\y"})
    'spark.app.name=a b\nk=x\\\\y\n'
    """
    escape = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r"})
    return "".join(f"{key}={str(value).translate(escape)}\n" for key, value in conf.items())


def url(host: str, port: int) -> str:
    """The ``sc://`` address a client on this host uses.

    ``localhost`` for a loopback address: pyspark's client sends a token over
    plain gRPC only to ``localhost`` (TLS everywhere else), and the server
    speaks plain gRPC behind a port published on loopback.
    """
    return f"sc://{'localhost' if loopback(host) else format_host(host)}:{port}"


def remote_session(host: str, port: int, token: str | None = None, timeout: float = 60) -> Any:
    """A Spark Connect session on the server at ``host:port``, once it answers (within ``timeout``).

    Raises ``ClusterUnavailable`` naming the address, and what to pass when the server refused it.
    """
    from pyspark.sql import SparkSession

    try:  # what pyspark's Connect client needs beyond pyspark (its `connect` extra)
        import google.rpc  # noqa: F401
        import grpc  # noqa: F401
        import grpc_status  # noqa: F401
        import zstandard  # noqa: F401
    except ImportError as e:
        raise ClusterUnavailable(
            f"Spark Connect's client packages are missing ({e}); pip install 'clusterkit[spark]'"
        ) from e
    address = url(host, port)
    _refuse_beside_classic(address)
    wait_for(
        lambda: grpc_answers(host, port),
        what=f"the Spark Connect server at {address}",
        timeout=timeout,
        interval=0.2,
        error=ClusterUnavailable,
        hint="Is the cluster up (`clusterkit status` shows its connect_url)?",
    )
    remote = address + (f"/;token={token}" if token else "")
    try:
        with warnings.catch_warnings():  # a refusal is retried, then warned about: our error says it
            warnings.filterwarnings("ignore", r"\[RETRIES_EXCEEDED\]")
            session = SparkSession.builder.remote(remote).create()
            session.client.set_retry_policies([_bounded_retries()])
            session.version  # noqa: B018 - the first call opens the channel and authenticates (no job)
    except Exception as e:  # noqa: BLE001 - gRPC and Spark errors have no common base
        raise ClusterUnavailable(_refusal(address, token, e)) from None
    return session


def _refuse_beside_classic(address: str) -> None:
    """pyspark runs one kind of session per process: a Connect session switches the whole
    process to Connect (``pyspark.sql.functions`` then build Connect columns), which breaks
    a classic session still in use here."""
    from pyspark import SparkContext

    if SparkContext._active_spark_context is not None:
        raise ClusterUnavailable(
            f"cannot make a Spark Connect session on {address}: this process has a classic Spark "
            "session, and pyspark runs one kind per process; stop it first (session.stop()) "
            "or use Spark Connect from another process"
        )


def _bounded_retries() -> Any:
    """pyspark's retry policy, bounded to about 15 s instead of about 12 minutes.

    Its default (15 retries, backoff up to 60 s) also applies to the threads that
    release finished queries, which the interpreter joins at exit: a process
    whose cluster went away would hang that long before it ends.
    """
    from pyspark.sql.connect.client.retries import DefaultPolicy

    return DefaultPolicy(max_retries=6, max_backoff=5000)


def usable(session: Any) -> bool:
    """Whether a Connect session still has its server (one cheap call, no job): a restarted
    scheduler node has a new server that knows no session of the old one."""
    if session.is_stopped:
        return False
    try:
        session.version  # noqa: B018 - an RPC
        session.conf.get("spark.app.name")  # a new server answers the first; this one says "changed"
    except Exception:  # noqa: BLE001 - gRPC and Spark errors have no common base
        return False
    return not session.client.is_closed


def _refusal(address: str, token: str | None, error: Exception) -> str:
    text = str(error)
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(error).__name__)
    if "UNAUTHENTICATED" in text or "nauthenticated" in text:
        fix = (
            "the token it was given is not this cluster's"
            if token
            else "it requires the cluster's token: use `Cluster.from_name(NAME).session(connect=True)` "
            "or pass clusterkit.security.spark_connect_token(NAME) as ;token="
        )
        return f"the Spark Connect server at {address} refused the client: {fix}"
    return f"cannot reach the Spark Connect server at {address}: {first[:300]}"
