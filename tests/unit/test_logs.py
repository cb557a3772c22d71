"""``clusterkit logs``' pieces without a cluster: --since, --tail, line selection, files, the report hook."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from clusterkit.errors import InvalidValue
from clusterkit.runtimes import nodelogs
from clusterkit.testing import report
from clusterkit.testing.handle import ClusterHandle


def test_since_reads_durations_timestamps_and_unix_seconds():
    assert nodelogs.parse_since("30s", now=100.0) == 70.0
    assert nodelogs.parse_since("10m", now=1000.0) == 400.0
    assert nodelogs.parse_since("1h30m", now=6000.0) == 600.0
    assert nodelogs.parse_since("2026-01-02T03:04:05Z") == 1767323045.0
    assert nodelogs.parse_since("2026-01-02T03:04:05.123456789+00:00") == pytest.approx(1767323045.123456)
    assert nodelogs.parse_since("1767323045") == 1767323045.0
    assert nodelogs.parse_since(12.5) == 12.5
    assert nodelogs.parse_since(None) is None


@pytest.mark.parametrize("bad", ["bogus", "10x", "-5m", "2026-13-45"])
def test_since_refuses_what_it_cannot_read(bad):
    with pytest.raises(InvalidValue, match=r"since: .* is not valid"):
        nodelogs.parse_since(bad)


def test_tail_is_a_count_or_all():
    assert nodelogs.parse_tail("5") == 5
    assert nodelogs.parse_tail("all") is None
    with pytest.raises(InvalidValue, match="tail"):
        nodelogs.parse_tail("-1")


LOG = """starting
2026-01-02 03:04:05,000 - distributed.scheduler - INFO - first
Traceback (most recent call last):
  ValueError: boom
2026-01-02 03:04:09,500 - distributed.scheduler - INFO - second
"""


def test_select_keeps_a_traceback_with_its_stamped_line():
    first = nodelogs.line_time("2026-01-02 03:04:05,000")
    since = first + 1
    assert nodelogs.select(LOG, since=since, tail=None, timestamps=False, first=0) == (
        "2026-01-02 03:04:09,500 - distributed.scheduler - INFO - second\n"
    )
    everything = nodelogs.select(LOG, since=first, tail=None, timestamps=False, first=0)
    assert everything.splitlines()[0] == "starting"  # before the first stamp: that stamp's time
    assert len(everything.splitlines()) == 5
    assert nodelogs.select(LOG, since=time.time() + 3600, tail=None, timestamps=False, first=0) == ""
    assert nodelogs.select(LOG, since=None, tail=0, timestamps=False, first=0) == ""
    stamped = nodelogs.select(LOG, since=None, tail=1, timestamps=True, first=0)
    assert stamped.startswith(nodelogs.rfc3339(first + 4.5) + " 2026-01-02 03:04:09,500")


def test_select_stamps_an_unstamped_file_with_its_fallback_time():
    assert nodelogs.select("a\nb\n", since=10.0, tail=None, timestamps=False, first=5.0) == ""
    assert nodelogs.select("a\nb\n", since=10.0, tail=None, timestamps=False, first=20.0) == "a\nb\n"


def test_swarm_output_is_split_by_task_slot():
    out = (
        "2026-01-02T03:04:05.000000000Z ck_worker.2@n1    | hello\n"
        "ck_worker.1.abc123@n2    | hi\n"
        "  continued\n"
    )
    found = nodelogs.swarm_text(out, "worker")
    assert found == {"worker-2": "2026-01-02T03:04:05.000000000Z hello\n", "worker-1": "hi\n  continued\n"}
    assert nodelogs.swarm_text("ck_scheduler.1@n1    | up\n", "scheduler") == {"scheduler": "up\n"}


def test_service_filter_and_files(tmp_path):
    assert nodelogs.wanted("worker-1", "worker") and nodelogs.wanted("scheduler", None)
    assert nodelogs.wanted("worker-1.app-1.0.stdout", "worker")
    assert not nodelogs.wanted("scheduler", "worker")
    paths = nodelogs.write({"scheduler": "s\n", "worker-1.app-1.0.stdout": "x\n"}, tmp_path / "out")
    assert [p.name for p in paths] == ["scheduler.log", "worker-1.app-1.0.stdout.log"]
    assert paths[0].read_text() == "s\n"


def _container(role, created, **extra):
    found = {"clusterkit.role": role, **extra}
    return SimpleNamespace(labels=found, attrs={"Created": created, "Config": {"Hostname": f"h{created}"}})


def test_containers_are_named_by_role_and_number_or_host():
    containers = [
        _container("worker", "2", **{"com.docker.compose.container-number": "2"}),
        _container("client", "0"),
        _container("worker", "1"),
        _container("scheduler", "3"),
    ]
    assert [key for key, _ in nodelogs.node_containers(containers)] == ["scheduler", "worker-h1", "worker-2"]


def test_executor_files_of_a_local_spark_worker(tmp_path):
    (tmp_path / "work" / "app-1" / "0").mkdir(parents=True)
    (tmp_path / "work" / "app-1" / "0" / "stdout").write_text("out\n")
    (tmp_path / "work" / "app-1" / "0" / "app.jar").write_text("")
    assert list(nodelogs.executor_files(tmp_path)) == ["app-1.0.stdout"]


# -- the report hook ------------------------------------------------------------------


class _Runtime:
    def __init__(self):
        self.calls = []

    def node_logs(self, name, **options):
        self.calls.append((name, options))
        return {"scheduler": "s line\n", "worker-1": ""}


def _handle(runtime, name="c1"):
    handle = ClusterHandle.__new__(ClusterHandle)  # no backend, no client: only what the hook reads
    handle.cluster = SimpleNamespace(spec=SimpleNamespace(name=name), runtime=runtime)
    return handle


def _report(when="call", failed=True):
    return SimpleNamespace(when=when, failed=failed, sections=[])


def test_a_failing_test_with_a_cluster_gets_each_nodes_logs():
    runtime = _Runtime()
    item = SimpleNamespace(funcargs={"dask_cluster": _handle(runtime), "tmp_path": "x"})
    found = _report()
    report.attach(item, found)
    assert found.sections == [
        ("clusterkit logs: scheduler [c1]", "s line\n"),
        ("clusterkit logs: worker-1 [c1]", "(empty log)"),
    ]
    assert runtime.calls == [("c1", {"tail": report.TAIL})]


def test_no_logs_for_passing_tests_or_tests_without_a_cluster():
    runtime = _Runtime()
    passing = _report(failed=False)
    report.attach(SimpleNamespace(funcargs={"dask_cluster": _handle(runtime)}), passing)
    plain = _report()
    report.attach(SimpleNamespace(funcargs={"tmp_path": "x"}), plain)
    report.attach(SimpleNamespace(), plain)  # an item that is not a function
    assert passing.sections == plain.sections == [] and runtime.calls == []


def test_an_unreadable_log_is_said_not_raised():
    class Broken:
        def node_logs(self, name, **options):
            raise RuntimeError("engine gone")

    found = _report()
    report.attach(SimpleNamespace(funcargs={"spark_cluster": _handle(Broken(), "c2")}), found)
    assert found.sections == [("clusterkit logs: c2", "(the logs could not be read: engine gone)")]


def test_the_factory_reports_the_sessions_clusters():
    runtime = _Runtime()
    clusters = SimpleNamespace(handles={"a": _handle(runtime, "c3")})
    item = SimpleNamespace(funcargs={"clusterkit_cluster": object(), "_clusterkit_clusters": clusters})
    found = _report(when="setup")
    report.attach(item, found)
    assert [title for title, _ in found.sections] == [
        "clusterkit logs: scheduler [c3]",
        "clusterkit logs: worker-1 [c3]",
    ]


# -- the command's own refusals (before any cluster is looked up) ------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--to", "d", "-f"], "cannot --follow"),
        (["--json"], "add --to DIR"),
        (["--since", "soon"], "since: 'soon' is not valid"),
        (["--tail", "many"], "tail: 'many' is not valid"),
    ],
)
def test_logs_refuses_bad_options(args, message):
    from clusterkit.cli import main

    result = CliRunner().invoke(main, ["logs", "--name", "ck-nothere", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
