"""The swarm runtime on a real (one-node) swarm: TLS for Dask, authentication for Spark, nothing left."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from clusterkit import Cluster, cluster, security
from clusterkit.waiting import NotReady, wait_for
from tests.conftest import free_port
from tests.integration import connect_child
from tests.integration.swarmhost import single_node_swarm

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.swarm]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def swarm(docker_client):
    with single_node_swarm(docker_client):
        yield docker_client


def swarm_leftovers(docker_client, name: str) -> list[str]:
    """Services, task containers, networks and secrets that still carry the cluster's labels."""
    selector = {"label": ["clusterkit.project=clusterkit", f"clusterkit.cluster={name}"]}
    found = [f"container {c.name}" for c in docker_client.containers.list(all=True, filters=selector)]
    found += [f"network {n.name}" for n in docker_client.networks.list(filters=selector)]
    if docker_client.info()["Swarm"]["LocalNodeState"] == "active":  # services and secrets need a swarm
        found += [f"service {s.name}" for s in docker_client.services.list(filters=selector)]
        found += [f"secret {s.name}" for s in docker_client.secrets.list(filters=selector)]
    return found


@pytest.fixture
def swarm_names(swarm):
    names: list[str] = []
    yield names
    for name in names:
        if swarm_leftovers(swarm, name):
            subprocess.run(
                [*_cli(), "down", "--name", name, "--runtime", "swarm"], capture_output=True, timeout=180
            )


def _cli() -> list[str]:
    return [sys.executable, "-m", "clusterkit"]


@pytest.mark.parametrize("name", ["dask-stack.yml", "spark-stack.yml"])
def test_checked_in_stack_files_pass_docker_stack_config(name):
    result = subprocess.run(
        ["docker", "stack", "config", "-c", str(ROOT / "compose" / name)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_dask_on_swarm_over_tls_scale_heal_and_down(swarm, swarm_names, cli):
    from distributed import Client

    name = "ck-swarm-dask"
    swarm_names.append(name)
    port, dashboard = free_port(), free_port()
    up = cli(
        "up", "--runtime", "swarm", "--backend", "dask", "--workers", "3", "--name", name,
        "--scheduler-port", str(port), "--dashboard-port", str(dashboard), "--env", "TOKEN=a$b",
    )  # fmt: skip
    assert up.returncode == 0, up.stderr

    # A host client computes over mutual TLS with the cluster's own certificates.
    with Cluster.from_name(name) as attached, Client(attached) as client:
        assert client.scheduler.address.startswith("tls://")
        assert client.submit(sum, range(100)).result() == 4950
        assert set(client.run(lambda: __import__("os").environ["TOKEN"]).values()) == {"a$b"}
    # A plain TCP client is refused.
    with pytest.raises((OSError, TimeoutError)):
        Client(f"tcp://127.0.0.1:{port}", timeout=5)

    status = json.loads(cli("status", "--name", name, "--json").stdout)
    assert len(status["workers"]) == 3
    assert all(w["node"] for w in status["workers"]), "status names the node of every worker"
    assert all(w["address"].startswith("tls://10.") for w in status["workers"]), "overlay addresses"

    scheduler_task = _running_tasks(swarm, name, "scheduler")
    assert len(cluster.scale(name, 5).workers) == 5
    assert _running_tasks(swarm, name, "scheduler") == scheduler_task, "scale must not restart the scheduler"

    # A killed worker task is replaced by the swarm; the scheduler sees the full count again.
    victim = swarm.containers.list(
        filters={"label": [f"clusterkit.cluster={name}", "clusterkit.role=worker"]}
    )[0]
    victim.kill()

    def full_again() -> None:
        seen = {w.name for w in cluster.status(name).workers}
        if len(seen) != 5 or victim.id[:12] in seen:
            raise NotReady(f"{len(seen)} workers: {sorted(seen)}")

    wait_for(full_again, what="a replacement worker", timeout=120, interval=0.5)

    doctor = cli("doctor", "--name", name)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    logs = cli("logs", "scheduler", "--name", name, "--tail", "5")
    assert logs.returncode == 0

    down = cli("down", "--name", name)
    assert down.returncode == 0, down.stderr
    assert swarm_leftovers(swarm, name) == []
    assert not security.client_dir(name).exists()


def _running_tasks(docker_client, name: str, role: str) -> list[str]:
    service = docker_client.services.list(
        filters={"label": [f"clusterkit.cluster={name}", f"clusterkit.role={role}"]}
    )[0]
    return sorted(t["ID"] for t in service.tasks() if t["Status"]["State"] == "running")


@pytest.mark.spark
def test_spark_on_swarm_with_authentication(swarm, swarm_names):
    from pyspark.sql import functions as F

    name = "ck-swarm-spark"
    swarm_names.append(name)
    port, dashboard = free_port(), free_port()
    with Cluster(
        "spark", workers=2, runtime="swarm", name=name, scheduler_port=port, dashboard_port=dashboard
    ) as c:
        assert c.spec.security == "tls", "secure by default on swarm"
        df = c.session().range(1200).withColumn("k", F.col("id") % 4)
        counts = {r["k"]: r["count"] for r in df.groupBy("k").count().collect()}
        assert counts == {0: 300, 1: 300, 2: 300, 3: 300}
        conf = c.session().sparkContext.getConf()
        assert conf.get("spark.authenticate") == "true" and conf.get("spark.network.crypto.enabled") == "true"

        # A driver without the secret (another program, its own JVM) is refused: a clear error, no hang.
        script = (
            "from clusterkit import spark\n"
            f"spark.connect_to_scheduler('127.0.0.1:{port}', timeout=30, ui_port={dashboard})\n"
        )
        refused = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
        assert refused.returncode != 0
        last = refused.stderr.strip().splitlines()[-1]
        assert last.startswith("clusterkit.errors.ClusterUnavailable") and "secret" in last, last

        # Spark Connect through the forwarder on 127.0.0.1, with the token the cluster requires,
        # from another process (pyspark runs one kind of session per process) while this
        # process's classic session lives: it leaves the Connect server room.
        assert c.report().connect_url == f"sc://localhost:{c.spec.connect_port}"
        seen = connect_child.run("--name", name)
        assert seen.get("remainders") == [500, 500], seen
        refused = connect_child.run("--port", str(c.spec.connect_port))
        line = refused.get("error", "")
        assert "refused the client" in line and "token" in line, refused
    assert swarm_leftovers(swarm, name) == []
