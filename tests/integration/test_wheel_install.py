"""A wheel built from the sdist, installed into a fresh venv, finds its recipes: same tags as the checkout.

Offline: the wheel is built with ``--no-build-isolation`` and installed with
its dependencies by ``pip --no-index --find-links`` from the host wheelhouse
of the union lock (``clusterkit.images.wheelhouse()``, which ``make images``
fills; every one of clusterkit's dependencies is in it, since the union lock
is the client's environment). The extras are resolved against the same
wheelhouse with ``--dry-run``: what ``pip install clusterkit[all]`` would take
must be the node locks' versions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from clusterkit import extras
from clusterkit.facts import BACKENDS
from clusterkit.images.locks import lock_path, read_lock
from tests import wheelbuild

pytestmark = pytest.mark.slow

#: Prints what a process sees: the image tags, where the recipes are, the source layer's hash.
PROBE = """
import json
from clusterkit import images, lockhash
from clusterkit.extras import missing_extra
from clusterkit.facts import BACKENDS
from clusterkit.images.tags import source_hash
print(json.dumps({
    "tags": {b: images.image_tag(b) for b in BACKENDS},
    "images_dir": str(lockhash.images_dir()),
    "source_hash": source_hash(),
    "missing": {b: missing_extra(b) for b in BACKENDS},
}))
"""


def _env() -> dict[str, str]:
    """The environment of a user's shell: no test overrides of where the recipes are."""
    drop = ("CLUSTERKIT_IMAGES_DIR", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONSTARTUP")
    return {k: v for k, v in os.environ.items() if k not in drop}


def _run(args: list[str], cwd: Path) -> str:
    r = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(map(str, args))}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def _probe(python: Path, cwd: Path) -> dict:
    return json.loads(_run([str(python), "-c", PROBE], cwd).strip().splitlines()[-1])


#: Host tools from the dev lock a user's venv gets beside clusterkit: uv (clusterkit locks a
#: project's dependencies with it) and pytest with its own dependencies.
TOOLS = ("uv", "pytest", "pluggy", "iniconfig")


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory) -> list[str]:
    """``--find-links`` for every dependency: the union wheelhouse and uv's wheel (a host tool,
    in the dev lock: clusterkit locks a project's dependencies with it)."""
    from clusterkit.images import read_lock
    from clusterkit.images import wheelhouse as union_wheelhouse

    tools = tmp_path_factory.mktemp("tools")
    dev = read_lock(wheelbuild.ROOT / "images" / "requirements-dev.lock")
    pins = [f"{name}=={dev[name].version}" for name in TOOLS]
    pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    subprocess.run([*pip, "-d", str(tools), *pins], check=True, capture_output=True)
    # the union wheelhouse is cached per lock hash: no download once make images ran
    return ["--find-links", str(union_wheelhouse() / "wheels"), "--find-links", str(tools)]


@pytest.fixture(scope="module")
def sdist_and_wheel(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    sdist = wheelbuild.build_sdist(wheelbuild.copy_project(root / "src"), root / "sdist")
    with tarfile.open(sdist) as t:
        t.extractall(root / "unpacked", filter="data")
    (project,) = (root / "unpacked").iterdir()
    return sdist, wheelbuild.build_wheel(project, root / "wheel")


@pytest.fixture
def venv(tmp_path):
    path = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    yield path
    shutil.rmtree(path)
    assert not path.exists()


def _pip(venv: Path, *args: str) -> list[str]:
    # This interpreter's pip installs into the venv (pip --python): the venv needs no pip of its own.
    return [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), *args]


def test_the_sdist_carries_the_recipes_and_the_build_files(sdist_and_wheel):
    sdist, _ = sdist_and_wheel
    names = wheelbuild.sdist_names(sdist)
    assert {f"images/{f}" for f in wheelbuild.recipe_files()} <= names
    assert {"pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "clusterkit/lockhash.py"} <= names


def test_a_wheel_install_outside_the_checkout_finds_the_same_images(
    sdist_and_wheel, wheelhouse, venv, tmp_path
):
    _, wheel = sdist_and_wheel
    _run(_pip(venv, "install", "-q", "--no-index", *wheelhouse, str(wheel)), tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    installed = _probe(venv / "bin" / "python", elsewhere)
    checkout = _probe(Path(sys.executable), wheelbuild.ROOT)

    assert installed["tags"] == checkout["tags"]
    assert set(installed["tags"]) == set(BACKENDS)
    site = Path(installed["images_dir"])
    assert site.name == "recipes" and site.parent.parent.name == "site-packages", site
    assert site.is_relative_to(venv)
    assert Path(checkout["images_dir"]) == wheelbuild.ROOT / "images"
    # The node image's source layer is the same from a wheel as from the checkout (recipes left out).
    assert installed["source_hash"] == checkout["source_hash"]
    # The bare install has no backend client: each backend names the extra to install.
    assert installed["missing"] == {b: extras.extra_requirement(b) for b in BACKENDS}

    cli = str(venv / "bin" / "clusterkit")
    out = _run([cli, "--help"], elsewhere)
    assert "Usage: clusterkit" in out and "up" in out
    # What `up` starts: the compose file names the checkout's images (the locks were found).
    for backend, tag in checkout["tags"].items():
        rendered = _run([cli, "render", "--backend", backend, "--workers", "1"], elsewhere)
        assert f"image: {tag}" in rendered, backend


def test_every_extra_resolves_to_the_node_locks_versions(sdist_and_wheel, wheelhouse, venv, tmp_path):
    _, wheel = sdist_and_wheel
    report = tmp_path / "report.json"
    target = f"clusterkit[{extras.ALL}] @ {wheel.as_uri()}"
    offline = ["--no-index", *wheelhouse]
    _run(_pip(venv, "install", "-q", "--dry-run", "--report", str(report), *offline, target), tmp_path)
    installs = json.loads(report.read_text())["install"]
    chosen = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in installs}
    for backend in BACKENDS:
        lock = read_lock(lock_path(backend))
        for name in extras.PINNED[backend]:
            assert chosen[name] == lock[name].version, (backend, name)
    assert {"cryptography", "paramiko"} <= set(chosen)


def test_a_fixture_without_its_backends_extra_names_the_extra(sdist_and_wheel, wheelhouse, venv, tmp_path):
    _, wheel = sdist_and_wheel
    dev = read_lock(wheelbuild.ROOT / "images" / "requirements-dev.lock")
    tools = [f"{name}=={dev[name].version}" for name in TOOLS[1:]]
    _run(_pip(venv, "install", "-q", "--no-index", *wheelhouse, str(wheel), *tools), tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_it.py").write_text("def test_it(dask_cluster):\n    pass\n")
    pytest_ = [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]
    env = {**_env(), "CLUSTERKIT_REQUIRE_DOCKER": "0"}
    skipped = subprocess.run(pytest_, cwd=project, env=env, capture_output=True, text=True)
    assert skipped.returncode == 0 and "1 skipped" in skipped.stdout, skipped.stdout
    assert "pip install 'clusterkit[dask]'" in skipped.stdout
    env["CLUSTERKIT_REQUIRE_DOCKER"] = "1"
    failed = subprocess.run(pytest_, cwd=project, env=env, capture_output=True, text=True)
    assert failed.returncode == 1 and "clusterkit[dask]" in failed.stdout, failed.stdout
