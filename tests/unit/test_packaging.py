"""Installable: the extras pin the node locks' versions, and the wheel carries the image recipes."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from clusterkit import extras
from clusterkit.errors import UnknownBackend
from clusterkit.facts import BACKENDS, DASK, SPARK
from clusterkit.images import pins
from clusterkit.images.locks import PYTHON_MINOR, lock_path, read_lock
from tests import wheelbuild

ROOT = wheelbuild.ROOT
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _requirements(text: str) -> dict[str, Requirement]:
    reqs = [Requirement(ln) for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return {r.name: r for r in reqs}


def _extra_file(extra: str) -> dict[str, Requirement]:
    return _requirements((ROOT / "images" / extras.pin_file(extra)).read_text())


# --- the pins equal the node locks -------------------------------------------------------------


def test_the_pin_files_are_what_the_generator_makes_from_the_locks():
    assert pins.stale() == [], "run: python -m clusterkit.images.pins --write"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_backend_extra_pins_exactly_its_node_lock(backend):
    lock = read_lock(lock_path(backend))
    reqs = _extra_file(backend)
    client_only = extras.SPARK_CONNECT_REQUIREMENTS if backend == "spark" else ()
    ranges = {_requirements(line).popitem()[0] for line in client_only}  # Connect's client: ranges
    assert sorted(set(reqs) - ranges) == sorted(extras.PINNED[backend])
    for name, req in reqs.items():
        if name in ranges:
            assert name not in lock, f"{name} is the client's, never a node's"
            continue
        assert str(req.specifier) == f"=={lock[name].version}", name


def test_the_pinned_packages_include_the_drift_checks_critical_ones():
    for facts in (DASK, SPARK):
        assert set(facts.critical_packages) <= set(extras.PINNED[facts.name])
    assert {"msgpack", "tornado", "toolz", "pandas", "numpy", "pyarrow"} <= set(extras.PINNED[DASK.name])


def test_all_is_every_backend_pin_plus_swarm():
    reqs = _extra_file(extras.ALL)
    backend_pins = {n: r for b in BACKENDS for n, r in _extra_file(b).items()}
    assert {n: str(r) for n, r in reqs.items()} == {
        **{n: str(r) for n, r in backend_pins.items()},
        **{n: str(r) for n, r in _extra_file(extras.SWARM).items()},
    }
    assert set(_extra_file(extras.SWARM)) == {"cryptography", "paramiko"}


def test_pyproject_reads_every_extra_from_its_pin_file():
    assert "optional-dependencies" in PYPROJECT["dynamic"]
    assert "optional-dependencies" not in PYPROJECT  # static pins would be a second place
    files = SETUPTOOLS["dynamic"]["optional-dependencies"]
    assert files == {e: {"file": [f"images/{extras.pin_file(e)}"]} for e in extras.EXTRAS}


def test_requires_python_is_the_node_images_minor():
    major, minor = map(int, PYTHON_MINOR.split("."))
    assert PYPROJECT["requires-python"] == f">={major}.{minor},<{major}.{minor + 1}"


def test_the_bare_install_has_the_cli_and_engine_but_no_backend_package():
    deps = _requirements("\n".join(PYPROJECT["dependencies"]))
    wanted = {"click", "rich", "pyyaml", "tenacity", "filelock", "psutil", "docker", "testcontainers", "uv"}
    assert set(deps) == wanted
    assert not set(deps) & {n for b in BACKENDS for n in extras.PINNED[b]}


def test_the_union_lock_satisfies_every_range():
    """make venv installs the union and dev locks, then clusterkit with --no-deps: the ranges must hold."""
    union = {**read_lock(lock_path()), **read_lock(lock_path().parent / "requirements-dev.lock")}
    ranges = [*PYPROJECT["dependencies"], *extras.SWARM_REQUIREMENTS]
    for req in map(Requirement, ranges):
        assert Version(union[req.name].version) in req.specifier, req


def test_a_stale_pin_file_is_named_and_rewritten(tmp_path, monkeypatch, capsys):
    for backend in BACKENDS:
        shutil.copy(lock_path(backend), tmp_path / lock_path(backend).name)
    monkeypatch.setenv("CLUSTERKIT_IMAGES_DIR", str(tmp_path))
    assert pins.main([]) == 1
    assert pins.main(["--write"]) == 0
    assert pins.main([]) == 0
    target = tmp_path / extras.pin_file(DASK.name)
    target.write_text(target.read_text().replace("distributed==", "distributed>="))
    capsys.readouterr()
    assert pins.main([]) == 1
    assert str(target) in capsys.readouterr().out
    assert pins.stale(tmp_path) == [target.name]


def test_node_locks_that_disagree_are_refused(tmp_path, monkeypatch):
    for backend in BACKENDS:
        shutil.copy(lock_path(backend), tmp_path / lock_path(backend).name)
    spark = tmp_path / lock_path(SPARK.name).name
    spark.write_text(re.sub(r"(?m)^numpy==\S+", "numpy==0.0.1", spark.read_text()))
    monkeypatch.setenv("CLUSTERKIT_IMAGES_DIR", str(tmp_path))
    with pytest.raises(Exception, match=r"numpy is \S+ in one node lock and 0\.0\.1"):
        pins.expected()


# --- missing_extra -----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_extra_is_missing_where_the_client_packages_are_installed(backend):
    assert extras.missing_extra(backend) is None  # the dev venv has every backend's client


def test_a_blocked_client_module_names_its_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # how an import is blocked
    assert extras.missing_extra(DASK.name) == "clusterkit[dask]"
    assert extras.missing_extra(SPARK.name) is None


def test_a_module_that_is_not_there_names_its_extra(monkeypatch):
    monkeypatch.setitem(extras.CLIENT_MODULES, SPARK.name, ("pyspark", "clusterkit_no_such_module"))
    assert extras.missing_extra(SPARK.name) == "clusterkit[spark]"


def test_an_unknown_backend_or_extra_is_refused():
    with pytest.raises(UnknownBackend):
        extras.missing_extra("ray")
    with pytest.raises(ValueError, match="unknown extra 'gpu'"):
        extras.extra_requirement("gpu")


def test_asking_imports_no_client_package():
    code = (
        "import sys; from clusterkit.extras import missing_extra; from clusterkit.facts import BACKENDS\n"
        "print([missing_extra(b) for b in BACKENDS], sorted({'dask', 'distributed', 'pyspark', 'py4j'} & set(sys.modules)))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[None, None] []"


# --- the wheel carries the recipes -------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheel")
    return wheelbuild.build_wheel(wheelbuild.copy_project(root / "src"), root / "out")


def test_the_wheel_lists_every_recipe_file_and_no_top_level_images(wheel):
    names = wheelbuild.wheel_names(wheel)
    assert {f"clusterkit/recipes/{f}" for f in wheelbuild.recipe_files()} <= names
    for needed in ("Dockerfile.dask", "dask.lock", "spark.lock", "requirements.lock", "install-venv.sh"):
        assert f"clusterkit/recipes/{needed}" in names
    assert not [n for n in names if n.startswith("images/")]
    assert "clusterkit/lockhash.py" in names and "clusterkit/cli/__init__.py" in names


def test_the_wheel_metadata_carries_the_pins(wheel):
    meta = wheelbuild.wheel_metadata(wheel)
    for extra in extras.EXTRAS:
        assert f"Provides-Extra: {extra}" in meta
        for req in _extra_file(extra).values():
            assert f'Requires-Dist: {req}; extra == "{extra}"' in meta
    assert f"Requires-Python: <3.{int(PYTHON_MINOR.split('.')[1]) + 1},>={PYTHON_MINOR}" in meta


# --- where the code looks ----------------------------------------------------------------------


def test_an_installed_package_uses_its_recipes_and_a_checkout_its_images_folder(tmp_path, monkeypatch):
    from clusterkit import lockhash

    package = tmp_path / "site-packages" / "clusterkit"
    package.mkdir(parents=True)
    monkeypatch.setattr(lockhash, "_PACKAGE", package)
    assert lockhash._default_images_dir() == tmp_path / "site-packages" / "images"  # a checkout's layout
    (package / lockhash.RECIPES).mkdir()
    assert lockhash._default_images_dir() == package / lockhash.RECIPES
    monkeypatch.delenv("CLUSTERKIT_IMAGES_DIR", raising=False)
    assert lockhash.images_dir() == ROOT / "images"  # this checkout: no clusterkit/recipes here
    monkeypatch.setenv("CLUSTERKIT_IMAGES_DIR", str(tmp_path))
    assert lockhash.images_dir() == tmp_path


def test_the_recipes_stay_out_of_the_node_images_source_layer(tmp_path):
    from clusterkit.images.paths import source_files

    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "dask.lock").write_text("x")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "recipes.py").write_text("x")
    (tmp_path / "facts.py").write_text("x")
    got = sorted(p.relative_to(tmp_path).as_posix() for p in source_files(tmp_path))
    assert got == ["facts.py", "images/recipes.py"]
