"""``clusterkit logs`` on real clusters: --to DIR, --since, -t, -f on local processes and containers,
and the pytest plugin's logs on a failing test's report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest

from clusterkit.waiting import NotReady, wait_for
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

FUTURE = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


class Follow:
    """``clusterkit logs -f`` in a subprocess, its output read line by line in a thread."""

    def __init__(self, *args: str) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clusterkit", "logs", "-f", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            # Ctrl-C reaches it even when this test runs in the background (SIGINT ignored there).
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, match, what: str, timeout: float = 120) -> str:
        def seen() -> str:
            for line in list(self.lines):
                if match(line):
                    return line
            if self.proc.poll() is not None:
                raise AssertionError(f"logs -f ended ({self.proc.returncode}):\n" + "\n".join(self.lines))
            raise NotReady(f"no line with {what} yet")

        return wait_for(seen, what=f"logs -f to print {what}", timeout=timeout, interval=0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture
def follows():
    started: list[Follow] = []
    yield started
    for follow in started:
        follow.stop()


def _up_local(cli, name: str, ports, workers: int = 2) -> None:
    scheduler_port, dashboard_port = ports
    result = cli(
        *("up", "--runtime", "local", "--backend", "dask", "--name", name, "--workers", str(workers)),
        *(
            "--memory",
            "512m",
            "--scheduler-port",
            str(scheduler_port),
            "--dashboard-port",
            str(dashboard_port),
        ),
    )
    assert result.returncode == 0, result.stderr


def test_local_logs_to_a_folder_since_and_timestamps(run_dir, ports, teardown, cli, tmp_path):
    teardown.append("logs-l1")
    _up_local(cli, "logs-l1", ports)

    out = tmp_path / "logs"
    written = cli("logs", "--name", "logs-l1", "--to", str(out), "--json")
    assert written.returncode == 0, written.stderr
    files = json.loads(written.stdout)["files"]
    assert sorted(os.path.basename(f) for f in files) == ["scheduler.log", "worker-1.log", "worker-2.log"]
    assert "Register worker" in (out / "scheduler.log").read_text()  # the nodes' own output
    for worker in ("worker-1", "worker-2"):
        assert f"logs-l1-{worker}" in (out / f"{worker}.log").read_text()
    plain = cli("logs", "--name", "logs-l1", "--to", str(tmp_path / "plain"), "scheduler")
    assert plain.stdout.split() == [str(tmp_path / "plain" / "scheduler.log")], plain.stderr

    future = cli("logs", "--name", "logs-l1", "--since", FUTURE)
    assert future.returncode == 0 and future.stdout == "", future.stdout + future.stderr
    recent = cli("logs", "--name", "logs-l1", "--since", "1h", "-t", "--tail", "3", "scheduler")
    lines = recent.stdout.splitlines()
    assert len(lines) == 3, recent.stdout + recent.stderr
    for line in lines:
        node, _, rest = line.partition(" | ")
        assert node.strip() == "scheduler"
        assert datetime.strptime(rest.split()[0][:19], "%Y-%m-%dT%H:%M:%S")  # RFC 3339, then the line


def test_local_follow_shows_an_added_worker_and_ends_with_the_cluster(run_dir, ports, teardown, cli, follows):
    teardown.append("logs-l2")
    _up_local(cli, "logs-l2", ports, workers=1)
    follow = Follow("--name", "logs-l2", "--tail", "1")
    follows.append(follow)
    follow.wait_for_line(lambda line: line.startswith("worker-1"), "worker-1's last line")

    scaled = cli("scale", "2", "--name", "logs-l2")
    assert scaled.returncode == 0, scaled.stderr
    follow.wait_for_line(lambda line: line.startswith("worker-2 ") and "logs-l2-worker-2" in line, "worker-2")
    follow.wait_for_line(
        lambda line: line.startswith("scheduler") and "logs-l2-worker-2" in line, "a scheduler line"
    )

    interrupted = Follow("--name", "logs-l2", "--tail", "1")
    follows.append(interrupted)
    interrupted.wait_for_line(lambda line: line.startswith("worker-2"), "worker-2's last line")
    interrupted.proc.send_signal(signal.SIGINT)  # Ctrl-C
    assert interrupted.proc.wait(timeout=30) == 0
    interrupted.reader.join(timeout=30)
    assert not any("Traceback" in line for line in interrupted.lines), interrupted.lines

    down = cli("down", "--name", "logs-l2")
    assert down.returncode == 0, down.stderr
    teardown.clear()
    assert follow.proc.wait(timeout=30) == 0  # the cluster is gone: the follow ends by itself


# -- the pytest plugin ------------------------------------------------------------------

LOCAL_CONFTEST = """
import json
import os
import pytest
from clusterkit.runtimes.local import LocalRuntime
from clusterkit.spec import resolve_spec
from clusterkit.testing.handle import ClusterHandle


class Held:
    def __init__(self):
        self.runtime = LocalRuntime()
        self.spec = resolve_spec(os.devnull, overrides={
            "backend": "dask", "name": "logs-hook", "workers": 1, "memory": "512m",
            "scheduler_port": int(os.environ["CK_PORT"]), "dashboard_port": int(os.environ["CK_DASHBOARD"]),
        }, environ={})
        self.runtime.up(self.spec, timeout=120)

    @property
    def client_spec(self):
        return self.runtime.client_spec(self.spec.name)


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory):  # the plugin's fixture, over local processes
    held = Held()
    handle = ClusterHandle(held, tmp_path_factory.getbasetemp())
    try:
        yield handle
    finally:
        handle.close_client()
        held.runtime.down("logs-hook")


"""

RECORDER = """
import json
import os


def pytest_runtest_logreport(report):
    with open(os.environ["CK_SECTIONS"], "a") as out:
        titles = [title for title, _ in report.sections if title.startswith("clusterkit logs")]
        text = "".join(text for title, text in report.sections if title.startswith("clusterkit logs: scheduler"))
        out.write(json.dumps({"test": report.nodeid.split("::")[-1], "when": report.when,
                              "titles": titles, "scheduler": text}) + "\\n")
"""

SUITE = """
def test_fails(dask_cluster):
    assert dask_cluster.client.submit(sum, [1, 2]).result() == 4

def test_passes(dask_cluster):
    assert dask_cluster.client.submit(sum, [1, 2]).result() == 3

def test_fails_without_a_cluster():
    assert False
"""


def _sections(path) -> dict[str, dict]:
    """Per test, its call phase's clusterkit sections (as the inner suite recorded them)."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {row["test"]: row for row in rows if row["when"] == "call"}


def test_a_failing_test_gets_its_clusters_logs(pytester, run_dir, ports, teardown, tmp_path):
    teardown.append("logs-hook")
    pytester.makeconftest(LOCAL_CONFTEST + RECORDER)
    pytester.makepyfile(test_suite=SUITE)
    sections = tmp_path / "sections.jsonl"
    env = {"CK_SECTIONS": str(sections), "CK_PORT": str(ports[0]), "CK_DASHBOARD": str(ports[1])}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=pytester.path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "2 failed, 1 passed" in result.stdout, result.stdout + result.stderr
    found = _sections(sections)
    assert found["test_fails"]["titles"] == [
        "clusterkit logs: scheduler [logs-hook]",
        "clusterkit logs: worker-1 [logs-hook]",
    ]
    assert "Register worker" in found["test_fails"]["scheduler"]  # the scheduler's real output
    assert found["test_passes"]["titles"] == []
    assert found["test_fails_without_a_cluster"]["titles"] == []
    assert "clusterkit logs: scheduler [logs-hook]" in result.stdout  # shown with the failure


# -- containers ---------------------------------------------------------------------------


@pytest.mark.docker
@pytest.mark.parametrize("runtime", ["testcontainers", "compose"])
def test_container_logs_to_since_and_follow(
    runtime, docker_client, cluster_names, run_dir, ports, cli, follows, tmp_path
):
    name = f"logs-{runtime[:2]}-{os.getpid()}"
    cluster_names.append(name)
    scheduler_port, dashboard_port = ports
    up = cli(
        *(
            "up",
            "--runtime",
            runtime,
            "--backend",
            "dask",
            "--name",
            name,
            "--workers",
            "1",
            "--memory",
            "768m",
        ),
        *("--scheduler-port", str(scheduler_port), "--dashboard-port", str(dashboard_port)),
    )
    assert up.returncode == 0, up.stderr

    out = tmp_path / "logs"
    written = cli("logs", "--name", name, "--to", str(out), "--json")
    assert written.returncode == 0, written.stderr
    files = sorted(os.path.basename(f) for f in json.loads(written.stdout)["files"])
    assert len(files) == 2 and files[0] == "scheduler.log" and files[1].startswith("worker-"), files
    assert "Register worker" in (out / "scheduler.log").read_text()
    assert "Start worker" in (out / files[1]).read_text()

    future = cli("logs", "--name", name, "--since", FUTURE)
    assert future.returncode == 0 and future.stdout == "", future.stdout + future.stderr
    stamped = cli("logs", "--name", name, "-t", "--tail", "2", "scheduler").stdout.splitlines()
    assert len(stamped) == 2 and all(line.startswith("scheduler | 20") for line in stamped), stamped

    first = files[1].removesuffix(".log")
    follow = Follow("--name", name, "--tail", "1")
    follows.append(follow)
    follow.wait_for_line(lambda line: line.startswith(first), f"{first}'s last line")
    scaled = cli("scale", "2", "--name", name)
    assert scaled.returncode == 0, scaled.stderr
    follow.wait_for_line(
        lambda line: line.startswith("worker-") and not line.startswith(first) and "Start worker" in line,
        "the added worker's start",
    )
    down = cli("down", "--name", name)
    assert down.returncode == 0, down.stderr
    assert follow.proc.wait(timeout=60) == 0  # the containers are gone: the follow ends by itself


SPARK_JOB = """
import sys
from pyspark.sql import SparkSession

session = SparkSession.builder.master(sys.argv[1]).config("spark.executor.memory", "512m").getOrCreate()
session.sparkContext.parallelize(range(3), 1).foreach(lambda x: print("executor says", x, flush=True))
session.stop()
"""


@pytest.mark.docker
@pytest.mark.spark
def test_spark_logs_to_a_folder_bring_the_executors_output(
    docker_client, cluster_names, run_dir, ports, cli, tmp_path
):
    name = f"logs-spark-{os.getpid()}"
    cluster_names.append(name)
    scheduler_port, dashboard_port = ports
    up = cli(
        *(
            "up",
            "--runtime",
            "compose",
            "--backend",
            "spark",
            "--name",
            name,
            "--workers",
            "1",
            "--timeout",
            "400",
        ),
        *("--scheduler-port", str(scheduler_port), "--dashboard-port", str(dashboard_port)),
        timeout=500,
    )
    assert up.returncode == 0, up.stderr
    # The driver in the worker's container (the executors reach it there), the job's prints in an executor.
    (worker,) = docker_client.containers.list(
        filters={"label": [f"clusterkit.cluster={name}", "clusterkit.role=worker"]}
    )
    job = worker.exec_run(["python", "-c", SPARK_JOB, f"spark://scheduler:{scheduler_port}"])
    assert job.exit_code == 0, job.output.decode(errors="replace")[-3000:]

    out = tmp_path / "logs"
    written = cli("logs", "--name", name, "--to", str(out))
    assert written.returncode == 0, written.stderr
    names = sorted(os.path.basename(f) for f in written.stdout.split())
    executors = [n for n in names if n.startswith("worker-1.app-")]
    assert {"scheduler.log", "worker-1.log"} <= set(names) and executors, names
    assert any(n.endswith(".stdout.log") for n in executors) and any(
        n.endswith(".stderr.log") for n in executors
    )
    assert "executor says 2" in "".join((out / n).read_text() for n in executors)
    down = cli("down", "--name", name)
    assert down.returncode == 0, down.stderr


@pytest.mark.docker
def test_the_plugins_fixture_puts_the_containers_logs_on_a_failure(pytester, docker_client, tmp_path):
    from tests.integration.conftest import leftovers

    pytester.makeconftest(RECORDER)
    pytester.makepyfile(test_suite=SUITE)
    sections = tmp_path / "sections.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=pytester.path,
        env={**os.environ, "CK_SECTIONS": str(sections)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "2 failed, 1 passed" in result.stdout, result.stdout + result.stderr
    found = _sections(sections)
    titles = found["test_fails"]["titles"]
    assert len(titles) == 3 and titles[0].startswith("clusterkit logs: scheduler ["), titles
    assert all(t.startswith("clusterkit logs: worker-") for t in titles[1:]), titles
    assert "Register worker" in found["test_fails"]["scheduler"]
    assert found["test_passes"]["titles"] == found["test_fails_without_a_cluster"]["titles"] == []
    name = titles[0].rsplit("[", 1)[1].rstrip("]")
    assert leftovers(docker_client, name) == []
