"""The pytest plugin, run the way a user runs it: a sample suite in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from clusterkit.waiting import NotReady, wait_for
from tests.integration.conftest import leftovers

pytestmark = [pytest.mark.docker, pytest.mark.slow]

RECORD = """
import os, pathlib

def record(handle, what=""):
    out = pathlib.Path(os.environ["CK_RECORD_DIR"])
    out.mkdir(exist_ok=True)
    (out / f"{os.getpid()}-{what}").write_text(handle.spec.name + " " + handle.scheduler_address)
"""


def names_seen(record_dir: Path) -> set[str]:
    return {p.read_text().split()[0] for p in record_dir.iterdir()} if record_dir.exists() else set()


def run_suite(pytester, record_dir, *args, timeout=600):
    env = {**os.environ, "CK_RECORD_DIR": str(record_dir)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=pytester.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_dask_suite_computes_and_leaves_nothing(pytester, docker_client, tmp_path):
    pytester.makepyfile(
        record=RECORD,
        test_sample="""
from record import record

def inc(x):
    return x + 1

def test_map(dask_cluster):
    record(dask_cluster, "map")
    c = dask_cluster.client
    futures = c.map(inc, range(100))  # held: released futures are forgotten by the scheduler
    assert c.submit(sum, futures).result() == sum(range(1, 101))

def test_two_workers(dask_cluster):
    assert len(dask_cluster.status().workers) == 2

def test_restart_gives_clean_workers(dask_cluster):
    import os

    c = dask_cluster.client
    before = set(c.run(os.getpid).items())  # (worker address, pid): a pid alone repeats across containers
    c.restart()  # the nannies fork new worker processes
    after = set(c.run(os.getpid).items())
    assert len(c.scheduler_info()["workers"]) == 2
    assert len(after) == 2 and not before & after
    assert c.submit(inc, 1).result() == 2
""",
    )
    result = run_suite(pytester, tmp_path / "rec")
    assert "3 passed" in result.stdout, result.stdout + result.stderr
    (name,) = names_seen(tmp_path / "rec")
    assert leftovers(docker_client, name) == []


@pytest.mark.spark
def test_spark_suite_runs_a_dataframe_job(pytester, docker_client, tmp_path):
    pytester.makepyfile(
        record=RECORD,
        test_spark="""
from record import record

def test_dataframe(spark_cluster, spark_session):
    record(spark_cluster, "df")
    s = spark_session
    assert s is spark_cluster.session
    assert s.conf.get("spark.sql.session.timeZone") == "UTC"
    df = s.createDataFrame([(i % 3, i) for i in range(300)], ["k", "v"])
    rows = {r["k"]: r["total"] for r in df.groupBy("k").sum("v").withColumnRenamed("sum(v)", "total").collect()}
    assert rows == {k: sum(i for i in range(300) if i % 3 == k) for k in range(3)}

def test_alive(spark_cluster):
    assert [w.state for w in spark_cluster.status().workers] == ["ALIVE", "ALIVE"]
""",
    )
    result = run_suite(pytester, tmp_path / "rec")
    assert "2 passed" in result.stdout, result.stdout + result.stderr
    (name,) = names_seen(tmp_path / "rec")
    assert leftovers(docker_client, name) == []


@pytest.mark.spark
def test_spark_connect_suite_starts_no_jvm_here(pytester, docker_client, tmp_path):
    """pyspark runs one kind of session per process: a run that uses ``spark_connect_session``
    gets a clear error, not a broken session, if it then asks for the classic one."""
    pytester.makepyfile(
        record=RECORD,
        test_connect="""
import pytest
from record import record

def triple(x):
    import record  # on the executor: only the shipped folder has it (whether this function was
    return 3 * x if callable(record.record) else -1  # pickled by value or by reference)

def test_connect(spark_cluster, spark_connect_session):
    from pyspark import SparkContext
    from pyspark.sql import functions as F
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    record(spark_cluster, "connect")
    assert isinstance(spark_connect_session, ConnectSession)
    assert spark_connect_session.range(300).selectExpr("id % 3 as k").distinct().count() == 3
    # The test's folder reached the executors as an artifact of the Connect session.
    tripled = spark_connect_session.range(4).select(F.udf(triple, "long")("id").alias("t"))
    assert sorted(r["t"] for r in tripled.collect()) == [0, 3, 6, 9]
    assert SparkContext._active_spark_context is None, "the driver runs in the cluster, not here"

def test_then_the_classic_session_is_a_clear_error(spark_cluster):
    from clusterkit.errors import ClusterUnavailable

    with pytest.raises(ClusterUnavailable, match="made a Spark Connect session"):
        spark_cluster.session
""",
    )
    result = run_suite(pytester, tmp_path / "rec")
    assert "2 passed" in result.stdout, result.stdout + result.stderr
    (name,) = names_seen(tmp_path / "rec")
    assert leftovers(docker_client, name) == []


def test_failing_and_raising_tests_still_clean_up(pytester, docker_client, tmp_path):
    pytester.makepyfile(
        record=RECORD,
        test_bad="""
from record import record

def test_fails(dask_cluster):
    record(dask_cluster, "fails")
    assert dask_cluster.client.submit(lambda: 1).result() == 2

def test_raises(dask_cluster):
    raise RuntimeError("boom")
""",
    )
    result = run_suite(pytester, tmp_path / "rec")
    assert "2 failed" in result.stdout, result.stdout + result.stderr
    (name,) = names_seen(tmp_path / "rec")
    assert leftovers(docker_client, name) == []


def test_killed_session_is_swept_by_gc(pytester, docker_client, tmp_path, cli):
    pytester.makepyfile(
        record=RECORD,
        test_hang="""
import threading
from record import record

def test_hangs(dask_cluster):
    record(dask_cluster, "hang")
    threading.Event().wait(600)  # the run is killed here
""",
    )
    # A short lease (the default is 60 s): the sweep's rule is the same, the test waits less.
    env = {**os.environ, "CK_RECORD_DIR": str(tmp_path / "rec"), "CLUSTERKIT_LEASE_SECONDS": "5"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=pytester.path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:

        def recorded() -> str:
            seen = names_seen(tmp_path / "rec")
            if not seen:
                raise NotReady("the sample test has not started its cluster yet")
            return seen.pop()

        name = wait_for(recorded, what="the sample session's cluster", timeout=300, interval=0.5)
        assert leftovers(docker_client, name), "the cluster should be running before the kill"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    assert leftovers(docker_client, name), "SIGKILL leaves the containers behind"
    said: list[str] = []

    def swept() -> None:
        # The killed session's lease must lapse first; then the next sweep removes it.
        result = cli("gc")
        assert result.returncode == 0, result.stderr
        said.append(result.stdout)
        if leftovers(docker_client, name):
            raise NotReady("the killed session's lease has not lapsed yet")

    try:
        wait_for(swept, what="gc to remove the killed session's cluster", timeout=90, interval=5)
    finally:
        for container in docker_client.containers.list(
            all=True, filters={"label": f"clusterkit.cluster={name}"}
        ):
            container.remove(force=True)
        for network in docker_client.networks.list(filters={"label": f"clusterkit.cluster={name}"}):
            network.remove()
    assert "removed" in said[-1]


def test_xdist_workers_share_one_cluster(pytester, docker_client, tmp_path):
    pytester.makepyfile(
        record=RECORD,
        test_shared="""
import pytest
from record import record

@pytest.mark.parametrize("i", range(4))
def test_uses_cluster(dask_cluster, i):
    record(dask_cluster, f"t{i}")
    assert dask_cluster.client.submit(pow, i, 2).result() == i * i
""",
    )
    result = run_suite(pytester, tmp_path / "rec", "-n", "2")
    assert "4 passed" in result.stdout, result.stdout + result.stderr
    records = [p.read_text() for p in (tmp_path / "rec").iterdir()]
    pids = {p.name.split("-")[0] for p in (tmp_path / "rec").iterdir()}
    assert len(pids) == 2, "both xdist workers ran tests"
    assert len(set(records)) == 1, f"one cluster for both workers, saw {set(records)}"
    (name,) = names_seen(tmp_path / "rec")
    assert leftovers(docker_client, name) == []
