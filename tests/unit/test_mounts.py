"""Shared folders as plain data: parsing, the spec's ``mounts``, and what the nodes are given."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clusterkit import mounts, nodes
from clusterkit.errors import InvalidValue, SpecFileError
from clusterkit.render.compose import render
from clusterkit.runtimes import sharing
from clusterkit.spec import ClusterSpec, load_spec_file, resolve_spec


def test_a_mount_is_an_absolute_path_with_a_mode(tmp_path):
    assert mounts.parse("data", base=tmp_path) == mounts.Mount(str(tmp_path / "data"), "ro")
    assert mounts.parse(f"{tmp_path}/out:rw").read_only is False
    assert str(mounts.parse("/srv/a/../b")) == "/srv/b:ro"


@pytest.mark.parametrize("bad", ["/", "/usr", "/etc/ssl", "/proc", "/run/clusterkit", ":rw", ""])
def test_system_folders_and_empty_paths_are_refused_with_the_fix(bad):
    with pytest.raises(InvalidValue, match=r"mounts: .*--mount"):
        mounts.parse(bad)


def test_spec_mounts_are_normalized_and_rw_wins():
    spec = ClusterSpec(name="x", mounts=["/srv/p", "/srv/p:rw", "/data"])
    assert spec.mounts == ("/data:ro", "/srv/p:rw")
    assert ClusterSpec.from_record(spec.to_dict()) == spec
    assert ClusterSpec(name="x").mounts is None, "None: the runtime's default"
    assert ClusterSpec(name="x", mounts=[]).mounts == ()


def test_spec_file_mounts_are_relative_to_the_file(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "clusterkit.yaml").write_text("mounts:\n  - data\n  - ../out:rw\n")
    assert load_spec_file(folder / "clusterkit.yaml")["mounts"] == (
        f"{tmp_path / 'out'}:rw",
        f"{folder / 'data'}:ro",
    )
    (folder / "clusterkit.yaml").write_text("mounts: {a: 1}\n")
    with pytest.raises((InvalidValue, SpecFileError), match="mounts"):
        resolve_spec(folder / "clusterkit.yaml", environ={})


def test_mounts_from_the_environment_and_a_bad_user():
    spec = resolve_spec(path=os.devnull, environ={"CLUSTERKIT_MOUNTS": "/srv/a,/srv/b:rw"})
    assert spec.mounts == ("/srv/a:ro", "/srv/b:rw")
    with pytest.raises(InvalidValue, match="user: 'root' is not valid; expected UID:GID"):
        ClusterSpec(name="x", user="root")


def test_the_default_folder_is_never_the_root_or_the_home_folder(tmp_path):
    assert mounts.default_folder("/") is None
    assert mounts.default_folder(Path.home()) is None
    assert mounts.default_folder(tmp_path) == str(tmp_path)


def test_explain_names_the_path_and_the_option():
    line = mounts.explain("/tmp/out", ("/srv/p:ro",), write=True)
    assert "/tmp/out is not shared" in line and "--mount /tmp/out:rw" in line
    line = mounts.explain("/srv/p/x", ("/srv/p:ro",), write=True)
    assert "read-only" in line and "--mount /srv/p:rw" in line


def test_compose_nodes_bind_each_folder_at_its_own_path_and_workers_are_sealed():
    spec = ClusterSpec(name="x", mounts=["/srv/data", "/srv/out:rw"], user="1234:100")
    doc = render(spec, "img:1")
    worker, scheduler = doc["services"]["worker"], doc["services"]["scheduler"]
    binds = {v["target"]: v for v in worker["volumes"]}
    assert binds["/srv/data"] == {
        "type": "bind",
        "source": "/srv/data",
        "target": "/srv/data",
        "read_only": True,
    }
    assert binds["/srv/out"]["read_only"] is False
    assert binds["/etc/passwd"]["source"] == nodes.passwd_file("1234:100"), "a uid the image does not know"
    assert worker["read_only"] is True and "read_only" not in scheduler, "the scheduler keeps its lease"
    assert worker["user"] == scheduler["user"] == "1234:100"
    assert worker["tmpfs"] == [f"{mounts.SCRATCH}:exec,mode=1777"]
    assert worker["environment"]["TMPDIR"] == mounts.SCRATCH and worker["cap_drop"] == ["ALL"]
    known = render(ClusterSpec(name="x", mounts=[], user="0:0"), "img:1")["services"]["worker"]
    assert "volumes" not in known, "root and the image's user need no passwd file"


def test_settle_gives_container_runtimes_the_project_folder_and_the_caller(tmp_path, monkeypatch):
    monkeypatch.setenv("CLUSTERKIT_RUN_DIR", str(tmp_path / "run"))

    class Containers:
        binds_host_paths = True

        class docker:
            @staticmethod
            def info():
                return {"DockerRootDir": "/"}

    class Local:
        binds_host_paths = False

    spec = ClusterSpec(name="x")
    settled = sharing.settle(Containers(), spec, project=tmp_path)
    assert settled.mounts == (f"{tmp_path}:ro",)
    assert settled.user == f"{os.getuid()}:{os.getgid()}"
    assert sharing.settle(Local(), spec).mounts == ()
    assert sharing.settle(Containers(), spec, project=Path.home()).mounts == ()
    with pytest.raises(InvalidValue, match="does not exist on this host; create it"):
        sharing.settle(Containers(), spec.replace(mounts=[str(tmp_path / "missing")]))


def test_a_client_outside_the_engines_host_is_told_in_one_line(monkeypatch):
    real = os.path.exists
    monkeypatch.setattr(os.path, "exists", lambda p: p == "/.dockerenv" or real(p))
    assert mounts.engine_elsewhere("/nonexistent/docker-data")
    assert not mounts.engine_elsewhere("/")

    class Containers:
        binds_host_paths = True

        class docker:
            @staticmethod
            def info():
                return {"DockerRootDir": "/nonexistent/docker-data"}

    assert sharing.settle(Containers(), ClusterSpec(name="x")).mounts == ()
    with pytest.raises(InvalidValue, match="Docker-outside-of-Docker"):
        sharing.settle(Containers(), ClusterSpec(name="x", mounts=["/srv"]))


def test_passwd_names_the_caller_with_home_in_scratch():
    text = nodes.passwd_text("1234:100", "ana")
    assert "clusterkit:x:1000:1000" in text and text.endswith(
        f"ana:x:1234:100:clusterkit node:{mounts.SCRATCH}:/bin/sh\n"
    )


def test_refused_paths_are_found_in_dask_and_spark_errors():
    spark = (
        "IOException: Mkdirs failed to create file:/tmp/u/_temporary/0/_temporary/attempt_1 (exists=false)"
    )
    assert mounts.refused_paths(spark) == [("/tmp/u", True)]
    dask = "FileNotFoundError: [Errno 2] No such file or directory: '/tmp/probe/data/part2.csv'"
    assert mounts.refused_paths(dask) == [("/tmp/probe/data/part2.csv", False)]
    assert mounts.refused_paths("AssertionError: 1 != 2") == []


def test_a_failing_tests_report_names_the_unshared_path():
    from types import SimpleNamespace

    from clusterkit.testing.handle import ClusterHandle
    from clusterkit.testing.report import sharing_hints

    handle = ClusterHandle.__new__(ClusterHandle)
    handle.cluster = SimpleNamespace(spec=ClusterSpec(name="x", mounts=["/srv/p"]))
    item = SimpleNamespace(funcargs={"dask_cluster": handle})
    ((title, text),) = sharing_hints(item, "OSError: [Errno 30] Read-only file system: '/tmp/out'")
    assert title == "clusterkit: shared folders"
    assert "/tmp/out is not shared" in text and "--mount /tmp/out:rw" in text
    assert sharing_hints(item, "AssertionError") == []
