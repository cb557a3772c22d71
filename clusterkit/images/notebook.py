"""The optional notebook layer: ``clusterkit/<backend>-notebook:<hash12>``, the node image plus JupyterLab.

Built only when a notebook is asked for (``clusterkit up --notebook``), offline
like the node images: the packages of ``images/<backend>-notebook.lock`` that
the node lock lacks come from their own host wheelhouse, and
``images/Dockerfile.notebook`` installs them into the node's venv stage and
puts only the added files onto the node image, as one layer. Every package
the node has keeps its version (the notebook lock is compiled with the union
lock as constraints, and :func:`notebook_requirements` checks it again).

The tag covers the notebook lock, the recipe and the node image's tag; the
node image ID it was built on is a label, so a code-only rebuild of the node
image (same tag, new last layer) makes the notebook image stale too, and
:func:`ensure_notebook_image` rebuilds its one layer.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from clusterkit import labels
from clusterkit.errors import BuildError
from clusterkit.images import paths, transcript
from clusterkit.images.build import build_node_image, ensure_image, label_instruction
from clusterkit.images.locks import lock_hash, lock_path, notebook_lock_path, read_lock
from clusterkit.images.store import client, get_image, image_id, prune_replaced, remove_if_dangling
from clusterkit.images.tags import env_tag, notebook_files, notebook_tag
from clusterkit.images.wheels import wheelhouse
from clusterkit.progress import Progress, quiet

__all__ = [
    "NODE_IMAGE",
    "build_notebook_image",
    "ensure_notebook_image",
    "notebook_requirements",
    "notebook_tag",  # defined with the other tags; here for the callers that know it from here
]

#: The label naming the node image (ID) a notebook image was built on.
NODE_IMAGE = "clusterkit.node-image"


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def notebook_requirements(backend: str, manifest: dict) -> tuple[str, dict[str, str]]:
    """The requirement file of the packages the node lock lacks, and every version of the image.

    Raises ``BuildError`` if a package both locks have differs (run ``make lock``).
    """
    node = read_lock(lock_path(backend))
    notebook = read_lock(notebook_lock_path(backend))
    drift = [
        f"{n} {p.version} (node {node[n].version})"
        for n, p in notebook.items()
        if n in node and node[n].version != p.version
    ]
    if drift:
        raise BuildError(
            f"{backend}-notebook.lock disagrees with {backend}.lock ({', '.join(drift)}): run `make lock`"
        )
    lines = [f"# generated from images/{backend}-notebook.lock by clusterkit.images; do not edit"]
    for name, pin in sorted(notebook.items()):
        if name in node:
            continue  # in the node image already, at this version
        entry = manifest.get(name)
        if entry is None:
            raise BuildError(
                f"{name} is in {backend}-notebook.lock but not in its wheelhouse: run `make lock`"
            )
        lines.append(pin.line(entry["hashes"] if entry["built_from_sdist"] else None))
    versions = {n: p.version for n, p in sorted({**notebook, **node}.items())}
    return "\n".join(lines) + "\n", versions


def build_notebook_image(backend: str, *, progress: Progress = quiet, force: bool = False) -> str:
    """Build ``clusterkit/<backend>-notebook:<hash>`` on the current node image; returns its ref."""
    for p in [*notebook_files(), notebook_lock_path(backend)]:
        if not p.is_file():
            raise BuildError(f"{p} is missing: it is needed to build the {backend} notebook image")
    node = ensure_image(backend, progress=progress)
    return _build(backend, node, progress=progress, force=force)


def _build(backend: str, node: str, *, on: str | None = None, progress: Progress, force: bool) -> str:
    """Build the notebook layer on ``on`` (default: node image ``node``, the current one, by its
    tag; else an image made on it, such as the project's layer); ``node``'s venv stage gives the
    packages JupyterLab adds."""
    engine = client()
    if get_image(engine, env_tag(node)) is None:  # the venv stage was pruned: make it again
        node = build_node_image(backend, progress=progress)
    on = on or node
    node_id = image_id(engine, on)
    ref = notebook_tag(backend, on)
    house = wheelhouse(notebook_lock_path(backend), progress=progress)
    manifest = json.loads((house / "manifest.json").read_text())
    requirements, versions = notebook_requirements(backend, manifest)
    image_labels = {
        labels.BACKEND: f"{backend}-notebook",
        NODE_IMAGE: str(node_id),
        "clusterkit.notebook-lock-hash": lock_hash(notebook_lock_path(backend)),
        "clusterkit.versions": json.dumps(versions, separators=(",", ":")),
    }
    doing = f"building {ref} (JupyterLab on {on})"
    with (
        transcript.step(progress, "build", ref, doing) as log,
        tempfile.TemporaryDirectory(prefix=f"clusterkit-{backend}-notebook-") as tmp,
    ):
        ctx = Path(tmp)
        shutil.copy(paths.images_dir() / "Dockerfile.notebook", ctx / "Dockerfile")
        shutil.copy(paths.images_dir() / "trim-venv.sh", ctx / "trim-venv.sh")
        (ctx / "requirements.txt").write_text(requirements)
        (ctx / "wheels").mkdir()
        for line in requirements.splitlines()[1:]:
            name = line.split("==", 1)[0]
            f = manifest[name]["file"]
            _link_or_copy(house / "wheels" / f, ctx / "wheels" / f)
        with open(ctx / "Dockerfile", "a") as f:
            f.write("\n" + label_instruction(image_labels) + "\n")
        replaced = image_id(engine, ref)
        transcript.stream_build(
            engine,
            log,
            ref,
            tag=ref,
            path=str(ctx),
            buildargs={"ENV": env_tag(node), "NODE": on},
            network_mode="none",
            nocache=force,
        )
    remove_if_dangling(engine, replaced)
    prune_replaced(engine)  # and the build stage's image, which the legacy builder leaves untagged
    return ref


def ensure_notebook_image(backend: str, *, on: str | None = None, progress: Progress = quiet) -> str:
    """The current notebook image of ``backend``, building it (and the node image) if missing or stale.

    ``on``: the image to put JupyterLab on when it is not the node image itself (the node
    image plus the project's dependencies, :mod:`clusterkit.images.project`).
    """
    from filelock import FileLock

    node = ensure_image(backend, progress=progress)
    base = on or node
    ref = notebook_tag(backend, base)
    engine = client()

    def current() -> bool:
        img = get_image(engine, ref)
        return img is not None and (img.labels or {}).get(NODE_IMAGE) == image_id(engine, base)

    if current():
        return ref
    locks = paths.cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks / f"{backend}-notebook.lock")):
        if current():
            return ref
        return _build(backend, node, on=on, progress=progress, force=False)
