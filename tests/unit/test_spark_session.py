"""The classic Spark session's settings: sized for tests, quiet, and no process-wide change."""

from __future__ import annotations

import json
import os
import sys

import pytest

from clusterkit.backends.spark.gateway import LOG_ENV, log_level
from clusterkit.backends.spark.session import driver_settings
from clusterkit.errors import InvalidValue

#: Two workers with 2 and 1 cores (the shape the master's /json/ lists).
WORKERS = [
    {"host": "127.0.0.1", "cores": 2, "memory": 2048},
    {"host": "127.0.0.1", "cores": 1, "memory": 1024},
]


def settings(environ: dict[str, str] | None = None, **options) -> dict[str, str]:
    return driver_settings("127.0.0.1", WORKERS, environ=environ or {}, **options)


def test_shuffle_partitions_are_twice_the_cores_and_the_time_zone_is_utc():
    found = settings()
    assert found["spark.sql.shuffle.partitions"] == "6"
    assert found["spark.sql.session.timeZone"] == "UTC"
    assert "spark.cores.max" not in found, "one process alone takes every core"


def test_without_known_workers_spark_keeps_its_own_partitions():
    found = driver_settings("127.0.0.1", [], environ={})
    assert "spark.sql.shuffle.partitions" not in found
    assert found["spark.sql.session.timeZone"] == "UTC"


@pytest.mark.parametrize(("count", "share"), [("2", "1"), ("3", "1"), ("8", "1")])
def test_under_xdist_a_session_takes_its_share_of_the_cores(count, share):
    found = settings({"PYTEST_XDIST_WORKER_COUNT": count})
    assert found["spark.cores.max"] == share


def test_a_share_of_a_larger_cluster():
    workers = [{"cores": 4}, {"cores": 4}]
    found = driver_settings("127.0.0.1", workers, environ={"PYTEST_XDIST_WORKER_COUNT": "3"})
    assert (found["spark.cores.max"], found["spark.sql.shuffle.partitions"]) == ("2", "16")


def test_one_xdist_process_takes_every_core():
    assert "spark.cores.max" not in settings({"PYTEST_XDIST_WORKER_COUNT": "1"})


def test_the_application_ui_is_on_a_free_loopback_port():
    found = settings()
    assert found["spark.ui.enabled"] == "true"
    assert 0 < int(found["spark.ui.port"]) < 65536
    assert found["spark.ui.showConsoleProgress"] == "false"


def test_executors_python_is_in_the_conf_and_the_environment_is_untouched(monkeypatch):
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    monkeypatch.delenv("PYSPARK_DRIVER_PYTHON", raising=False)
    before = dict(os.environ)
    local = settings()
    remote = driver_settings("10.1.2.3", WORKERS, driver_port=40001, block_manager_port=40002, environ={})
    chosen = settings(python="/opt/py/bin/python")
    assert dict(os.environ) == before
    assert local["spark.pyspark.python"] == sys.executable
    assert remote["spark.pyspark.python"] == "python3"
    assert chosen["spark.pyspark.python"] == "/opt/py/bin/python"


def test_the_users_conf_wins_over_every_default():
    """``connect_to_scheduler`` lays ``conf`` over the settings, as here."""
    mine = {
        "spark.sql.shuffle.partitions": "3",
        "spark.sql.session.timeZone": "Europe/Paris",
        "spark.cores.max": "5",
        "spark.ui.enabled": "false",
        "spark.log.level": "ERROR",
    }
    merged = {**settings({"PYTEST_XDIST_WORKER_COUNT": "2", LOG_ENV: "INFO"}), **mine}
    assert {key: merged[key] for key in mine} == mine


def test_the_log_level_comes_from_the_environment():
    assert "spark.log.level" not in settings(), "quiet by default: Spark's own level, in the log file"
    assert settings({LOG_ENV: "info"})["spark.log.level"] == "INFO"
    assert log_level({LOG_ENV: " warn "}) == "WARN"
    assert log_level({LOG_ENV: ""}) is None


def test_a_bad_log_level_is_a_one_line_error_naming_the_choices():
    with pytest.raises(InvalidValue) as caught:
        settings({LOG_ENV: "LOUD"})
    message = str(caught.value)
    assert "\n" not in message
    assert f"{LOG_ENV}='LOUD'" in message
    assert all(level in message for level in ("DEBUG", "INFO", "WARN", "ERROR"))
    assert caught.value.exit_code == 2


def test_the_plugin_gives_spark_session_unless_pytest_spark_has_it(pytester):
    pytester.makepyfile(
        test_uses="""
def test_fixture(spark_session):
    assert spark_session == "pytest-spark's"
""",
        # Stands for pytest-spark: a plugin registered as "spark" with its own fixture.
        spark="""
import pytest

@pytest.fixture(scope="session")
def spark_session():
    return "pytest-spark's"
""",
    )
    ours = pytester.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider")
    assert "clusterkit/testing/plugin.py" in ours.stdout.str().split("spark_session [session scope]")[1]
    assert "pytest-spark's" not in ours.stdout.str()

    theirs = pytester.runpytest_subprocess("-p", "spark", "-p", "no:cacheprovider")
    theirs.assert_outcomes(passed=1)
    header = [line for line in theirs.outlines if line.startswith("clusterkit:")]
    assert header == [
        "clusterkit: `spark_session` is pytest-spark's; the cluster's is `spark_cluster.session`"
    ]


def test_beside_a_connect_server_a_session_leaves_it_an_executor():
    """A standalone application keeps its executors while it lives: beside the cluster's
    Connect server it takes all cores but one Connect executor's, and memory that fits
    beside one, so Connect queries from another process still run."""
    one_gib = [{"cores": 1, "memory": 1024}, {"cores": 1, "memory": 1024}]
    alone = driver_settings("127.0.0.1", one_gib, environ={})
    beside = driver_settings("127.0.0.1", one_gib, environ={}, beside_connect=True)
    assert "spark.cores.max" not in alone and alone["spark.executor.memory"] == "1024m"
    assert beside["spark.cores.max"] == "1" and beside["spark.executor.memory"] == "512m"
    big = [{"cores": 4, "memory": 4096}] * 2
    share = driver_settings("127.0.0.1", big, environ={"PYTEST_XDIST_WORKER_COUNT": "2"}, beside_connect=True)
    assert share["spark.cores.max"] == "3", "(8 cores - 2 for a Connect executor) / 2 processes"
    assert share["spark.executor.memory"] == "1024m", "room for a Connect executor anyway"


@pytest.mark.parametrize(
    ("cores", "memory", "count", "processes"),
    [(1, 1024, 2, 1), (2, 1024, 2, 1), (4, 1024, 2, 1), (3, 2048, 3, 1), (8, 8192, 2, 1), (4, 4096, 2, 2)],
)
def test_the_masters_spread_out_placement_leaves_one_worker_room_for_connect(cores, memory, count, processes):
    """The standalone master hands each application's executors out across the workers in
    turn (``spreadOut``): what the classic sessions leave must hold one Connect executor."""
    from clusterkit.backends.spark.connect import executor_memory_mb

    workers = [{"cores": cores, "memory": memory} for _ in range(count)]
    environ = {"PYTEST_XDIST_WORKER_COUNT": str(processes)}
    found = driver_settings("127.0.0.1", workers, environ=environ, beside_connect=True)
    size, mem = int(found["spark.executor.cores"]), int(found["spark.executor.memory"][:-1])
    free = [[cores, memory] for _ in workers]
    for _ in range(processes):
        granted, limit = 0, int(found.get("spark.cores.max", cores * count))
        while any(f[0] >= size and f[1] >= mem for f in free) and granted + size <= limit:
            for f in free:
                if granted + size <= limit and f[0] >= size and f[1] >= mem:
                    f[0], f[1], granted = f[0] - size, f[1] - mem, granted + size
    need = (max(1, cores // 2), executor_memory_mb(memory * 2**20))
    assert any(c >= need[0] and m >= need[1] for c, m in free), (found, free)


def test_a_process_in_connect_mode_gets_one_line_before_any_jvm_starts(monkeypatch):
    from clusterkit.backends.spark.session import start_session
    from clusterkit.errors import ClusterUnavailable

    def no_jvm(_):
        raise AssertionError("the driver JVM was started")

    monkeypatch.setattr("clusterkit.backends.spark.session.start_jvm", no_jvm)
    monkeypatch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")
    with pytest.raises(ClusterUnavailable, match="SPARK_CONNECT_MODE_ENABLED is set") as refused:
        start_session("spark://127.0.0.1:7077", "t", {}, secured=False)
    assert "\n" not in str(refused.value)


def test_nodes_never_inherit_pysparks_connect_mode(monkeypatch, tmp_path):
    from clusterkit.backends.base import CLIENT_ONLY_ENV, launch

    for name in CLIENT_ONLY_ENV:
        monkeypatch.setenv(name, "1")
    out = tmp_path / "env.log"
    script = "import json, os; print(json.dumps(dict(os.environ)))"
    with open(out, "wb") as log:
        proc = launch([sys.executable, "-c", script], detach=True, env={"SPARK_HOME": "/x"}, log=log)
    assert proc is not None and proc.wait(60) == 0
    seen = json.loads(out.read_text())
    assert seen["SPARK_HOME"] == "/x", "the node's own environment"
    assert not set(CLIENT_ONLY_ENV) & set(seen)
