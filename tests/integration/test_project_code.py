"""The project's own code on every node, without an image rebuild: a src-layout package
installed editable, and functions of this very module, on the real engine."""

from __future__ import annotations

import importlib
import json
import sys
import uuid

import pytest

from clusterkit import Cluster, project
from tests.conftest import free_port
from tests.integration.conftest import leftovers

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def plus_five_squared(x):
    """Defined here: the nodes cannot import this test module (no pytest there)."""
    return x * x + 5


def editable_project(tmp_path, monkeypatch, version: int):
    """``mypkg`` as ``pip install -e`` leaves it: ``src/`` on the path and a dist-info whose
    ``direct_url.json`` says editable (the project folder is not the current one)."""
    root = tmp_path / "proj"
    package = root / "src" / f"mypkg_{uuid.uuid4().hex[:8]}"
    package.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text('[project]\nname = "mypkg"\nversion = "0.1"\n')
    write_module(package, version)
    dist = tmp_path / "site" / "mypkg-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mypkg\nVersion: 0.1\n")
    url = {"url": root.as_uri(), "dir_info": {"editable": True}}
    (dist / "direct_url.json").write_text(json.dumps(url))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.syspath_prepend(str(root / "src"))
    return package


def write_module(package, version: int) -> None:
    (package / "__init__.py").write_text(
        f"VERSION = {version}\n\n\ndef f(x):\n    return x * 7 + {version}\n"
    )


def test_project_package_and_module_functions_reach_every_worker(
    docker_client, cluster_names, tmp_path, monkeypatch
):
    from distributed import Client

    from clusterkit.dask import connect_to_scheduler
    from clusterkit.images.tags import image_tag

    package = editable_project(tmp_path, monkeypatch, version=1)
    mypkg = importlib.import_module(package.name)
    name = f"ck-proj-{uuid.uuid4().hex[:6]}"
    cluster_names.append(name)
    ports = {"scheduler_port": free_port(), "dashboard_port": free_port()}
    # The image of the lock, as built: a source-layer rebuild is no part of this test.
    with (
        Cluster("dask", workers=1, runtime="compose", name=name, image=image_tag("dask"), **ports) as c,
        Client(c) as client,
    ):
        assert client.submit(mypkg.f, 6).result() == 43
        assert client.submit(plus_five_squared, 4).result() == 21
        assert client.run_on_scheduler(lambda: importlib.import_module(package.name).VERSION) == 1

        assert len(c.scale(2).workers) == 2
        files = client.run(lambda: importlib.import_module(package.name).__file__)
        assert len(files) == 2 and all(project.NAME in f for f in files.values()), files
        for worker in files:
            assert client.submit(mypkg.f, 1, workers=[worker], pure=False).result() == 8
            assert client.submit(plus_five_squared, 1, workers=[worker], pure=False).result() == 6

        # An edit reaches the running workers with the next connection, no rebuild.
        write_module(package, version=22)
        with connect_to_scheduler(c.client_spec.scheduler_address, timeout=60) as second:
            versions = second.run(lambda: importlib.import_module(package.name).VERSION)
            assert set(versions.values()) == {22}, versions
            assert second.submit(mypkg.f, 1, pure=False).result() == 29
        write_module(package, version=333)  # and with the next Client(cluster)
        with Client(c) as third:
            assert third.submit(mypkg.f, 1, pure=False).result() == 340
    assert leftovers(docker_client, name) == []
    sys.modules.pop(package.name, None)


@pytest.mark.spark
def test_spark_executors_import_the_project_and_run_module_functions(
    docker_client, cluster_names, tmp_path, monkeypatch
):
    from clusterkit.images.tags import image_tag

    package = editable_project(tmp_path, monkeypatch, version=4)
    mypkg = importlib.import_module(package.name)
    name = f"ck-proj-spark-{uuid.uuid4().hex[:6]}"
    cluster_names.append(name)
    ports = {"scheduler_port": free_port(), "dashboard_port": free_port()}
    with Cluster("spark", workers=1, runtime="compose", name=name, image=image_tag("spark"), **ports) as c:
        numbers = c.session().sparkContext.parallelize([1, 2, 3], 3)
        assert numbers.map(mypkg.f).collect() == [11, 18, 25]
        assert numbers.map(plus_five_squared).collect() == [6, 9, 14]
        files = numbers.map(lambda _: importlib.import_module(package.name).__file__).collect()
        assert all(project.NAME in f for f in files), files
    assert leftovers(docker_client, name) == []
    sys.modules.pop(package.name, None)
