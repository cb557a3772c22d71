"""Node images: build ``clusterkit/<backend>:<hash12>`` offline, and keep it current.

Two parts, both with no network. The venv: ``images/install-venv.sh`` runs
in a container of the base image with the host wheelhouse mounted read-only,
and the container is committed as ``clusterkit/<backend>-env:<hash12>`` (one
layer; no wheel is copied into a build context or an image layer, which on
fuse-overlayfs took over half of a cold build). The node image: the backend's
Dockerfile on top of it, from a context of the Dockerfile and the clusterkit
source only. The clusterkit source is the last (small) layer and is not in
the tag: its hash is the ``clusterkit.source-hash`` label, so after a
code-only change :func:`ensure_image` rebuilds just that layer under the
same tag, sending about a megabyte to the engine.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from clusterkit import labels
from clusterkit.errors import BuildError
from clusterkit.images import commit, paths, transcript
from clusterkit.images.base import ensure_base, missing_online_base
from clusterkit.images.locks import (
    PYTHON_MINOR,
    UNION_LOCK,
    Pin,
    check_backend,
    lock_hash,
    lock_path,
    read_lock,
    subset_problems,
)
from clusterkit.images.store import client, get_image, image_id, prune_replaced, remove_if_dangling
from clusterkit.images.tags import Recipe, node_files, resolve_recipe, source_hash
from clusterkit.images.wheels import wheelhouse, wheelhouse_ready
from clusterkit.progress import Progress, numbered, quiet
from clusterkit.version import __version__

#: The label that says which clusterkit source is in an image's last layer.
SOURCE_HASH = "clusterkit.source-hash"


def node_requirements(backend: str, manifest: dict) -> str:
    """The image's requirement file: the backend lock, sdist-built wheels by their own hash."""
    pins = read_lock(lock_path(backend))
    lines = [f"# generated from images/{backend}.lock by clusterkit.images; do not edit"]
    for name, pin in sorted(pins.items()):
        entry = manifest.get(name)
        if entry is None:
            raise BuildError(
                f"{name} is in {backend}.lock but not in the wheelhouse of {UNION_LOCK}: run `make lock`"
            )
        lines.append(pin.line(entry["hashes"] if entry["built_from_sdist"] else None))
    return "\n".join(lines) + "\n"


def label_instruction(image_labels: dict[str, str]) -> str:
    """A single LABEL instruction; values are JSON-quoted (the parser unescapes them)."""
    return "LABEL " + " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(image_labels.items()))


def _copy_source(dest: Path) -> None:
    """Copy the clusterkit sources for the image's last layer, with .pyc when the host runs 3.11.

    The node user cannot write __pycache__ under /opt, so without them every
    process start would compile clusterkit again. Hash-checked .pyc stay valid
    whatever the file times are in the image; compiling here keeps a code-only
    rebuild to one commit.
    """
    import compileall
    import py_compile

    src = paths.source_dir()
    for p in paths.source_files(src):
        target = dest / p.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, target)
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == PYTHON_MINOR:
        compileall.compile_dir(
            str(dest), quiet=2, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH
        )


def build_node_image(
    backend: str, *, base_image: str | None = None, progress: Progress = quiet, force: bool = False
) -> str:
    """Build ``clusterkit/<backend>:<hash>`` (base and wheelhouse too if needed); returns its ref.

    Cheap when only the clusterkit source changed: every layer but the last
    comes from the build cache. ``force`` builds without the cache.
    """
    check_backend(backend)
    for p in node_files(backend):  # before the tag reads them: this error names the backend
        if not p.is_file():
            raise BuildError(f"{p} is missing: it is needed to build the {backend} image")
    return build_recipe(resolve_recipe(backend, base_image=base_image), progress=progress, force=force)


def build_recipe(recipe: Recipe, *, progress: Progress = quiet, force: bool = False) -> str:
    """Build the node image of a resolved recipe (see :func:`build_node_image`); returns its ref."""
    engine = client()
    if recipe.online and get_image(engine, recipe.online) is None:
        raise missing_online_base(recipe.online)
    pins = read_lock(recipe.lock)
    probs = subset_problems(pins, read_lock(lock_path()))
    if probs:
        raise BuildError(
            f"{recipe.backend}.lock is out of date with {UNION_LOCK} ({probs[0]}): run `make lock`"
        )
    # What this build makes, numbered as it goes: [1/3] wheelhouse, [2/3] base, [3/3] node.
    steps = [not wheelhouse_ready(), get_image(engine, recipe.base) is None, True]
    progress = numbered(progress, sum(steps))
    house, base = _inputs(recipe, progress)
    image_labels = _labels(recipe, base, pins)
    # The venv stage gets its own tag so that `docker image prune` cannot
    # drop it: it is what a code-only rebuild starts from.
    ref, env = recipe.tag, recipe.env
    with_env = force or get_image(engine, env) is None
    doing = f"building {ref}" + (f" and its venv stage {env}" if with_env else " on its cached venv stage")
    with (
        transcript.step(progress, "build", ref, doing) as log,
        tempfile.TemporaryDirectory(prefix=f"clusterkit-{recipe.backend}-") as tmp,
    ):
        replaced = [image_id(engine, r) for r in (env, ref)]
        if with_env:
            _install_env(engine, log, recipe, base, house, Path(tmp) / "setup")
        _copy_source(Path(tmp) / "clusterkit")
        # The lock hash also goes into the environment: the drift check reads it
        # from inside each node.
        more = [
            label_instruction(image_labels),
            f"ENV CLUSTERKIT_LOCK_HASH={image_labels['clusterkit.lock-hash']}",
        ]
        commit.apply_recipe(engine, log, env, ref, recipe.files[0], Path(tmp) / "clusterkit", more)
    for old in reversed(replaced):  # the node image first: it is the venv image's child
        remove_if_dangling(engine, old)
    prune_replaced(engine)  # and those a running cluster held at an earlier rebuild
    return ref


def _install_env(
    engine: Any, log: transcript.Transcript, recipe: Recipe, base: str, house: Path, setup: Path
) -> None:
    """Make the venv stage: the recipe's scripts and requirement file, run on the base image."""
    setup.mkdir()
    for p in recipe.files[1:]:  # the scripts; the Dockerfile is applied by the commit
        shutil.copy(p, setup / p.name)
    manifest = json.loads((house / "manifest.json").read_text())
    (setup / "requirements.txt").write_text(node_requirements(recipe.backend, manifest))
    commit.install_env(engine, log, base, recipe.env, setup, house / "wheels")


def _labels(recipe: Recipe, base: str, pins: dict[str, Pin]) -> dict[str, str]:
    """The node image's labels: what it was made from, for the drift check and `image ls`."""
    versions = {n: p.version for n, p in sorted(pins.items())}
    return {
        labels.PROJECT: labels.PROJECT_VALUE,
        labels.BACKEND: recipe.backend,
        "clusterkit.lock-hash": lock_hash(),
        "clusterkit.image-lock-hash": lock_hash(recipe.lock),
        "clusterkit.python": PYTHON_MINOR,
        "clusterkit.version": __version__,
        SOURCE_HASH: source_hash(),
        "clusterkit.base": base,
        "clusterkit.versions": json.dumps(versions, separators=(",", ":")),
    }


def _inputs(recipe: Recipe, progress: Progress) -> tuple[Path, str]:
    """The wheelhouse and the base image, made side by side when both are missing.

    One is mostly downloads and a pip wheel build, the other mostly dpkg:
    on a fresh machine they overlap, which saves the shorter of the two.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="clusterkit-base") as pool:
        base = pool.submit(ensure_base, recipe.base, recipe.jre, recipe.online, progress)
        try:
            house = wheelhouse(progress=progress)
        finally:
            base_ref = base.result()  # waited for either way: no mmdebstrap is left running
    return house, base_ref


def ensure_image(backend: str, *, progress: Progress = quiet) -> str:
    """The current node image ref, building what is missing or stale; a no-op if up to date.

    Stale means the clusterkit source differs from the image's last layer.
    A file lock keeps parallel callers (pytest-xdist, two CLIs) from building twice.
    """
    from filelock import FileLock

    recipe = resolve_recipe(backend)
    engine = client()

    def current() -> bool:
        img = get_image(engine, recipe.tag)
        return img is not None and (img.labels or {}).get(SOURCE_HASH) == source_hash()

    if current():
        return recipe.tag
    locks = paths.cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks / f"{backend}.lock")):
        if current():
            return recipe.tag
        return build_recipe(recipe, progress=progress)
