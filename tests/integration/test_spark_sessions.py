"""The classic Spark session (driver in this process) on real clusters: quiet, with its UI on
127.0.0.1, sized for tests, and no process-wide change.

One local-process cluster serves the module (no image needed); scripts run in subprocesses
where a test needs a fresh driver JVM (pyspark starts one per process) or its terminal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

from clusterkit import Cluster, spark
from clusterkit.backends.spark import stop_session
from clusterkit.errors import ClusterUnavailable
from clusterkit.net import loopback

pytestmark = [pytest.mark.slow, pytest.mark.spark]

#: Connects to the master named in argv (with a JSON ``conf``), runs a shuffle, prints one JSON line.
SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from clusterkit import spark

    address, ui_port, conf = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    session = spark.connect_to_scheduler(address, ui_port=ui_port, timeout=60, conf=conf)
    df = session.range(100).selectExpr("id % 3 AS k").groupBy("k").count()
    counts = sorted((r["k"], r["count"]) for r in df.collect())
    session.stop()
    print(json.dumps({"counts": counts, "pyspark_python": os.environ.get("PYSPARK_PYTHON")}))
    """
)
EXPECTED = [[0, 34], [1, 33], [2, 33]]

#: The sessions the tests made in this process.
SESSIONS: list = []


def stop_sessions() -> None:
    """No session in this process: each test starts from there (pyspark has one context per process)."""
    from pyspark import SparkContext

    for session in SESSIONS:
        stop_session(session)
    SESSIONS.clear()
    # Another's: the spark_cluster fixture's (it lives to the end of the run), or a plain pyspark one.
    if SparkContext._active_spark_context is not None:
        SparkContext._active_spark_context.stop()


class Master:
    """The module's cluster: sessions on it in this process, and scripts that make their own."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        spec = cluster.client_spec
        self.address, self.ui_port = spec.scheduler_address, spec.dashboard_port

    def session(self, **options):
        found = spark.connect_to_scheduler(self.address, ui_port=self.ui_port, timeout=60, **options)
        SESSIONS.append(found)
        return found

    def run(
        self, tmp_path: Path, conf: dict[str, str] | None = None, **env: str
    ) -> tuple[subprocess.CompletedProcess, Path]:
        """:data:`SCRIPT` in a new Python with its own run root; its result and that root."""
        root = tmp_path / "run"
        script = tmp_path / "job.py"
        script.write_text(SCRIPT)
        environ = {k: v for k, v in os.environ.items() if k not in ("CLUSTERKIT_SPARK_LOG", "PYSPARK_PYTHON")}
        result = subprocess.run(
            [sys.executable, str(script), self.address, str(self.ui_port), json.dumps(conf or {})],
            env={**environ, "CLUSTERKIT_RUN_DIR": str(root), **env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        return result, root


@pytest.fixture(scope="module")
def master(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLUSTERKIT_RUN_DIR", str(tmp_path_factory.mktemp("sessions-run")))
        with Cluster("spark", runtime="local", workers=2, cores=1, memory="1g", timeout=180) as cluster:
            try:
                yield Master(cluster)
            finally:
                stop_sessions()


def test_a_script_shows_nothing_from_the_jvm_and_the_driver_log_has_it(master, tmp_path):
    result, root = master.run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == [json.dumps({"counts": EXPECTED, "pyspark_python": None})]
    log = (root / "logs" / "spark-driver.log").read_text()
    assert "--- Spark driver JVM of process" in log
    assert "log4j" in log, log  # Spark's banner went to the file
    assert "loopback address" not in log, "the JVM starts with SPARK_LOCAL_IP"


def test_clusterkit_spark_log_puts_the_jvm_on_the_terminal_at_that_level(master, tmp_path):
    result, root = master.run(tmp_path, CLUSTERKIT_SPARK_LOG="INFO")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["counts"] == EXPECTED
    assert " INFO SparkContext: " in result.stderr, result.stderr
    assert not (root / "logs" / "spark-driver.log").exists()


def test_a_driver_that_cannot_start_names_its_log_and_its_error(master, tmp_path):
    # spark-submit refuses a heap size in the JVM's options, before any JVM runs the driver.
    result, root = master.run(tmp_path, conf={"spark.driver.extraJavaOptions": "-Xmx1k"})
    assert result.returncode == 1
    assert "ClusterUnavailable: the Spark driver's JVM did not start" in result.stderr, result.stderr
    assert f"its output is in {root / 'logs' / 'spark-driver.log'}" in result.stderr
    assert "Not allowed to specify max heap" in result.stderr, result.stderr


def test_the_application_ui_is_on_127_0_0_1_and_answers(master):
    stop_sessions()
    session = master.session()
    url = session.sparkContext.uiWebUrl
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(f"{url}/jobs/", timeout=30) as response:
        assert response.status == 200


def test_a_session_is_sized_for_tests_and_leaves_the_environment_alone(master, monkeypatch):
    stop_sessions()
    for name in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "SPARK_LOCAL_IP", "SPARK_PUBLIC_DNS"):
        monkeypatch.delenv(name, raising=False)
    before = dict(os.environ)
    session = master.session()
    conf = session.conf
    assert conf.get("spark.sql.shuffle.partitions") == "4"  # 2 workers x 1 core x 2
    assert conf.get("spark.sql.session.timeZone") == "UTC"
    # The executors run this interpreter without $PYSPARK_PYTHON telling them.
    ran = session.sparkContext.parallelize([0, 1], 2).map(lambda _: sys.executable).collect()
    assert ran == [sys.executable, sys.executable]
    changed = {k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)}
    # pyspark itself exports these two to its Python workers; clusterkit adds nothing.
    assert changed <= {"SPARK_AUTH_SOCKET_TIMEOUT", "SPARK_BUFFER_SIZE"}, changed


def test_the_users_conf_wins(master):
    stop_sessions()
    session = master.session(
        conf={"spark.sql.shuffle.partitions": "3", "spark.sql.session.timeZone": "Asia/Tokyo"}
    )
    assert session.conf.get("spark.sql.shuffle.partitions") == "3"
    assert session.conf.get("spark.sql.session.timeZone") == "Asia/Tokyo"


def test_a_live_session_on_another_master_is_an_error_not_a_silent_reuse(master):
    from pyspark.sql import SparkSession

    stop_sessions()
    local = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
    try:
        with pytest.raises(ClusterUnavailable) as caught:
            master.session()
        message = str(caught.value)
        assert "already has a Spark session on local[1]" in message
        assert "spark.stop()" in message
    finally:
        local.stop()
    assert master.session().sparkContext.master == f"spark://{master.address}"


@pytest.mark.docker
def test_on_compose_the_ui_stays_on_127_0_0_1_while_executors_reach_a_gateway(docker_client, cluster_names):
    stop_sessions()
    cluster_names.append("ck-sessions-ui")
    with Cluster("spark", runtime="compose", name="ck-sessions-ui", workers=1, cores=2, memory="1g") as c:
        session = c.session()
        SESSIONS.append(session)
        sc = session.sparkContext
        assert not loopback(sc.getConf().get("spark.driver.host")), "the driver binds a gateway here"
        assert sc.uiWebUrl.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{sc.uiWebUrl}/jobs/", timeout=30) as response:
            assert response.status == 200
        assert session.range(100).selectExpr("id % 2 AS k").groupBy("k").count().count() == 2
        assert session.conf.get("spark.sql.shuffle.partitions") == "4"  # 1 worker x 2 cores x 2
