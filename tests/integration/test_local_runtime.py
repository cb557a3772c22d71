"""The local-process runtime with real Dask and Spark processes (no Docker)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import psutil
import pytest

from clusterkit import cluster
from clusterkit.errors import ClusterUnavailable, PortInUse
from clusterkit.spec import resolve_spec

pytestmark = pytest.mark.slow


def _our_processes(run_dir) -> list[psutil.Process]:
    """Node processes (own process group) whose command line or environment name this run dir.

    The test's own children (a Spark driver JVM) share the test's process group.
    """
    import os

    found = []
    mine = os.getpgid(0)
    for proc in psutil.process_iter(["cmdline", "environ"]):
        try:
            if os.getpgid(proc.pid) == mine:
                continue
            text = " ".join(proc.info["cmdline"] or []) + " ".join((proc.info["environ"] or {}).values())
        except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
            continue
        if str(run_dir) in text and proc.status() != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def test_dask_cluster_computes_reports_and_leaves_nothing(run_dir, ports, teardown, cli):
    scheduler_port, dashboard_port = ports
    teardown.append("dtest")
    result = cli(
        "up",
        "--runtime",
        "local",
        "--backend",
        "dask",
        "--name",
        "dtest",
        "--workers",
        "2",
        "--cores",
        "2",
        "--memory",
        "768m",
        "--scheduler-port",
        str(scheduler_port),
        "--dashboard-port",
        str(dashboard_port),
    )
    assert result.returncode == 0, result.stderr
    assert "2 of 2 workers alive" in result.stdout

    from clusterkit import dask

    client = dask.connect_to_scheduler(f"127.0.0.1:{scheduler_port}", timeout=10)
    try:

        def inc(x):
            return x + 1

        futures = client.map(inc, range(1000))  # held, or the scheduler forgets them
        assert client.submit(sum, futures).result() == sum(range(1, 1001))
        status = dask.report_status()
        assert len(status.workers) == 2
        assert {w.cores for w in status.workers} == {2}
        assert {w.memory for w in status.workers} == {768 * 2**20}
        assert status.versions["client"]["distributed"] == status.versions["dtest-worker-1"]["distributed"]
    finally:
        client.close()

    status = cli("status", "--name", "dtest", "--json")
    assert status.returncode == 0, status.stderr
    assert '"cores": 2' in status.stdout

    assert _our_processes(run_dir), "the cluster's processes should be visible before down"
    down = cli("down", "--name", "dtest")
    assert down.returncode == 0, down.stderr
    teardown.clear()
    assert _our_processes(run_dir) == []
    assert not (run_dir / "dtest").exists()


@pytest.mark.spark
def test_spark_cluster_runs_a_job_and_reports_alive_workers(run_dir, ports, teardown):
    scheduler_port, ui_port = ports
    spec = resolve_spec(
        overrides={
            "backend": "spark",
            "name": "stest",
            "workers": 2,
            "cores": 1,
            "memory": "1g",
            "scheduler_port": scheduler_port,
            "dashboard_port": ui_port,
        },
        environ={},
    )
    teardown.append("stest")
    up = cluster.up(spec, "local", timeout=120)
    assert len(up.alive_workers) == 2

    from clusterkit import spark

    session = spark.connect_to_scheduler(f"127.0.0.1:{scheduler_port}", ui_port=ui_port, timeout=30)
    try:
        total = session.sparkContext.parallelize(range(100000), 4).map(lambda x: x * 2).sum()
        assert total == 2 * sum(range(100000))
        status = spark.report_status()
        assert [w.state for w in status.workers] == ["ALIVE", "ALIVE"]
        assert {(w.cores, w.memory) for w in status.workers} == {(1, 2**30)}
    finally:
        session.stop()
    cluster.down("stest", "local")
    teardown.clear()
    assert _our_processes(run_dir) == []


def test_connect_retries_until_a_late_scheduler_starts(run_dir, ports):
    """The scheduler starts 3 s after the client begins to connect."""
    port = ports[0]
    procs = []

    def start_later():
        time.sleep(3)  # the delay under test, not a readiness wait
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--dashboard-address",
                    f"127.0.0.1:{ports[1]}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    from clusterkit import dask

    thread = threading.Thread(target=start_later)
    thread.start()
    try:
        client = dask.connect_to_scheduler(f"127.0.0.1:{port}", timeout=30)
        assert procs, "connected, so the scheduler started after the client began to try"
        assert client.status == "running"
        client.close()
    finally:
        thread.join()
        for proc in procs:
            proc.terminate()
            proc.wait(10)


@pytest.mark.parametrize("backend", ["dask", "spark"])
def test_connect_to_nothing_fails_within_deadline(backend, ports):
    from clusterkit.backends import get_backend

    address = f"127.0.0.1:{ports[0]}"
    with pytest.raises(ClusterUnavailable) as caught:  # pytest-timeout guards against a hang
        get_backend(backend).connect_to_scheduler(address, timeout=2)
    message = str(caught.value)
    assert f"127.0.0.1:{ports[0]}" in message and "attempts" in message and "clusterkit up" in message


def test_port_already_taken_is_exit_2_and_starts_nothing(run_dir, ports, cli):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports[0]))
        holder.listen()
        result = cli(
            "up",
            "--runtime",
            "local",
            "--name",
            "busy",
            "--scheduler-port",
            str(ports[0]),
            "--dashboard-port",
            str(ports[1]),
        )
    assert result.returncode == 2
    assert f"port {ports[0]} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert _our_processes(run_dir) == []
    assert not (run_dir / "busy").exists()


def test_start_scheduler_refuses_a_taken_port(ports):
    from clusterkit import dask

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports[0]))
        holder.listen()
        with pytest.raises(PortInUse):
            dask.start_scheduler(f"127.0.0.1:{ports[0]}", dashboard_port=ports[1], detach=True)


def test_a_worker_that_dies_fails_up_fast_with_its_log(run_dir, ports, cli):
    """A worker pointed at memory it cannot have exits; up names it and cleans up.

    ``SPARK_WORKER_OPTS`` reaches only the worker's JVM (the master reads
    ``SPARK_MASTER_OPTS``): an initial heap above the daemons' maximum
    (``SPARK_DAEMON_MEMORY``, 256m) stops the worker's JVM before it starts,
    while the master starts and runs as usual.
    """
    result = cli(
        "up",
        "--runtime",
        "local",
        "--name",
        "broken",
        "--backend",
        "spark",
        "--workers",
        "1",
        "--env",
        "SPARK_WORKER_OPTS=-Xms8g",
        "--scheduler-port",
        str(ports[0]),
        "--dashboard-port",
        str(ports[1]),
        "--timeout",
        "60",
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    ended = [line.strip() for line in result.stderr.splitlines() if "; last log lines:" in line]
    assert len(ended) == 1 and ended[0].startswith("worker-1 (pid "), result.stderr  # the worker, only
    assert "exited with code" in ended[0] or "is not running" in ended[0], result.stderr
    assert "Initial heap size set to a larger value than the maximum heap size" in result.stderr
    assert _our_processes(run_dir) == []
    assert not (run_dir / "broken").exists()
