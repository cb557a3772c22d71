"""The compose runtime on the real engine: up, clients on the host, scale, down."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest

from clusterkit import cluster
from clusterkit.spec import resolve_spec
from tests.conftest import free_port
from tests.integration.conftest import leftovers

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def spec_for(backend: str, name: str, workers: int, **extra):
    return resolve_spec(
        overrides={
            "backend": backend,
            "name": name,
            "workers": workers,
            "scheduler_port": free_port(),
            "dashboard_port": free_port(),
            **extra,
        },
        environ={},
    )


def test_dask_up_compute_scale_down(docker_client, cluster_names, cli):
    spec = spec_for("dask", "ck-dask-it", 3)
    cluster_names.append(spec.name)
    status = cluster.up(spec, "compose", timeout=180)
    assert len(status.workers) == 3
    assert {(w.cores, w.memory) for w in status.workers} == {(1, 2**30)}

    from clusterkit import dask

    client = dask.connect_to_scheduler(spec.scheduler_address, timeout=30)
    try:
        futures = client.map(lambda x: x * x, range(1000))
        assert client.submit(sum, futures).result() == sum(x * x for x in range(1000))
    finally:
        client.close()

    # status from another process, as `make status` in another shell would
    shown = cli("status", "--name", spec.name, "--json")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count('"state": "RUNNING"') == 4  # cluster + 3 workers

    scheduler = docker_client.containers.list(
        filters={"label": [f"clusterkit.cluster={spec.name}", "clusterkit.role=scheduler"]}
    )[0]
    started_at = scheduler.attrs["State"]["StartedAt"]
    assert len(cluster.scale(spec.name, 5, "compose").workers) == 5
    assert len(cluster.scale(spec.name, 2, "compose").workers) == 2
    scheduler.reload()
    assert scheduler.attrs["State"]["StartedAt"] == started_at, "scale must not restart the scheduler"

    cluster.down(spec.name, "compose")
    assert leftovers(docker_client, spec.name) == []


@pytest.mark.spark
def test_spark_up_shuffle_and_udf_from_a_host_driver(docker_client, cluster_names):
    spec = spec_for("spark", "ck-spark-it", 2)
    cluster_names.append(spec.name)
    status = cluster.up(spec, "compose", timeout=240)
    assert [w.state for w in status.workers] == ["ALIVE", "ALIVE"]

    from pyspark.sql import functions as F

    from clusterkit import spark

    session = spark.connect_to_scheduler(spec.scheduler_address, ui_port=spec.dashboard_port, timeout=30)
    try:
        driver_host = session.sparkContext.getConf().get("spark.driver.host")
        assert driver_host != "127.0.0.1", "executors in containers cannot reach a loopback driver"
        pairs = session.sparkContext.parallelize([(i % 10, i) for i in range(10000)], 4)
        sums = dict(pairs.reduceByKey(lambda a, b: a + b).collect())
        assert sums == {k: sum(i for i in range(10000) if i % 10 == k) for k in range(10)}
        square = F.udf(lambda x: x * x, "long")
        rows = (
            session.range(1000)
            .withColumn("k", F.col("id") % 7)
            .groupBy("k")
            .agg(F.sum(square("id")).alias("s"))
        )
        assert {r.k: r.s for r in rows.collect()} == {
            k: sum(i * i for i in range(1000) if i % 7 == k) for k in range(7)
        }
    finally:
        session.stop()
    assert len(cluster.status(spec.name, "compose").alive_workers) == 2
    cluster.down(spec.name, "compose")
    assert leftovers(docker_client, spec.name) == []


@pytest.mark.spark
def test_two_clusters_side_by_side(docker_client, cluster_names):
    first = spec_for("dask", "ck-pair-dask", 1)
    second = spec_for("spark", "ck-pair-spark", 1)
    cluster_names += [first.name, second.name]
    cluster.up(first, "compose", timeout=180)
    cluster.up(second, "compose", timeout=240)
    assert cluster.status(first.name, "compose").backend == "dask"
    assert cluster.status(second.name, "compose").backend == "spark"
    assert len(cluster.status(first.name, "compose").workers) == 1
    assert len(cluster.status(second.name, "compose").alive_workers) == 1
    cluster.down(first.name, "compose")
    assert leftovers(docker_client, first.name) == []
    assert len(cluster.status(second.name, "compose").alive_workers) == 1, "the other cluster is untouched"
    cluster.down(second.name, "compose")


def test_default_ports_bind_to_loopback_only(docker_client, cluster_names):
    spec = spec_for("dask", "ck-ports", 1)
    cluster_names.append(spec.name)
    cluster.up(spec, "compose", timeout=180)
    shown = subprocess.run(
        ["docker", "ps", "--filter", f"label=clusterkit.cluster={spec.name}", "--format", "{{.Ports}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"127.0.0.1:{spec.scheduler_port}" in shown
    assert "0.0.0.0" not in shown and ":::" not in shown and "[::]" not in shown


def test_down_of_four_workers_is_graceful(docker_client, cluster_names):
    """Every node gets SIGTERM and exits by itself (no 137: no SIGKILL after the grace period).

    How long it takes is a benchmark (P3 in benchmarks/), not a test.
    """
    spec = spec_for("dask", "ck-down", 4)
    cluster_names.append(spec.name)
    cluster.up(spec, "compose", timeout=180)
    containers = docker_client.containers.list(filters={"label": f"clusterkit.cluster={spec.name}"})
    assert len(containers) == 5
    events = docker_client.events(
        since=int(time.time()) - 1,
        decode=True,
        filters={"label": f"clusterkit.cluster={spec.name}", "event": "die"},
    )
    cluster.down(spec.name, "compose")
    codes = []
    until = time.time() + 10
    for event in events:
        codes.append(int(event["Actor"]["Attributes"].get("exitCode", -1)))
        if len(codes) == 5 or time.time() > until:
            break
    events.close()
    assert len(codes) == 5 and 137 not in codes, f"exit codes {codes}"
    assert leftovers(docker_client, spec.name) == []


def test_port_taken_fails_cleanly(docker_client, cluster_names, cli):
    port = free_port()
    cluster_names.append("ck-busy")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        result = cli(
            "up",
            "--runtime",
            "compose",
            "--name",
            "ck-busy",
            "--scheduler-port",
            str(port),
            "--dashboard-port",
            str(free_port()),
        )
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert leftovers(docker_client, "ck-busy") == []


def test_missing_image_fails_cleanly(docker_client, cluster_names, cli):
    cluster_names.append("ck-noimage")
    result = cli(
        "up",
        "--runtime",
        "compose",
        "--name",
        "ck-noimage",
        "--image",
        "clusterkit/nope:missing",
        "--scheduler-port",
        str(free_port()),
        "--dashboard-port",
        str(free_port()),
    )
    assert result.returncode == 2
    assert "image 'clusterkit/nope:missing' is not present" in result.stderr
    assert leftovers(docker_client, "ck-noimage") == []


def test_scale_negative_and_unknown_cluster(docker_client, cli):
    negative = cli("scale", "-1", "--name", "ck-nothere", "--runtime", "compose")
    assert negative.returncode == 2
    missing = cli("status", "--name", "ck-nothere", "--runtime", "compose")
    assert missing.returncode == 2 and "no running cluster named 'ck-nothere'" in missing.stderr
    assert "Traceback" not in negative.stderr + missing.stderr


def test_timeout_names_what_is_missing_and_cleans_up(docker_client, cluster_names, cli):
    """Workers that can never register: one clear error, nothing left; with --keep, everything kept.

    Not a deadline shorter than a start takes (a faster start once made that `up` succeed): the
    workers' nanny is given a start method that does not exist, so they fail however fast the
    machine is, while the scheduler (which does not read that setting) starts normally.
    """
    cluster_names += ["ck-slow", "ck-kept"]
    never = "DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD=no-such-method"
    args = ["--runtime", "compose", "--workers", "2", "--timeout", "15", "--env", never]
    result = cli(
        "up",
        "--name",
        "ck-slow",
        *args,
        "--scheduler-port",
        str(free_port()),
        "--dashboard-port",
        str(free_port()),
    )
    assert result.returncode == 1
    assert "ck-slow" in result.stderr
    # Timed out naming the unregistered workers, or caught one of them exited: either names them.
    assert "timed out" in result.stderr or "a node exited" in result.stderr, result.stderr
    assert "ck-slow_worker_1" in result.stderr and "ck-slow_worker_2" in result.stderr, result.stderr
    assert "Nanny failed to start" in result.stderr  # the workers' own last log lines
    assert "Traceback" not in result.stderr
    assert leftovers(docker_client, "ck-slow") == []

    kept = cli(
        "up",
        "--name",
        "ck-kept",
        *args,
        "--keep",
        "--scheduler-port",
        str(free_port()),
        "--dashboard-port",
        str(free_port()),
    )
    assert kept.returncode == 1
    assert leftovers(docker_client, "ck-kept"), "--keep leaves the half-started cluster for debugging"
    assert cli("down", "--name", "ck-kept").returncode == 0
    assert leftovers(docker_client, "ck-kept") == []
