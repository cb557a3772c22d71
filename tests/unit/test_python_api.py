"""The Python ``Cluster`` as distributed's clusters behave (issue 19), without starting a cluster.

LocalCluster's argument names, ``status`` as a lifecycle state, ``get_logs()``,
``asynchronous=True``, the Spark notebook repr, logging, and the drift note on connect.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading

import pytest

from clusterkit import drift
from clusterkit.clusters import Cluster, SparkCluster, Status
from clusterkit.clusters.aliases import memory_text, merge_aliases
from clusterkit.errors import InvalidValue
from clusterkit.spec import resolve_spec
from clusterkit.status import ClusterStatus, WorkerStatus


@pytest.fixture(autouse=True)
def no_spec_file(tmp_path, monkeypatch):
    """No ``clusterkit.yaml`` around, no ``CLUSTERKIT_*`` settings: the spec is what a test gives."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLUSTERKIT_RUN_DIR", str(tmp_path / "run"))


# -- 1. LocalCluster's names -------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2GiB", "2048m"),
        ("512MB", "512m"),
        ("512MiB", "512m"),
        (2**30, "1024m"),
        ("1.5g", "1536m"),
        (2.0 * 2**30, "2048m"),
    ],
)
def test_memory_limit_forms_become_the_specs(given, expected):
    assert memory_text(given) == expected


def test_aliases_resolve_to_the_spec_fields():
    given = merge_aliases(
        {"backend": "dask", "workers": None}, n_workers=3, threads_per_worker=2, memory_limit="2GiB"
    )
    spec = resolve_spec(overrides=given, environ={})
    assert (spec.workers, spec.cores, spec.memory) == (3, 2, 2**31)


def test_an_alias_and_its_name_agreeing_is_fine():
    found = merge_aliases(
        {"workers": 2, "cores": "2", "memory": "1g"}, n_workers=2, threads_per_worker=2, memory_limit=2**30
    )
    assert found == {"workers": 2, "cores": "2", "memory": "1g"}


@pytest.mark.parametrize(
    ("fields", "alias", "match"),
    [
        ({"workers": 2}, {"n_workers": 3}, "n_workers=3 and workers=2 disagree"),
        ({"cores": 1}, {"threads_per_worker": 4}, "threads_per_worker=4 and cores=1 disagree"),
        ({"memory": "1g"}, {"memory_limit": "2GiB"}, "memory_limit='2GiB' and memory='1g' disagree"),
    ],
)
def test_an_alias_and_its_name_disagreeing_is_a_clear_error(fields, alias, match):
    with pytest.raises(InvalidValue, match=match):
        merge_aliases(fields, **alias)


def test_cluster_refuses_disagreeing_aliases_before_starting_anything():
    class Boom:
        def __getattr__(self, name):
            raise AssertionError("no runtime may be touched")

    with pytest.raises(InvalidValue, match="n_workers=3 and workers=2"):
        Cluster("dask", workers=2, n_workers=3, runtime=Boom())
    with pytest.raises(InvalidValue, match="memory_limit"):
        Cluster("spark", memory_limit="lots", runtime=Boom())


# -- fakes: a runtime that records, and a Spark cluster object that never starts nodes ------------


class FakeRuntime:
    name = "fake"

    def __init__(self, spec, logs=None):
        self.spec = spec
        self.logs_found = logs or {}
        self.calls: list[tuple[str, int]] = []

    def client_spec(self, name):
        return self.spec

    def status(self, name):
        return ClusterStatus(
            backend="spark",
            scheduler_address=self.spec.scheduler_address,
            state="RUNNING",
            dashboard_url=None,
            workers=(WorkerStatus("w1", "10.0.0.2:7000", 2, 2**30, "ALIVE"),),
            wanted=2,
        )

    def node_logs(self, name, *, tail=None, **options):
        return dict(self.logs_found)

    def exists(self, name):
        return False


def spark_spec(**fields):
    return resolve_spec(
        overrides={"backend": "spark", "name": "ck-unit", "workers": 2, "cores": 2, "memory": "1g", **fields},
        environ={},
    )


def held_spark(runtime=None, *, asynchronous=False, status=Status.running):
    spec = spark_spec()
    cluster = SparkCluster.__new__(SparkCluster)
    cluster._asynchronous = asynchronous
    cluster._init(spec, runtime or FakeRuntime(spec), owned=False)
    cluster._start_options = {"timeout": 1, "keep": False, "progress": None}
    cluster.status = status
    return cluster


# -- 3. get_logs --------------------------------------------------------------------------


def test_get_logs_is_a_dict_of_node_name_and_text():
    logs = {
        "scheduler": "master up",
        "worker-1": "w1 up",
        "worker-2": "w2 up",
        "worker-2.app-1.0.stderr": "task",
    }
    cluster = held_spark(FakeRuntime(spark_spec(), logs))
    found = cluster.get_logs()
    assert found == {
        "Scheduler": "master up",
        "worker-1": "w1 up",
        "worker-2": "w2 up",
        "worker-2.app-1.0.stderr": "task",
    }
    assert list(cluster.get_logs(workers=False)) == ["Scheduler"]
    assert list(cluster.get_logs(scheduler=False, workers=["ck-unit-worker-2"])) == [
        "worker-2",
        "worker-2.app-1.0.stderr",
    ]
    assert "<pre>master up</pre>" in found._repr_html_()


def test_get_logs_reads_local_log_files_without_a_runtime_helper(tmp_path):
    from clusterkit.clusters.logs import node_logs

    (tmp_path / "c1").mkdir()
    records = []
    for node, role in (("scheduler", "scheduler"), ("worker-1", "worker")):
        log = tmp_path / f"{node}.log"
        log.write_text(f"{node} line 1\n{node} line 2\n")
        records.append({"node": node, "role": role, "log": str(log), "pid": 1})
    (tmp_path / "c1" / "state.json").write_text(json.dumps({"processes": records}))

    class Local:
        name = "local"
        root = tmp_path

    assert node_logs(Local(), "c1") == {
        "Scheduler": "scheduler line 1\nscheduler line 2",
        "worker-1": "worker-1 line 1\nworker-1 line 2",
    }
    assert node_logs(Local(), "c1", scheduler=False, tail=1) == {"worker-1": "worker-1 line 2"}


def test_logs_prints_through_get_logs(capsys):
    cluster = held_spark(FakeRuntime(spark_spec(), {"scheduler": "m", "worker-1": "w"}))
    cluster.logs("worker")
    assert capsys.readouterr().out == "==> worker-1 <==\nw\n"


# -- 4. status is the state, report() the detail ---------------------------------------------


def test_status_is_a_state_and_report_is_the_detail():
    from distributed.core import Status as DistributedStatus

    cluster = held_spark()
    assert cluster.status == Status.running == DistributedStatus.running and not callable(cluster.status)
    assert cluster.report().workers[0].name == "w1"
    assert not isinstance(vars(Cluster.classes["dask"]).get("status"), property)


# -- 2. asynchronous=True (the Spark class; the Dask one is distributed's, tested on real processes) --


def test_await_starts_in_a_thread_and_close_is_awaitable(monkeypatch):
    seen: dict[str, object] = {}

    def up(self, timeout, keep, progress):
        seen["up"] = threading.get_ident()

    def down(self):
        seen["down"] = threading.get_ident()

    monkeypatch.setattr(SparkCluster, "_up", up)
    monkeypatch.setattr(SparkCluster, "_down", down)

    async def main():
        cluster = held_spark(asynchronous=True, status=Status.created)
        ticks = asyncio.create_task(asyncio.sleep(0))
        assert await cluster is cluster and cluster.status == Status.running
        assert ticks.done()
        logs = await cluster.get_logs()
        await cluster.close()
        with pytest.raises(TypeError, match="async with"):
            cluster.__enter__()
        async with held_spark(asynchronous=True, status=Status.created) as other:
            assert other.status == Status.running
        return cluster, other, logs, threading.get_ident()

    cluster, other, logs, loop_thread = asyncio.run(main())
    assert cluster.status == Status.closed == other.status and "Scheduler" not in logs
    assert seen["up"] != loop_thread and seen["down"] != loop_thread


# -- 5. the Spark notebook repr -------------------------------------------------------------


def test_spark_repr_html_shows_master_ui_workers_cores_memory():
    html = held_spark()._repr_html_()
    for expected in (
        "spark://",
        "<a href=",
        "1 registered of 2 wanted",
        "Cores per worker",
        "1024m",
        "running",
    ):
        assert expected in html, expected


# -- 6. logging -----------------------------------------------------------------------------


def test_the_package_logger_has_a_null_handler_and_the_supervisor_logs(caplog):
    from clusterkit.supervisor import Supervisor

    assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger("clusterkit").handlers)

    class Healing:
        def __init__(self):
            self.looks = 0

        def exists(self, name):
            self.looks += 1
            return self.looks < 3

        def heal(self, name):
            if self.looks == 1:
                return ["worker ck-w-1 ended: started it again"]
            raise RuntimeError("engine hiccup")

    supervisor = Supervisor(Healing(), "ck-log", interval=0)
    with caplog.at_level(logging.INFO, logger="clusterkit"):
        supervisor.run()
    found = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert found == [
        ("clusterkit.supervisor", "INFO", "cluster 'ck-log': worker ck-w-1 ended: started it again"),
        (
            "clusterkit.supervisor",
            "WARNING",
            "cluster 'ck-log': could not repair: RuntimeError: engine hiccup",
        ),
    ]


# -- 7. drift on connect --------------------------------------------------------------------


def raw_node(python: str, cloudpickle: str = "3.1.3") -> dict:
    """A node's answer to distributed's ``versions`` (what a connection reads)."""
    from clusterkit.status import local_versions

    mine = local_versions()
    packages = {"dask": mine.get("dask"), "distributed": mine.get("distributed"), "cloudpickle": cloudpickle}
    packages["msgpack"] = mine.get("msgpack")  # distributed's `versions` reports it too
    return {"host": {"python": f"{python}.final.0"}, "packages": packages}


def test_a_python_patch_difference_is_doctor_info_not_a_connect_warning():
    import platform

    from clusterkit.backends.dask import drift_summary
    from clusterkit.status import local_versions

    major, minor, patch = platform.python_version_tuple()
    other_patch = f"{major}.{minor}.{int(patch) + 1}"
    cloudpickle = local_versions().get("cloudpickle", "3.1.3")
    raw = {
        "scheduler": raw_node(other_patch, cloudpickle),
        "workers": {"tcp://w1": raw_node(other_patch, cloudpickle)},
    }
    assert drift_summary(raw) == ""  # connect: nothing to warn about
    versions = {"client": {"python": platform.python_version()}, "scheduler": {"python": other_patch}}
    listed = drift.compare(versions, backend="dask")  # what doctor and status list
    assert [(d.package, d.severity) for d in listed] == [("python", "info")]


def test_a_python_minor_or_critical_difference_warns_on_connect():
    import platform

    from clusterkit.backends.dask import drift_summary
    from clusterkit.status import local_versions

    major, minor, _ = platform.python_version_tuple()
    cloudpickle = local_versions().get("cloudpickle", "3.1.3")
    raw = {"scheduler": raw_node(f"{major}.{int(minor) + 1}.0", cloudpickle), "workers": {}}
    assert "python" in drift_summary(raw) and "error" in drift_summary(raw)
    raw = {"scheduler": raw_node(platform.python_version(), "0.1"), "workers": {}}
    assert "cloudpickle 0.1 on the scheduler" in drift_summary(raw)


def test_a_project_dependency_at_another_version_warns_other_packages_only_in_doctor():
    versions = {
        "client": {"python": "3.11.7", "mylib": "1.0", "numpy": "2.0"},
        "w1": {"python": "3.11.7", "mylib": "1.1", "numpy": "2.1"},
    }
    found = drift.compare(versions, backend="dask", project=["mylib"])
    assert {(d.package, d.severity) for d in found} == {("mylib", "error"), ("numpy", "warning")}
    assert "mylib 1.1" in drift.summarize(found) and "numpy" not in drift.summarize(found)


class FakeScheduler:
    """``scheduler_comm`` answering ``run_function`` and a ``run`` broadcast as a real scheduler does."""

    def __init__(self, scheduler: dict, worker: dict):
        self.answers = (scheduler, worker)

    async def run_function(self, **call):
        return {"status": "OK", "result": self.answers[0]}

    async def broadcast(self, msg, on_error):
        assert msg["op"] == "run"
        return {"tcp://10.0.0.3:4000": {"status": "OK", "result": self.answers[1]}}


def connect_warnings(**changes) -> list[str]:
    """The drift notes a Dask ``Cluster`` shows on start, for nodes whose versions differ by ``changes``."""
    import warnings

    from clusterkit.clusters import DaskCluster
    from clusterkit.status import local_versions

    node = {**local_versions(), **changes}
    cluster = DaskCluster.__new__(DaskCluster)
    cluster.scheduler_comm = FakeScheduler(node, node)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(cluster._warn_drift())
    return [str(w.message) for w in caught if issubclass(w.category, drift.DriftWarning)]


def test_the_dask_cluster_warns_on_start_only_about_what_breaks_a_computation():
    import platform
    from importlib import metadata

    major, minor, patch = platform.python_version_tuple()
    assert connect_warnings() == []
    assert connect_warnings(python=f"{major}.{minor}.{int(patch) + 1}") == []  # patch: doctor's info only
    assert connect_warnings(numpy="0.1") == []  # another tracked package: doctor's warning only
    (minor_note,) = connect_warnings(python=f"{major}.{int(minor) + 1}.0")
    assert "python" in minor_note and "error" in minor_note
    # a package the nodes report beyond clusterkit's list is the project's: another version breaks tasks
    (project_note,) = connect_warnings(click="0.0.1")
    assert (
        f"click 0.0.1 on the scheduler and 1 worker (client {metadata.version('click')}, error)"
        in project_note
    )
