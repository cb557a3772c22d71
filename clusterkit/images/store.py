"""The engine side: which clusterkit images exist, what they hold, and removing old ones.

Nothing here builds; these calls are what ``clusterkit up`` and ``clusterkit
image ls/prune`` need, and none of them pulls: no registry is assumed.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from clusterkit import labels
from clusterkit.errors import ImageError, ImageNotFound
from clusterkit.facts import BACKENDS
from clusterkit.images.locks import lock_hash, notebook_lock_path
from clusterkit.images.paths import cache_dir
from clusterkit.images.tags import REPO, base_tag, env_tag, image_tag, notebook_tag


def client() -> Any:
    """A docker client with a timeout long enough for one build step."""
    from clusterkit.engine import docker_client

    return docker_client(timeout=600)


def get_image(engine: Any, ref: str) -> Any:
    """The engine's image of that ref, or None (no pull is tried)."""
    import docker

    try:
        return engine.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def image_exists(ref: str) -> bool:
    """True if the engine has an image of that ref (no pull is tried)."""
    return get_image(client(), ref) is not None


def image_id(engine: Any, ref: str) -> str | None:
    """The ID of the engine's image of that ref, or None: what a rebuild may leave untagged."""
    img = get_image(engine, ref)
    return img.id if img is not None else None


def remove_if_dangling(engine: Any, image_id: str | None) -> None:
    """Remove an image a rebuild took the tag from, unless it is still tagged or in use."""
    import docker

    img = get_image(engine, image_id) if image_id else None
    if img is None or img.tags:
        return
    try:
        engine.images.remove(image_id)
    except docker.errors.APIError:
        pass  # a container (a running cluster) still uses it; `clusterkit image prune --all` takes it later


def prune_replaced(engine: Any) -> None:
    """Remove the clusterkit images a rebuild took the tag from while a container still used them.

    :func:`remove_if_dangling` leaves such an image (a running cluster holds it);
    once nothing uses it, it is only a dangling image. The engine's prune skips
    images in use, so a cluster still running on an old image keeps it.
    """
    import docker

    try:
        engine.images.prune(filters={"dangling": True, "label": f"{labels.PROJECT}={labels.PROJECT_VALUE}"})
    except docker.errors.APIError:
        pass  # another prune is running (409): it does the same


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    ref: str
    backend: str  # dask, spark, base, base-jre, or dask-env/spark-env (venv build stages)
    tag: str
    lock_hash: str
    size_bytes: int
    created: str  # ISO 8601, as the engine reports it


def list_images() -> list[ImageInfo]:
    """Every tagged clusterkit image (nodes, their venv stages and bases) on the engine."""
    out = []
    for img in client().images.list(filters={"label": f"{labels.PROJECT}={labels.PROJECT_VALUE}"}):
        found = img.labels or {}
        for ref in img.tags:
            repo, _, tag = ref.rpartition(":")
            if not repo.startswith(f"{REPO}/"):
                continue
            out.append(
                ImageInfo(
                    ref,
                    found.get(labels.BACKEND) or repo.split("/", 1)[1],
                    tag,
                    found.get("clusterkit.lock-hash", ""),
                    int(img.attrs.get("Size", 0)),
                    img.attrs.get("Created", ""),
                )
            )
    return sorted(out, key=lambda i: (i.backend, i.created))


def current_refs() -> set[str]:
    """Refs that the current locks and recipes would produce."""
    refs = {base_tag(False), base_tag(True)}
    for b in BACKENDS:
        node = image_tag(b)
        refs |= {node, env_tag(node)}
        if notebook_lock_path(b).is_file():  # the optional notebook layer, if this checkout has one
            refs.add(notebook_tag(b, node))
    return refs


def prune(keep_current: bool = True) -> list[str]:
    """Remove clusterkit images (and cached wheelhouses), all or all but the current ones.

    Returns the refs and wheelhouse folders removed. Images in use by a
    container are left alone.
    """
    import docker

    engine = client()
    keep = current_refs() if keep_current else set()
    removed = []
    # Notebook layers first, then nodes, their venv stages, bases: a parent cannot go before its children.
    infos = sorted(
        list_images(),
        key=lambda i: (
            not i.backend.endswith("-notebook"),
            i.backend.startswith("base"),
            i.backend.endswith("-env"),
        ),
    )
    for info in infos:
        if info.ref in keep:
            continue
        try:
            engine.images.remove(info.ref)
            removed.append(info.ref)
        except docker.errors.APIError:
            pass  # in use by a container, or a parent of a kept image
    if not keep_current:
        engine.images.prune(filters={"dangling": True, "label": f"{labels.PROJECT}={labels.PROJECT_VALUE}"})
    return removed + [str(p) for p in prune_wheelhouses(keep_current)]


def prune_wheelhouses(keep_current: bool = True) -> list[Path]:
    """Delete cached wheelhouses of other locks (each is ~0.5 GB); returns the folders removed."""
    root = cache_dir() / "wheelhouse"
    keep = lock_hash()[:16] if keep_current else None
    removed = []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if d.is_dir() and not (keep and d.name.startswith(keep)):  # keep an in-progress download too
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def image_versions(ref: str) -> dict[str, str]:
    """{package: version} of a node image, from its labels (no container run)."""
    img = get_image(client(), ref)
    if img is None:
        raise ImageNotFound(f"image {ref} is not on the engine: build it with `clusterkit image build`")
    raw = (img.labels or {}).get("clusterkit.versions")
    if not raw:
        raise ImageError(f"image {ref} has no clusterkit.versions label: it was not built by clusterkit")
    return json.loads(raw)
