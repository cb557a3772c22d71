"""Node images against a real Docker engine.

The first run builds the bases and both node images (minutes: see
benchmarks/RESULTS.md); later runs reuse them. Bad-input cases use a private
copy of images/ and check that no new image got tagged. These tests assert
behaviour (what was rebuilt, what is in the image), not durations: those are
measured by the benchmarks. Dangling images the tests leave are removed.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from clusterkit import images
from clusterkit.errors import BuildError, ImageNotFound
from clusterkit.images import paths

pytestmark = pytest.mark.docker

REPO_IMAGES = paths.images_dir()


@pytest.fixture(scope="module")
def engine():
    """The Docker client; skip (or fail with CLUSTERKIT_REQUIRE_DOCKER=1) without an engine."""
    try:
        import docker

        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as e:  # any failure to reach the engine
        msg = f"Docker engine unreachable ({type(e).__name__}: {e})"
        if os.environ.get("CLUSTERKIT_REQUIRE_DOCKER") == "1":
            pytest.fail(msg + " and CLUSTERKIT_REQUIRE_DOCKER=1")
        pytest.skip(msg)
    dangling = _dangling(client)
    yield client
    # Failed builds and code-only rebuilds leave untagged images: remove the new ones.
    for image_id in _dangling(client) - dangling:
        try:
            client.images.remove(image_id, force=False)
        except docker.errors.APIError:
            pass  # a parent of another image, or used by a container: not ours to force


def _dangling(client) -> set[str]:
    return {img.id for img in client.images.list(filters={"dangling": True})}


def _tags(client) -> set[str]:
    return {t for img in client.images.list() for t in img.tags}


def _containers(client) -> set[str]:
    return {c.id for c in client.containers.list(all=True)}


def _run(client, ref: str, cmd: str, **kw) -> str:
    out = client.containers.run(ref, ["sh", "-c", cmd], remove=True, network_mode="none", **kw)
    return out.decode()


@pytest.fixture(scope="module", params=images.BACKENDS)
def node(request, engine):
    """(backend, ref) of a current node image, built if missing."""
    backend = request.param
    return backend, images.ensure_image(backend)


@pytest.fixture
def images_copy(tmp_path, monkeypatch):
    d = tmp_path / "images"
    shutil.copytree(REPO_IMAGES, d)
    monkeypatch.setenv("CLUSTERKIT_IMAGES_DIR", str(d))
    monkeypatch.delenv("BASE_IMAGE", raising=False)
    monkeypatch.delenv("BASE_IMAGE_JRE", raising=False)
    return d


# --- the built images ---------------------------------------------------------------


@pytest.mark.slow
def test_pip_freeze_equals_the_image_lock(engine, node):
    backend, ref = node
    frozen = {}
    for line in _run(engine, ref, "pip freeze --all").split():
        name, _, version = line.partition("==")
        frozen[images.normalize(name)] = version
    for tool in ("pip", "setuptools", "wheel", "clusterkit"):
        frozen.pop(tool, None)
    locked = {n: p.version for n, p in images.read_lock(images.lock_path(backend)).items()}
    assert frozen == locked


@pytest.mark.slow
def test_python_311_non_root_and_clusterkit_importable(engine, node):
    _, ref = node
    out = _run(
        engine,
        ref,
        "id -u; python -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'; "
        "python -c 'import clusterkit; print(clusterkit.__file__)'; command -v clusterkit",
    )
    uid, py, where, launcher = out.split()
    assert uid != "0" and uid == "1000"
    assert py == images.PYTHON_MINOR
    assert where == "/opt/clusterkit/clusterkit/__init__.py"
    assert launcher == "/opt/venv/bin/clusterkit"


@pytest.mark.slow
def test_labels_describe_the_image(engine, node):
    backend, ref = node
    labels = engine.images.get(ref).labels
    assert labels["clusterkit.project"] == "clusterkit"
    assert labels["clusterkit.backend"] == backend
    assert labels["clusterkit.lock-hash"] == images.lock_hash()
    assert labels["clusterkit.python"] == images.PYTHON_MINOR
    assert labels["clusterkit.source-hash"] == images.source_hash()
    locked = {n: p.version for n, p in images.read_lock(images.lock_path(backend)).items()}
    assert images.image_versions(ref) == locked
    assert ref in {i.ref for i in images.list_images()}


def test_node_images_declare_no_volume(engine, node):
    """A VOLUME in an image gives every container anonymous volumes that outlive it (unlabelled)."""
    _, ref = node
    for image in (ref, images.env_tag(ref)):
        assert not engine.images.get(image).attrs["Config"].get("Volumes"), image
    container = engine.containers.create(ref, ["true"])
    try:
        assert container.attrs["Mounts"] == []
    finally:
        container.remove(v=True, force=True)


@pytest.mark.slow
def test_spark_image_has_java_and_spark_home(engine):
    ref = images.ensure_image("spark")
    out = _run(
        engine,
        ref,
        'java -version 2>&1 | head -1; test -x "$SPARK_HOME/bin/spark-class" && echo ok; '
        "python -c 'import pyspark, pyarrow, pandas; print(pyspark.__version__)'",
    )
    assert "17." in out and "ok" in out
    assert images.image_versions(ref)["pyspark"] in out


@pytest.mark.slow
def test_dask_image_has_no_java_or_pyspark(engine):
    ref = images.ensure_image("dask")
    out = _run(engine, ref, "command -v java || echo nojava; python -c 'import pyspark' 2>&1 | tail -1")
    assert "nojava" in out and "ModuleNotFoundError" in out


def test_the_venv_install_runs_without_network(engine, images_copy):
    """install-venv.sh sees only the loopback interface (the step that reads the wheelhouse)."""
    images.ensure_image("dask")  # wheelhouse and base present
    script = images_copy / "install-venv.sh"
    probe = 'echo "interfaces: $(ls /sys/class/net | tr "\\n" " ")"; false\n'
    script.write_text(script.read_text().replace("set -eu\n", "set -eu\n" + probe, 1))
    with pytest.raises(BuildError) as err:
        images.build_node_image("dask")
    assert re.search(r"^interfaces: lo\s*$", str(err.value), re.M), str(err.value)


def _layers(engine, ref: str) -> list[str]:
    return engine.images.get(ref).attrs["RootFS"]["Layers"]


@pytest.mark.slow
def test_code_only_change_rebuilds_the_last_layer_under_the_same_tag(engine, tmp_path, monkeypatch):
    ref = images.ensure_image("dask")
    env = images.env_tag(ref)
    env_id, layers = engine.images.get(env).id, _layers(engine, ref)
    src = tmp_path / "clusterkit"
    shutil.copytree(paths.source_dir(), src, ignore=shutil.ignore_patterns("__pycache__"))
    (src / "_probe_for_test.py").write_text("PROBE = 1\n")
    monkeypatch.setattr(paths, "source_dir", lambda: src)
    seen = []
    try:
        assert images.ensure_image("dask", progress=seen.append) == ref
        assert [e.step for e in seen] == ["build", "build"]  # no wheelhouse, no base
        assert "on its cached venv stage" in seen[0].message
        # the venv stage was reused, and every layer but the last (the source) too
        assert engine.images.get(env).id == env_id
        rebuilt = _layers(engine, ref)
        assert len(rebuilt) == len(layers)
        assert rebuilt[:-1] == layers[:-1] and rebuilt[-1] != layers[-1]
        assert engine.images.get(ref).labels["clusterkit.source-hash"] == images.source_hash(src)
        assert (
            _run(engine, ref, "python -c 'import clusterkit._probe_for_test as p; print(p.PROBE)'").strip()
            == "1"
        )
    finally:
        monkeypatch.undo()
        images.ensure_image("dask")  # put the real source back
    assert engine.images.get(ref).labels["clusterkit.source-hash"] == images.source_hash()
    assert _layers(engine, ref)[:-1] == layers[:-1]
    # the venv stage is tagged, so `docker image prune` keeps the cache this relies on
    assert images.image_exists(env)


def test_ensure_image_is_a_no_op_when_current(engine):
    ref = images.ensure_image("dask")
    before = engine.images.get(ref).attrs
    seen = []
    assert images.ensure_image("dask", progress=seen.append) == ref
    after = engine.images.get(ref).attrs
    assert seen == []
    assert (after["Id"], after["Created"]) == (before["Id"], before["Created"])


# --- bad input: a clear error and no new tagged image --------------------------------------


def test_missing_dockerfile(engine, images_copy):
    (images_copy / "Dockerfile.dask").unlink()
    before = _tags(engine)
    with pytest.raises(BuildError, match=r"Dockerfile\.dask is missing"):
        images.build_node_image("dask")
    assert not _tags(engine) - before


@pytest.mark.parametrize("how", ["argument", "env"])
def test_base_image_not_present(engine, images_copy, monkeypatch, how):
    missing = "clusterkit-test/no-such-base:never"
    before = _tags(engine)
    if how == "env":
        monkeypatch.setenv("BASE_IMAGE", missing)
        call = lambda: images.build_node_image("spark")  # noqa: E731  BASE_IMAGE_JRE falls back
    else:
        call = lambda: images.build_node_image("dask", base_image=missing)  # noqa: E731
    with pytest.raises(ImageNotFound, match=r"no-such-base:never.*docker pull") as err:
        call()
    assert "BASE_IMAGE" in str(err.value)
    with pytest.raises(ImageNotFound):
        images.build_base(False, base_image=missing)
    assert not _tags(engine) - before


def test_lock_naming_a_nonexistent_package(engine, images_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("CLUSTERKIT_CACHE_DIR", str(tmp_path / "cache"))
    bogus = "clusterkit-no-such-package-zz9==0.0.1 --hash=sha256:" + "0" * 64 + "\n"
    for name in ("requirements.lock", "dask.lock"):
        (images_copy / name).write_text(bogus)
    before = _tags(engine)
    with pytest.raises(BuildError, match="clusterkit-no-such-package-zz9") as err:
        images.build_node_image("dask")
    assert "make lock" in str(err.value)
    assert not _tags(engine) - before
    assert not list((tmp_path / "cache" / "wheelhouse").glob("*/manifest.json"))


@pytest.mark.slow
def test_failed_build_leaves_no_tag_and_no_container(engine, images_copy):
    images.ensure_image("dask")  # wheelhouse and base present, so only the build fails
    script = images_copy / "install-venv.sh"
    script.write_text(script.read_text().replace("set -eu\n", "set -eu\necho failing on purpose; false\n", 1))
    tag = images.image_tag("dask")
    before_tags, before_containers = _tags(engine), _containers(engine)
    with pytest.raises(BuildError, match=r"failing on purpose|returned a non-zero code"):
        images.build_node_image("dask")
    assert tag not in _tags(engine)
    assert not _tags(engine) - before_tags  # no new tag (others may come and go concurrently)
    assert not _containers(engine) - before_containers


def test_subset_lock_out_of_date_is_reported(engine, images_copy):
    lock = images_copy / "dask.lock"
    lock.write_text(re.sub(r"(?m)^dask==\S+", "dask==0.0.1", lock.read_text()))
    with pytest.raises(BuildError, match="make lock"):
        images.build_node_image("dask")


def test_image_versions_of_a_missing_image(engine):
    with pytest.raises(ImageNotFound):
        images.image_versions("clusterkit/dask:000000000000")


def test_list_images_reports_sizes(engine):
    images.ensure_image("dask")  # at least one image to report on
    infos = images.list_images()
    assert infos, "no clusterkit image listed"
    for i in infos:
        assert i.ref.startswith("clusterkit/") and i.size_bytes > 0
    json.dumps([i.__dict__ for i in infos])  # plain data, printable by the CLI
