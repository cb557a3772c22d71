"""clusterkit as a user meets it: installed from a wheel into a fresh venv, in a project of their own.

The project has a src layout, a dependency clusterkit's lock lacks and tests on
both fixtures; it runs with ``CLUSTERKIT_REQUIRE_DOCKER=1`` from its own folder,
far from this checkout. Then ``clusterkit up`` there and a Python client that
imports the project compute. Installs come from the host's wheelhouse (the
union lock's wheels) and pip's cache; locking the project's dependency asks the
package index, as ``make lock`` does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from clusterkit.images import read_lock
from clusterkit.images import wheelhouse as union_wheelhouse
from tests import wheelbuild
from tests.conftest import free_port
from tests.integration.conftest import leftovers

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.spark]

DEPENDENCY = "humanize"
DASK_TEST = f"""
from userpkg import double

def test_double_on_dask(dask_cluster):
    client = dask_cluster.client
    assert client.submit(double, 21).result() == 42
    assert client.submit(lambda: __import__("{DEPENDENCY}").__name__).result() == "{DEPENDENCY}"
"""
SPARK_TEST = f"""
from userpkg import double

def test_double_on_spark(spark_cluster):
    rdd = spark_cluster.session.sparkContext.parallelize(range(4), 2)
    assert rdd.map(double).collect() == [0, 2, 4, 6]
    names = rdd.map(lambda _: __import__("{DEPENDENCY}").__name__).distinct().collect()
    assert names == ["{DEPENDENCY}"]
"""
CLIENT = """
import sys
from clusterkit import dask
from userpkg import double
client = dask.connect_to_scheduler(sys.argv[1], timeout=60)
print(client.submit(double, 50).result())
"""


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv with ``clusterkit[all]`` from a wheel, and pytest, as a user installs them."""
    root = tmp_path_factory.mktemp("user")
    wheel = wheelbuild.build_wheel(wheelbuild.copy_project(root / "src"), root / "wheel")
    tools = root / "tools"
    dev = read_lock(wheelbuild.ROOT / "images" / "requirements-dev.lock")
    pins = [f"{name}=={dev[name].version}" for name in ("uv", "pytest", "pluggy", "iniconfig")]
    _run([sys.executable, "-m", "pip", "download", "-q", "-d", str(tools), *pins], root)
    path = root / "venv"
    _run([sys.executable, "-m", "venv", str(path)], root)  # with pip, as users have it
    offline = ["--no-index", "--find-links", str(union_wheelhouse() / "wheels"), "--find-links", str(tools)]
    pip = [sys.executable, "-m", "pip", "--python", str(path / "bin" / "python"), "install", "-q"]
    _run([*pip, *offline, f"clusterkit[all] @ {wheel.as_uri()}", *pins], root)
    return path


@pytest.fixture
def project(tmp_path, venv) -> Path:
    """A src-layout project, on the venv's path as an editable install puts it."""
    folder = tmp_path / "userproject"
    (folder / "src" / "userpkg").mkdir(parents=True)
    (folder / "tests").mkdir()
    (folder / "pyproject.toml").write_text(
        f'[project]\nname = "userproject"\nversion = "0.1"\ndependencies = ["{DEPENDENCY}"]\n'
    )
    (folder / "src" / "userpkg" / "__init__.py").write_text("def double(x):\n    return 2 * x\n")
    (folder / "tests" / "test_on_dask.py").write_text(DASK_TEST)
    (folder / "tests" / "test_on_spark.py").write_text(SPARK_TEST)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (site / "userproject.pth").write_text(str(folder / "src") + "\n")
    yield folder
    (site / "userproject.pth").unlink()


@pytest.fixture
def project_images(docker_client):
    """The project layers the test builds: removed afterwards (a new project's, no one else uses them)."""
    before = {i.id for i in docker_client.images.list(filters={"label": "clusterkit.project-lock"})}
    yield
    for image in docker_client.images.list(filters={"label": "clusterkit.project-lock"}):
        if image.id not in before:
            docker_client.images.remove(image.id, force=True)


def _user_env(venv: Path, run_dir: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "CLUSTERKIT_"))}
    return {
        **keep,
        "PATH": f"{venv / 'bin'}:{keep.get('PATH', '')}",
        "CLUSTERKIT_REQUIRE_DOCKER": "1",
        "CLUSTERKIT_RUN_DIR": str(run_dir),
    }


def test_a_users_project_passes_on_both_fixtures_and_computes_on_up(
    venv, project, project_images, run_dir, docker_client, cluster_names
):
    env = _user_env(venv, run_dir)
    out = _run([str(venv / "bin" / "pytest"), "-q", "-rs", "-p", "no:cacheprovider", "tests"], project, env)
    assert "2 passed" in out and "skipped" not in out, out
    # the project's first run locks and builds where the user sees it, not silently
    assert "clusterkit: locking 1 project dependencies" in out, out
    assert (project / "clusterkit.lock").is_file()

    name = f"userproj-{free_port()}"
    cluster_names.append(name)
    port, dash = free_port(), free_port()
    up = [str(venv / "bin" / "clusterkit"), "up", "--runtime", "compose", "--name", name, "--workers", "1"]
    _run([*up, "--scheduler-port", str(port), "--dashboard-port", str(dash), "--no-supervise"], project, env)
    try:
        computed = _run([str(venv / "bin" / "python"), "-c", CLIENT, f"127.0.0.1:{port}"], project, env)
        assert computed.strip().splitlines()[-1] == "100"
    finally:
        _run([str(venv / "bin" / "clusterkit"), "down", "--name", name], project, env)
    assert leftovers(docker_client, name) == []
