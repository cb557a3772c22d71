"""Pure parts of clusterkit.images: lock parsing, subsetting and tag hashing (no Docker)."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from clusterkit import images
from clusterkit.errors import BuildError, UnknownBackend
from clusterkit.images import build, commit, paths, tags, wheels

REPO_IMAGES = paths.images_dir()

LOCK = """\
bokeh==3.9.2 \\
    --hash=sha256:aaaa \\
    --hash=sha256:bbbb
    # via -r requirements.in
Typing_Extensions==4.16.0 \\
    --hash=sha256:cccc
    # via
    #   -r requirements.in
    #   bokeh
pyspark==4.3.0 ; python_version >= "3.10" \\
    --hash=sha256:dddd
"""


@pytest.fixture
def images_copy(tmp_path, monkeypatch):
    """A private copy of images/ that a test may edit; tags are computed from it."""
    d = tmp_path / "images"
    shutil.copytree(REPO_IMAGES, d)
    monkeypatch.setenv("CLUSTERKIT_IMAGES_DIR", str(d))
    monkeypatch.delenv("BASE_IMAGE", raising=False)
    monkeypatch.delenv("BASE_IMAGE_JRE", raising=False)
    return d


def test_parse_lock_joins_continuations_and_normalizes_names():
    pins = images.parse_lock(LOCK)
    assert list(pins) == ["bokeh", "typing-extensions", "pyspark"]
    assert pins["bokeh"].version == "3.9.2"
    assert pins["bokeh"].hashes == ("sha256:aaaa", "sha256:bbbb")
    assert pins["typing-extensions"].hashes == ("sha256:cccc",)
    assert pins["pyspark"].marker == 'python_version >= "3.10"'


def test_pin_line_round_trips_and_can_replace_hashes():
    pin = images.parse_lock(LOCK)["bokeh"]
    assert images.parse_lock(pin.line())["bokeh"] == pin
    assert pin.line(["sha256:ffff"]) == "bokeh==3.9.2 --hash=sha256:ffff"


def test_parse_lock_rejects_unpinned_line():
    with pytest.raises(BuildError, match="cannot parse lock line"):
        images.parse_lock("bokeh>=3\n")


def test_subset_problems():
    union = images.parse_lock(LOCK)
    ok = images.parse_lock("bokeh==3.9.2 --hash=sha256:aaaa\n")
    assert images.subset_problems(ok, union) == []
    bad = images.parse_lock(
        "bokeh==3.9.1 --hash=sha256:aaaa\nnumpy==2.0 --hash=sha256:1\npyspark==4.3.0 --hash=sha256:eeee\n"
    )
    probs = images.subset_problems(bad, union)
    assert any("bokeh==3.9.1" in p for p in probs)
    assert any("numpy is not in" in p for p in probs)
    assert any("pyspark" in p and "hashes" in p for p in probs)


def test_repo_node_locks_are_pinned_subsets_of_the_union_lock():
    union = images.read_lock(REPO_IMAGES / "requirements.lock")
    for backend in images.BACKENDS:
        sub = images.read_lock(REPO_IMAGES / f"{backend}.lock")
        assert images.subset_problems(sub, union) == [], backend
        # what `python -m clusterkit.node` and `.probe` import is on every node; the command line's is not
        for dep in ("pyyaml", "tenacity", "filelock", "psutil"):
            assert dep in sub, (backend, dep)
        for dep in ("docker", "testcontainers", "rich", "paramiko", "cryptography", "ipython"):
            assert dep not in sub, (backend, dep)
    client = images.read_lock(REPO_IMAGES / "client.lock")
    assert images.subset_problems(client, union) == []
    for dep in ("docker", "testcontainers", "click", "rich", "paramiko", "cryptography", "ipython"):
        assert dep in client, dep
    dask = images.read_lock(REPO_IMAGES / "dask.lock")
    spark = images.read_lock(REPO_IMAGES / "spark.lock")
    assert "pyspark" not in dask and "distributed" in dask
    assert "pyspark" in spark and "distributed" not in spark


def test_lock_hash_is_sha256_of_the_file(tmp_path):
    p = tmp_path / "x.lock"
    p.write_text("a==1 --hash=sha256:00\n")
    import hashlib

    assert images.lock_hash(p) == hashlib.sha256(p.read_bytes()).hexdigest()
    with pytest.raises(BuildError, match="missing"):
        images.lock_hash(tmp_path / "nope.lock")


def test_image_tag_shape_and_stability(images_copy):
    t1 = images.image_tag("dask")
    assert t1.startswith("clusterkit/dask:") and len(t1.split(":")[1]) == 12
    assert images.image_tag("dask") == t1
    assert images.image_tag("spark") != t1.replace("dask", "spark")
    with pytest.raises(UnknownBackend):
        images.image_tag("ray")


@pytest.mark.parametrize(
    "edit", ["dask.lock", "Dockerfile.dask", "trim-venv.sh", "base.packages", "build-base.sh"]
)
def test_image_tag_changes_with_its_inputs(images_copy, edit):
    before = images.image_tag("dask")
    with open(images_copy / edit, "a") as f:
        # a package list's comments don't count, its packages do
        f.write("\njq\n" if edit.endswith(".packages") else "\n# changed\n")
    assert images.image_tag("dask") != before


def test_image_tag_ignores_other_backend_and_source(images_copy, tmp_path):
    before = images.image_tag("dask")
    with open(images_copy / "Dockerfile.spark", "a") as f:
        f.write("\n# changed\n")
    with open(images_copy / "base-jre.packages", "a") as f:
        f.write("\nfoo\n")
    assert images.image_tag("dask") == before


def test_image_tag_changes_with_version(images_copy, monkeypatch):
    before = images.image_tag("spark")
    monkeypatch.setattr(tags, "__version__", "9.9.9")
    assert images.image_tag("spark") != before


def test_base_tag_online_depends_on_base_image(images_copy, monkeypatch):
    offline = images.base_tag(False)
    monkeypatch.setenv("BASE_IMAGE", "debian:bookworm-slim")
    online = images.base_tag(False)
    assert online != offline and online.startswith("clusterkit/base:")
    # BASE_IMAGE_JRE falls back to BASE_IMAGE
    assert tags.online_base(True, None) == "debian:bookworm-slim"
    monkeypatch.setenv("BASE_IMAGE_JRE", "other:1")
    assert images.base_tag(True, base_image="x:1") != images.base_tag(True)


def test_missing_dockerfile_is_a_build_error_naming_it(images_copy):
    (images_copy / "Dockerfile.dask").unlink()
    with pytest.raises(BuildError, match=r"Dockerfile\.dask"):
        images.image_tag("dask")


def test_package_list_ignores_comments(images_copy):
    assert "python3" in images.package_list(False)
    assert "openjdk-17-jre-headless" not in images.package_list(False)
    assert "openjdk-17-jre-headless" in images.package_list(True)
    assert not any(p.startswith("#") for p in images.package_list(True))


def test_source_hash_ignores_pycache(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    h = images.source_hash(tmp_path)
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"junk")
    assert images.source_hash(tmp_path) == h
    (tmp_path / "a.py").write_text("x = 2\n")
    assert images.source_hash(tmp_path) != h


def test_node_requirements_use_built_wheel_hash(images_copy):
    pins = images.read_lock(images_copy / "spark.lock")
    manifest = {
        n: {"file": f"{n}.whl", "hashes": list(p.hashes), "built_from_sdist": False} for n, p in pins.items()
    }
    manifest["pyspark"] = {"file": "pyspark.whl", "hashes": ["sha256:beef"], "built_from_sdist": True}
    text = build.node_requirements("spark", manifest)
    req = images.parse_lock(text)
    assert req["pyspark"].hashes == ("sha256:beef",)
    assert req["numpy"].hashes == pins["numpy"].hashes
    assert set(req) == set(pins)
    del manifest["numpy"]
    with pytest.raises(BuildError, match="numpy"):
        build.node_requirements("spark", manifest)


def test_label_instruction_is_one_line_with_json_quoting():
    line = build.label_instruction({"b": "2", "a": json.dumps({"x": "1"})})
    assert line.startswith("LABEL a=") and "\n" not in line
    assert line.endswith('b="2"')


def test_missing_distribution_parsing():
    out = "ERROR: Could not find a version\nERROR: No matching distribution found for Py_Spark==4.3.0\n"
    assert wheels.missing_distribution(out) == "py-spark"
    assert wheels.missing_distribution("ERROR: network down") is None


def test_wheel_name():
    assert wheels.wheel_name("typing_extensions-4.16.0-py3-none-any.whl") == "typing-extensions"


def test_env_tag_names_the_venv_stage():
    assert images.env_tag("clusterkit/dask:0123456789ab") == "clusterkit/dask-env:0123456789ab"


def test_every_public_name_resolves_and_backends_are_the_facts():
    from clusterkit import facts

    assert images.BACKENDS is facts.BACKENDS
    for name in images.__all__:
        assert getattr(images, name) is not None, name
    assert callable(images.wheelhouse)  # the function, not the `wheels` module
    with pytest.raises(AttributeError):
        images.no_such_name  # noqa: B018


def test_the_lock_hash_does_not_import_the_builder_or_docker():
    import subprocess
    import sys

    code = (
        "import sys, clusterkit.status as s; h = s._lock_hash(); "
        "print(h, sorted(m for m in sys.modules if m == 'docker' or m.startswith('clusterkit.images')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split(" ", 1) == [images.lock_hash(), "[]\n"]  # the same hash as the builder's


def test_a_changed_file_is_read_again(tmp_path):
    from clusterkit import lockhash

    p = tmp_path / "x.lock"
    p.write_text("a==1 --hash=sha256:00\n")
    first = images.lock_hash(p)
    p.write_text("a==2 --hash=sha256:00\n")  # same size, maybe the same file times: just written
    assert images.read_lock(p)["a"].version == "2"
    assert images.lock_hash(p) == lockhash.lock_hash(p) != first


def test_a_settled_file_is_read_once(tmp_path, monkeypatch):
    from clusterkit import lockhash

    p = tmp_path / "x.lock"
    p.write_text("a==1 --hash=sha256:00\n")
    assert paths.read_bytes(p) is not paths.read_bytes(p)  # just written: read every time
    monkeypatch.setattr(lockhash, "SETTLED_NS", 0)
    assert paths.read_bytes(p) is paths.read_bytes(p)
    p.write_text("a==22 --hash=sha256:00\n")
    assert images.read_lock(p)["a"].version == "22"


def test_a_recipe_is_what_the_tag_functions_compute(images_copy):
    from clusterkit.facts import FACTS

    for backend, row in FACTS.items():
        recipe = tags.resolve_recipe(backend)
        assert recipe.tag == images.image_tag(backend) and recipe.env == images.env_tag(recipe.tag)
        assert recipe.jre is row.jre and recipe.base == images.base_tag(row.jre)
        assert recipe.lock == images.lock_path(backend) and recipe.files == tuple(tags.node_files(backend))
        assert tags.notebook_tag(backend, recipe.tag) == tags.notebook_tag(backend)
    assert tags.resolve_recipe("dask", base_image="x:1").online == "x:1"
    with pytest.raises(UnknownBackend):
        tags.resolve_recipe("ray")


def test_the_notebook_tag_follows_the_node_tag_and_its_lock(images_copy):
    before = tags.notebook_tag("dask")
    assert before.startswith("clusterkit/dask-notebook:")
    assert tags.notebook_tag("dask", "clusterkit/dask:000000000000") != before
    with open(images_copy / "dask-notebook.lock", "a") as f:
        f.write("# changed\n")
    assert tags.notebook_tag("dask") != before


def test_a_step_reports_start_and_end_and_keeps_the_transcript(tmp_path, monkeypatch):
    from clusterkit.images import transcript
    from clusterkit.progress import Event

    monkeypatch.setenv("CLUSTERKIT_CACHE_DIR", str(tmp_path))
    seen: list[Event] = []
    with transcript.step(seen.append, "base", "clusterkit/base:abc", "building clusterkit/base:abc") as log:
        log.write("\n".join(f"line {i}" for i in range(30)))
    assert [e.step for e in seen] == ["base", "base"]
    assert seen[0].message.startswith("building clusterkit/base:abc (log: ")
    assert re.fullmatch(r"built clusterkit/base:abc in \d+\.\ds", seen[1].message)
    assert (tmp_path / "logs" / "clusterkit_base_abc.log").read_text().count("\n") == 30


def test_a_failed_step_names_its_log_and_quotes_the_last_lines(tmp_path, monkeypatch):
    from clusterkit.images import transcript

    monkeypatch.setenv("CLUSTERKIT_CACHE_DIR", str(tmp_path))
    seen = []
    with pytest.raises(BuildError) as err:
        with transcript.step(seen.append, "build", "clusterkit/dask:abc", "building") as log:
            r = transcript.run(["sh", "-c", "for i in $(seq 1 30); do echo out $i; done; exit 3"], log)
            assert r.returncode == 3 and "out 30" in r.stdout
            raise log.error("building clusterkit/dask:abc failed")
    text = str(err.value)
    assert "out 21" in text and "out 30" in text and "out 20\n" not in text
    assert str(tmp_path / "logs" / "clusterkit_dask_abc.log") in text
    assert len(seen) == 1  # the start; no "built" line


def test_cli_image_tag(monkeypatch):
    from click.testing import CliRunner

    from clusterkit.cli import main

    result = CliRunner().invoke(main, ["image", "tag", "dask"])
    assert result.exit_code == 0 and result.output.strip() == images.image_tag("dask")
    result = CliRunner().invoke(main, ["image", "tag", "ray"])
    assert result.exit_code == 2 and "unknown backend 'ray'" in result.output


# --- the node recipe: Dockerfile.<backend> read as commit changes ------------------------------


@pytest.mark.parametrize("backend", ["dask", "spark"])
def test_the_node_dockerfiles_are_recipes(backend):
    settings, dest = commit.recipe(REPO_IMAGES / f"Dockerfile.{backend}")
    assert dest == "/opt/clusterkit/clusterkit"
    words = [s.split()[0] for s in settings]
    assert {"ENV", "WORKDIR", "USER", "ENTRYPOINT", "CMD"} <= set(words)
    assert "USER clusterkit" in settings  # nodes never run as root
    env = next(s for s in settings if s.startswith("ENV PATH="))
    assert "$PATH" not in env and "/usr/bin" in env  # a commit adds no default PATH
    assert not any("\\" in s for s in settings)  # continuation lines are joined


@pytest.mark.parametrize(
    "line, problem",
    [("RUN pip install x", "RUN is not something"), ("ADD x /y", "ADD is not something")],
)
def test_a_recipe_with_a_build_step_is_refused(tmp_path, line, problem):
    p = tmp_path / "Dockerfile.x"
    p.write_text(f"ARG ENV\nFROM ${{ENV}}\n{line}\nCOPY clusterkit /opt/c\n")
    with pytest.raises(BuildError, match=problem) as err:
        commit.recipe(p)
    assert "install-venv.sh" in str(err.value)  # where run steps go instead


def test_a_recipe_without_the_source_is_refused(tmp_path):
    p = tmp_path / "Dockerfile.x"
    p.write_text("ARG ENV\nFROM ${ENV}\nUSER clusterkit\n")
    with pytest.raises(BuildError, match="COPY clusterkit"):
        commit.recipe(p)


def test_the_venv_scripts_are_in_the_tag(images_copy):
    before = images.image_tag("dask")
    with open(images_copy / "install-venv.sh", "a") as f:
        f.write("# changed\n")
    assert images.image_tag("dask") != before


def test_an_image_export_waits_longer_than_the_engines_usual_timeout_then_restores_it():
    """The local engine streams a large image out as one response; under load its first
    bytes can take longer than 30 s, which once failed a push to a second swarm node."""
    from types import SimpleNamespace

    from clusterkit.images.push import EXPORT_TIMEOUT, _patient

    engine = SimpleNamespace(api=SimpleNamespace(timeout=30))
    with _patient(engine):
        assert engine.api.timeout == EXPORT_TIMEOUT
    assert engine.api.timeout == 30
    with pytest.raises(RuntimeError), _patient(engine):
        raise RuntimeError("the load failed")
    assert engine.api.timeout == 30
