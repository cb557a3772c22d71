"""Spark Connect as data: the spec's port, the rendered node, the server's configuration, the probe."""

from __future__ import annotations

import socket
import threading

import pytest

from clusterkit.backends.spark.connect import executor_memory_mb, server_conf, url
from clusterkit.errors import InvalidValue
from clusterkit.nodes import node_commands
from clusterkit.probe import grpc_answers
from clusterkit.render import compose
from clusterkit.security import connect_token
from clusterkit.spec import ClusterSpec, resolve_spec
from clusterkit.waiting import NotReady


def test_spark_has_a_connect_port_and_dask_none():
    assert ClusterSpec(name="s", backend="spark").connect_port == 15002
    assert ClusterSpec(name="d", backend="dask").connect_port is None
    assert (
        resolve_spec(overrides={"backend": "spark", "connect_port": "16000"}, environ={}).connect_port
        == 16000
    )


@pytest.mark.parametrize(
    ("backend", "port", "says"),
    [("dask", 15002, "has no Connect server"), ("spark", 7077, "other than"), ("spark", 0, "1 to 65535")],
)
def test_a_bad_connect_port_names_the_field(backend, port, says):
    with pytest.raises(InvalidValue) as e:
        ClusterSpec(name="x", backend=backend, scheduler_port=7077, dashboard_port=8080, connect_port=port)
    assert str(e.value).startswith("connect_port:") and says in str(e.value)


def test_the_scheduler_node_runs_the_server_and_publishes_its_port_on_loopback():
    spec = ClusterSpec(name="s", backend="spark", scheduler_port=7077, dashboard_port=8080, cores=2)
    commands = node_commands(spec)["scheduler"]
    command = commands["command"]
    assert command[command.index("--connect-port") + 1] == "15002"
    assert command[command.index("--worker-cores") + 1] == "2"
    assert commands["probe"][-2:] == ["--connect", "127.0.0.1:15002"]
    ports = compose.render(spec, "img:1")["services"]["scheduler"]["ports"]
    assert "127.0.0.1:15002:15002" in ports
    dask = compose.render(ClusterSpec(name="d"), "img:1")["services"]["scheduler"]
    assert len(dask["ports"]) == 2 and "--connect-port" not in dask["command"]


def test_the_server_shares_the_workers_and_authenticates_when_secured():
    conf = server_conf(
        "spark://m:7077", 15002, bind="0.0.0.0", driver_host="10.0.0.2",
        worker_cores=4, worker_memory=4 * 2**30, cluster_cores=8, python="python3", secured=True,
    )  # fmt: skip
    assert conf["spark.dynamicAllocation.enabled"] == "true"
    assert conf["spark.dynamicAllocation.shuffleTracking.enabled"] == "true"
    assert conf["spark.dynamicAllocation.minExecutors"] == "0"
    assert (conf["spark.executor.cores"], conf["spark.executor.memory"]) == ("2", "1024m")
    assert conf["spark.cores.max"] == "4", "half the cluster: a classic session always finds room"
    assert conf["spark.authenticate"] == "true" and "spark.authenticate.secret" not in conf
    assert executor_memory_mb(600 * 2**20) == 512, "never below what Spark accepts"


def test_the_token_is_derived_and_the_url_is_localhost_for_loopback():
    assert connect_token("a") != connect_token("b") and "s3cret" not in connect_token("s3cret")
    assert url("127.0.0.1", 15002) == "sc://localhost:15002"
    assert url("10.1.2.3", 15002) == "sc://10.1.2.3:15002"


def test_a_port_that_accepts_but_speaks_no_grpc_is_not_ready():
    """As the engine's proxy does for a published port whose container does not listen."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def accept_and_close() -> None:
        conn, _ = server.accept()
        conn.close()

    threading.Thread(target=accept_and_close, daemon=True).start()
    with pytest.raises(NotReady, match="nothing answers gRPC"):
        grpc_answers("127.0.0.1", server.getsockname()[1], timeout=5)
    server.close()
