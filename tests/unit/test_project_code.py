"""Finding and zipping the project's packages, and sending them once: no engine needed."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import uuid
import zipfile

import pytest

from clusterkit import project


def make_project(root, *, src: bool = True, name: str = "mypkg"):
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text('[project]\nname = "x"\n')
    base = root / "src" if src else root
    (base / name / "sub").mkdir(parents=True)
    (base / name / "__init__.py").write_text("def f(x):\n    return x + 1\n")
    (base / name / "sub" / "__init__.py").write_text("")
    (base / name / "__pycache__").mkdir()
    (base / name / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    return base / name


def test_a_src_layout_is_found_from_a_folder_inside_it(tmp_path):
    package = make_project(tmp_path / "proj")
    (tmp_path / "proj" / "src" / "single.py").write_text("X = 1\n")
    assert project.project_root(package / "sub") == tmp_path / "proj"
    found = project.project_packages(package / "sub")
    assert found["mypkg"] == package and found["single"].name == "single.py"


def test_a_flat_layout_leaves_tests_docs_and_clusterkit_behind(tmp_path):
    root = tmp_path / "flat"
    make_project(root, src=False)
    for name in ("tests", "docs", "clusterkit"):
        (root / name).mkdir()
        (root / name / "__init__.py").write_text("")
    (root / "script.py").write_text("print('not a package')\n")
    assert sorted(project.packages_in(root)) == ["mypkg"]


def test_an_editable_install_is_found_from_any_folder(tmp_path, monkeypatch):
    package = make_project(tmp_path / "proj", name=f"edit_{uuid.uuid4().hex[:6]}")
    dist = tmp_path / "site" / "edit-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: edit\nVersion: 0.1\n")
    direct = {"url": (tmp_path / "proj").as_uri(), "dir_info": {"editable": True}}
    (dist / "direct_url.json").write_text(json.dumps(direct))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert tmp_path / "proj" in project.editable_roots()
    assert project.project_packages(elsewhere)[package.name] == package


def test_the_zip_is_made_once_per_content(tmp_path):
    package = make_project(tmp_path / "proj")
    first = project.archive(package)
    assert first is not None and first.names == ("mypkg",)
    assert project.archive(package) is first  # nothing changed: not zipped again
    names = zipfile.ZipFile(io.BytesIO(first.data)).namelist()
    assert "mypkg/__init__.py" in names and "mypkg/sub/__init__.py" in names
    assert not any("__pycache__" in n for n in names)
    os.utime(package / "__init__.py", ns=(1, 1))  # touched, same contents: the same digest
    assert project.archive(package).digest == first.digest
    (package / "__init__.py").write_text("def f(x):\n    return x + 2\n")
    edited = project.archive(package)
    assert edited.digest != first.digest and edited.filename == f"{project.NAME}-{edited.digest}.zip"


def test_modules_the_nodes_cannot_import_are_listed(tmp_path, monkeypatch):
    name = f"helper_{uuid.uuid4().hex[:6]}"
    (tmp_path / f"{name}.py").write_text("def g():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    __import__(name)
    try:
        listed = project.unshipped_modules()
        assert name in listed and __name__ in listed
        assert not {"json", "pytest", "clusterkit.project", "__main__"} & set(listed)
        assert name not in project.unshipped_modules((name,))
    finally:
        sys.modules.pop(name, None)


@pytest.mark.parametrize(("value", "on"), [(None, True), ("1", True), ("0", False), ("false", False)])
def test_the_environment_turns_shipping_off(monkeypatch, value, on):
    if value is None:
        monkeypatch.delenv(project.ENV, raising=False)
    else:
        monkeypatch.setenv(project.ENV, value)
    assert project.enabled() is on


def test_a_task_of_a_by_value_module_carries_its_code(tmp_path, monkeypatch):
    """distributed alone pickles a function inside a task by reference, even when registered."""
    import cloudpickle
    from dask._task_spec import Task
    from distributed.protocol import pickle as dask_pickle

    from clusterkit.backends.dask import ship

    name = f"local_{uuid.uuid4().hex[:6]}"
    (tmp_path / f"{name}.py").write_text("def g(x):\n    return x * 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = __import__(name)
    try:
        ship.pickle_by_value([name])
        data = dask_pickle.dumps({"k": Task("k", module.g, 2)})
    finally:
        cloudpickle.unregister_pickle_by_value(module)
        sys.modules.pop(name, None)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path)])
    assert dask_pickle.loads(data)["k"]({}) == 6  # no module to import: the code came along


class FakeScheduler:
    """The scheduler rpc ``send_project`` talks to: records the plugins it gets."""

    def __init__(self) -> None:
        self.id = f"Scheduler-{uuid.uuid4()}"
        self.plugins: list[tuple[str, object]] = []

    async def identity(self, n_workers: int = -1) -> dict:
        return {"id": self.id}

    async def register_scheduler_plugin(self, plugin, name, idempotent):
        self.plugins.append((name, dask_loads(plugin)))

    async def register_worker_plugin(self, plugin, name, idempotent):
        self.plugins.append((name, dask_loads(plugin)))
        return {"tcp://w:1": {"status": "OK"}}


def dask_loads(data):
    from distributed.protocol.pickle import loads

    return loads(data)


def test_the_dask_scheduler_gets_the_project_once_per_content(tmp_path, monkeypatch):
    from clusterkit import workdir
    from clusterkit.backends.dask import ship

    package = make_project(tmp_path / "proj")
    monkeypatch.chdir(package)
    monkeypatch.delenv(project.ENV, raising=False)
    by_value: list[list[str]] = []
    monkeypatch.setattr(ship, "pickle_by_value", by_value.append)
    scheduler = FakeScheduler()
    digest = asyncio.run(ship.send_project(scheduler))
    assert digest is not None and [n for n, _ in scheduler.plugins] == [project.NAME] * 2
    to_scheduler, to_workers = (plugin for _, plugin in scheduler.plugins)
    assert isinstance(to_scheduler, workdir.WorkdirToScheduler)
    assert isinstance(to_workers, workdir.WorkdirToWorkers) and to_workers.names == ["mypkg"]
    assert to_workers.filename == f"{project.NAME}-{digest}.zip"
    assert asyncio.run(ship.send_project(scheduler)) is None and len(scheduler.plugins) == 2
    (package / "__init__.py").write_text("def f(x):\n    return x + 3\n")
    assert asyncio.run(ship.send_project(scheduler)) not in (None, digest)
    assert len(scheduler.plugins) == 4 and all("mypkg" not in names for names in by_value)


def test_a_spark_session_gets_the_project_once_per_content(tmp_path, monkeypatch):
    from clusterkit.backends.spark.session import ship_project

    class Context:
        def __init__(self) -> None:
            self.files: list[str] = []

        def addPyFile(self, path: str) -> None:
            self.files.append(path)

    class Session:
        def __init__(self) -> None:
            self.sparkContext = Context()

    package = make_project(tmp_path / "proj")
    monkeypatch.chdir(package)
    monkeypatch.delenv(project.ENV, raising=False)
    monkeypatch.setattr(project, "unshipped_modules", lambda shipped=(): [])
    session = Session()
    digest = ship_project(session)
    assert digest is not None and ship_project(session) is None
    (added,) = session.sparkContext.files
    assert os.path.basename(added) == f"{project.NAME}-{digest}.zip"
    assert "mypkg/__init__.py" in zipfile.ZipFile(added).namelist()
    monkeypatch.setenv(project.ENV, "0")
    (package / "__init__.py").write_text("changed = True\n")
    assert ship_project(session) is None and len(session.sparkContext.files) == 1


def test_a_project_over_the_limit_is_not_sent_and_says_so(tmp_path, monkeypatch):
    package = make_project(tmp_path / "proj")
    (package / "data.bin").write_bytes(b"\0" * 2048)
    monkeypatch.setattr(project, "MAX_BYTES", 1024)
    with pytest.warns(UserWarning, match="not sent to the nodes"):
        assert project.archive(package) is None
