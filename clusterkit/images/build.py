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
from clusterkit.images.base import build_base, missing_online_base
from clusterkit.images.locks import (
    PYTHON_MINOR,
    UNION_LOCK,
    check_backend,
    lock_hash,
    lock_path,
    read_lock,
    subset_problems,
)
from clusterkit.images.store import client, get_image
from clusterkit.images.tags import env_tag, image_tag, node_files, online_base, source_hash
from clusterkit.images.wheels import wheelhouse
from clusterkit.progress import Progress, quiet
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
    for p in node_files(backend):
        if not p.is_file():
            raise BuildError(f"{p} is missing: it is needed to build the {backend} image")
    engine = client()
    online = online_base(backend == "spark", base_image)
    if online and get_image(engine, online) is None:
        raise missing_online_base(online)
    probs = subset_problems(read_lock(lock_path(backend)), read_lock(lock_path()))
    if probs:
        raise BuildError(f"{backend}.lock is out of date with {UNION_LOCK} ({probs[0]}): run `make lock`")
    ref = image_tag(backend, base_image=base_image)
    house, base = _inputs(backend, base_image, progress)
    manifest = json.loads((house / "manifest.json").read_text())
    versions = {n: p.version for n, p in sorted(read_lock(lock_path(backend)).items())}
    image_labels = {
        labels.PROJECT: labels.PROJECT_VALUE,
        labels.BACKEND: backend,
        "clusterkit.lock-hash": lock_hash(),
        "clusterkit.image-lock-hash": lock_hash(lock_path(backend)),
        "clusterkit.python": PYTHON_MINOR,
        "clusterkit.version": __version__,
        SOURCE_HASH: source_hash(),
        "clusterkit.base": base,
        "clusterkit.versions": json.dumps(versions, separators=(",", ":")),
    }
    # The venv stage gets its own tag so that `docker image prune` cannot
    # drop it: it is what a code-only rebuild starts from.
    env = env_tag(ref)
    with_env = force or get_image(engine, env) is None
    doing = f"building {ref}" + (f" and its venv stage {env}" if with_env else " on its cached venv stage")
    with (
        transcript.step(progress, "build", ref, doing) as log,
        tempfile.TemporaryDirectory(prefix=f"clusterkit-{backend}-") as tmp,
    ):
        replaced = [_image_id(engine, r) for r in (env, ref)]
        dockerfile, *scripts = node_files(backend)
        if with_env:
            setup = Path(tmp) / "setup"
            setup.mkdir()
            for p in scripts:
                shutil.copy(p, setup / p.name)
            (setup / "requirements.txt").write_text(node_requirements(backend, manifest))
            commit.install_env(engine, log, base, env, setup, house / "wheels")
        _copy_source(Path(tmp) / "clusterkit")
        # The lock hash also goes into the environment: the drift check reads it
        # from inside each node.
        more = [
            label_instruction(image_labels),
            f"ENV CLUSTERKIT_LOCK_HASH={image_labels['clusterkit.lock-hash']}",
        ]
        commit.apply_recipe(engine, log, env, ref, dockerfile, Path(tmp) / "clusterkit", more)
    for old in reversed(replaced):  # the node image first: it is the venv image's child
        _remove_if_dangling(engine, old)
    return ref


def _inputs(backend: str, base_image: str | None, progress: Progress) -> tuple[Path, str]:
    """The wheelhouse and the base image, made side by side when both are missing.

    One is mostly downloads and a pip wheel build, the other mostly dpkg:
    on a fresh machine they overlap, which saves the shorter of the two.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="clusterkit-base") as pool:
        base = pool.submit(build_base, backend == "spark", base_image=base_image, progress=progress)
        try:
            house = wheelhouse(progress=progress)
        finally:
            base_ref = base.result()  # waited for either way: no mmdebstrap is left running
    return house, base_ref


def _image_id(engine: Any, ref: str) -> str | None:
    img = get_image(engine, ref)
    return img.id if img is not None else None


def _remove_if_dangling(engine: Any, image_id: str | None) -> None:
    """Remove an image a rebuild took the tag from, unless it is still tagged or in use."""
    import docker

    img = get_image(engine, image_id) if image_id else None
    if img is None or img.tags:
        return
    try:
        engine.images.remove(image_id)
    except docker.errors.APIError:
        pass  # a container (a running cluster) still uses it; `clusterkit image prune --all` takes it later


def ensure_image(backend: str, *, progress: Progress = quiet) -> str:
    """The current node image ref, building what is missing or stale; a no-op if up to date.

    Stale means the clusterkit source differs from the image's last layer.
    A file lock keeps parallel callers (pytest-xdist, two CLIs) from building twice.
    """
    from filelock import FileLock

    ref = image_tag(backend)
    engine = client()

    def current() -> bool:
        img = get_image(engine, ref)
        return img is not None and (img.labels or {}).get(SOURCE_HASH) == source_hash()

    if current():
        return ref
    locks = paths.cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks / f"{backend}.lock")):
        if current():
            return ref
        return build_node_image(backend, progress=progress)
