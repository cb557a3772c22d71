"""Spark Connect on the real engine and as local processes: the server is part of the scheduler node.

A client that needs no JVM reaches it at the ``connect_url`` that ``status --json``
gives; with ``security: tls`` it needs the cluster's token. A Connect server that
dies takes its scheduler node with it, so status and healing see it.
"""

from __future__ import annotations

import json
import signal

import psutil
import pytest

from clusterkit import Cluster
from clusterkit.errors import ClusterUnavailable
from clusterkit.waiting import NotReady, wait_for
from tests.conftest import free_port
from tests.integration.conftest import leftovers

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.spark]


def ports() -> dict[str, int]:
    return {"scheduler_port": free_port(), "dashboard_port": free_port(), "connect_port": free_port()}


def remainders(session) -> list[int]:
    """A DataFrame job with a shuffle and a Python UDF: what runs on the executors."""
    from pyspark.sql import functions as F

    double = F.udf(lambda x: 2 * x, "long")
    df = session.range(1000).select((double("id") % 4).alias("k"))
    return sorted(r["count"] for r in df.groupBy("k").count().collect())


def test_a_client_at_the_status_connect_url_computes_on_compose(docker_client, cluster_names, cli):
    from pyspark.sql import SparkSession

    name = "ck-connect-compose"
    cluster_names.append(name)
    with Cluster("spark", workers=2, runtime="compose", name=name, **ports()) as c:
        shown = cli("status", "--name", name, "--json")
        assert shown.returncode == 0, shown.stderr
        status = json.loads(shown.stdout)
        assert status["health"] == "healthy", status["problems"]
        assert status["connect_url"] == f"sc://localhost:{c.spec.connect_port}"
        human = cli("status", "--name", name)
        assert f"spark connect: sc://localhost:{c.spec.connect_port}" in human.stdout

        session = SparkSession.builder.remote(status["connect_url"]).create()
        try:
            assert remainders(session) == [500, 500]
            assert session.conf.get("spark.sql.session.timeZone") == "UTC"
        finally:
            session.stop()
        scheduler = docker_client.containers.list(
            filters={"label": [f"clusterkit.cluster={name}", "clusterkit.role=scheduler"]}
        )[0]
        published = scheduler.attrs["NetworkSettings"]["Ports"][f"{c.spec.connect_port}/tcp"]
        assert {p["HostIp"] for p in published} == {"127.0.0.1"}, "published on loopback only"
    assert leftovers(docker_client, name) == []


def test_with_tls_the_token_is_required_and_session_connect_passes_it(docker_client, cluster_names, cli):
    from clusterkit.backends.spark.connect import remote_session

    name = "ck-connect-tls"
    cluster_names.append(name)
    with Cluster("spark", workers=1, runtime="compose", name=name, security="tls", **ports()) as c:
        assert remainders(c.session(connect=True)) == [500, 500]
        with pytest.raises(ClusterUnavailable) as refused:
            remote_session("127.0.0.1", c.spec.connect_port, None, timeout=30)
        line = str(refused.value)
        assert "refused the client" in line and "token" in line and "\n" not in line
        shown = cli("status", "--name", name, "--json")
        from clusterkit import security

        assert security.spark_connect_token(name) not in shown.stdout + shown.stderr
    assert leftovers(docker_client, name) == []


def test_testcontainers_publish_the_connect_port(docker_client, cluster_names):
    name = "ck-connect-tc"
    cluster_names.append(name)
    with Cluster("spark", workers=1, runtime="testcontainers", name=name) as c:
        assert c.report().connect_url == f"sc://localhost:{c.client_spec.connect_port}"
        assert remainders(c.session(connect=True)) == [500, 500]
    assert leftovers(docker_client, name) == []


def _connect_server(scheduler_pid: int) -> psutil.Process:
    """The Connect server's JVM among the scheduler node's children."""
    for child in psutil.Process(scheduler_pid).children(recursive=True):
        if "SparkConnectServer" in " ".join(child.cmdline()):
            return child
    raise NotReady("no Spark Connect server under the scheduler node yet")


def test_local_processes_serve_connect_and_a_dead_server_is_a_dead_node(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with Cluster("spark", workers=1, runtime="local", name="ck-connect-local", **ports()) as c:
        assert remainders(c.session(connect=True)) == [500, 500]
        scheduler = next(n for n in c.runtime.nodes(c.spec.name) if n.role == "scheduler")
        pid = int(scheduler.where.split()[-1])
        server = wait_for(lambda: _connect_server(pid), what="the Connect server", timeout=30)
        server.send_signal(signal.SIGKILL)
        psutil.wait_procs([psutil.Process(pid)], timeout=60)
        report = c.runtime.status(c.spec.name)  # healing may have begun: not healthy either way
        assert report.health != "healthy" and report.problems, (
            "a dead Connect server is a dead scheduler node"
        )
        cli("status", "--name", c.spec.name, "--repair")  # unless the cluster's supervisor did already

        def serves_again() -> str:
            found = c.runtime.status(c.spec.name)
            if found.health != "healthy":
                raise NotReady(f"{found.health}: {found.problems}")
            return str(found.connect_url)

        assert wait_for(serves_again, what="the healed scheduler node", timeout=180).endswith(
            str(c.spec.connect_port)
        )
        again = next(n for n in c.runtime.nodes(c.spec.name) if n.role == "scheduler")
        assert again.where != scheduler.where, "a new scheduler node (master and Connect server)"
        assert remainders(c.session(connect=True)) == [500, 500]
