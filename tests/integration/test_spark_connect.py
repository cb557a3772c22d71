"""Spark Connect on the real engine and as local processes: the server is part of the scheduler node.

A client that needs no JVM reaches it at the ``connect_url`` that ``status --json``
gives; with ``security: tls`` it needs the cluster's token. A Connect server that
dies takes its scheduler node with it, so status and healing see it. pyspark runs
one kind of session per process, so the Connect sessions are made in a child
process (:mod:`tests.integration.connect_child`).
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
from tests.integration import connect_child
from tests.integration.conftest import leftovers

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.spark]


def ports() -> dict[str, int]:
    return {"scheduler_port": free_port(), "dashboard_port": free_port(), "connect_port": free_port()}


def test_a_client_at_the_status_connect_url_computes_beside_a_classic_session(
    docker_client, cluster_names, cli
):
    from pyspark.sql import functions as F

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

        # This process's classic session keeps its executors while it lives; it leaves the
        # Connect server room, so a Connect client (another process) still computes.
        classic = c.session()
        assert classic.range(100).withColumn("k", F.col("id") % 2).groupBy("k").count().count() == 2
        seen = connect_child.run("--url", status["connect_url"], "--name", name, "--then-classic")
        assert seen.get("remainders") == [500, 500], seen
        assert seen["timezone"] == "UTC"
        assert "made a Spark Connect session" in seen["classic"], "one kind of session per process"

        # And here, beside the classic session: one clear line, and nothing switched to Connect.
        with pytest.raises(ClusterUnavailable, match="has a classic Spark session"):
            c.session(connect=True)
        assert classic.range(10).select(F.col("id") * 2).count() == 10
        scheduler = docker_client.containers.list(
            filters={"label": [f"clusterkit.cluster={name}", "clusterkit.role=scheduler"]}
        )[0]
        published = scheduler.attrs["NetworkSettings"]["Ports"][f"{c.spec.connect_port}/tcp"]
        assert {p["HostIp"] for p in published} == {"127.0.0.1"}, "published on loopback only"
    assert leftovers(docker_client, name) == []


def test_with_tls_the_token_is_required_and_session_connect_passes_it(docker_client, cluster_names, cli):
    from clusterkit import security

    name = "ck-connect-tls"
    cluster_names.append(name)
    with Cluster("spark", workers=1, runtime="compose", name=name, security="tls", **ports()) as c:
        assert connect_child.run("--name", name).get("remainders") == [500, 500]
        refused = connect_child.run("--port", str(c.spec.connect_port))
        line = refused.get("error", "")
        assert "refused the client" in line and "token" in line, refused
        shown = cli("status", "--name", name, "--json")
        assert security.spark_connect_token(name) not in shown.stdout + shown.stderr
    assert leftovers(docker_client, name) == []


def test_testcontainers_publish_the_connect_port(docker_client, cluster_names):
    name = "ck-connect-tc"
    cluster_names.append(name)
    with Cluster("spark", workers=1, runtime="testcontainers", name=name) as c:
        assert c.report().connect_url == f"sc://localhost:{c.client_spec.connect_port}"
        seen = connect_child.run("--port", str(c.client_spec.connect_port))
        assert seen.get("remainders") == [500, 500], seen
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
        assert connect_child.run("--name", c.spec.name).get("remainders") == [500, 500]
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
        assert connect_child.run("--name", c.spec.name).get("remainders") == [500, 500]
