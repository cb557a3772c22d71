"""Image tags: content hashes of exactly the inputs that make an image.

A tag is computed from files, never looked up on the engine, so "is the image
current?" is a string comparison. ``clusterkit/<backend>:<hash12>`` covers the
backend lock, its Dockerfile, the venv scripts, the base tag and
``clusterkit.__version__``; the clusterkit source is deliberately left out
(it is the last, small layer, described by :func:`source_hash` in a label),
so a code-only change rebuilds one layer under the same tag.

:func:`resolve_recipe` works a node image's inputs out once into a
:class:`Recipe`; the builder passes that down instead of asking for the tag
again at every step. The notebook layer's tag is here too, so that listing
the current images needs no builder module.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from clusterkit.errors import BuildError
from clusterkit.facts import facts_of
from clusterkit.images import paths
from clusterkit.images.locks import check_backend, lock_path, notebook_lock_path
from clusterkit.version import __version__

#: The repository part of every clusterkit image ref.
REPO = "clusterkit"


def digest(parts: Iterable[bytes | str]) -> str:
    """sha256 hex over length-prefixed parts (so ``["ab", "c"]`` and ``["a", "bc"]`` differ)."""
    h = hashlib.sha256()
    for p in parts:
        b = p.encode() if isinstance(p, str) else p
        h.update(len(b).to_bytes(8, "big"))
        h.update(b)
    return h.hexdigest()


def read_input(path: Path) -> bytes:
    """The bytes of a file an image is made from, or a BuildError naming it."""
    try:
        return paths.read_bytes(path)
    except FileNotFoundError:
        raise BuildError(f"{path} is missing: it is needed to build the image") from None


def base_packages(jre: bool) -> list[Path]:
    d = paths.images_dir()
    return [d / "base.packages"] + ([d / "base-jre.packages"] if jre else [])


def package_list(jre: bool) -> list[str]:
    """Debian packages of a base image, read from images/base*.packages."""
    names: list[str] = []
    for p in base_packages(jre):
        for line in read_input(p).decode().splitlines():
            names += line.split("#", 1)[0].split()
    return names


def online_base(jre: bool, base_image: str | None) -> str | None:
    """The pulled image to build the base from (argument, $BASE_IMAGE_JRE, $BASE_IMAGE), or None."""
    if base_image:
        return base_image
    if jre:
        return os.environ.get("BASE_IMAGE_JRE") or os.environ.get("BASE_IMAGE") or None
    return os.environ.get("BASE_IMAGE") or None


def base_tag(jre: bool, *, base_image: str | None = None) -> str:
    """``clusterkit/base[-jre]:<hash12>`` over the package list and the recipe."""
    return _base_tag(jre, online_base(jre, base_image))


def _base_tag(jre: bool, online: str | None) -> str:
    d = paths.images_dir()
    parts: list[bytes | str] = ["jre" if jre else "nojre", " ".join(package_list(jre))]
    if online:
        parts += ["online", online, read_input(d / "Dockerfile.base-online")]
    else:
        parts += ["mmdebstrap", read_input(d / "build-base.sh")]
    name = "base-jre" if jre else "base"
    return f"{REPO}/{name}:{digest(parts)[:12]}"


def node_files(backend: str) -> list[Path]:
    """The recipe files of a node image, its Dockerfile first (all of them are in its tag)."""
    d = paths.images_dir()
    return [d / f"Dockerfile.{backend}", d / "install-venv.sh", d / "trim-venv.sh"]


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A node image's inputs and tag, worked out once by :func:`resolve_recipe`."""

    backend: str
    #: The image needs a Java runtime (``clusterkit.facts``), so its base is ``base-jre``.
    jre: bool
    #: The pulled image the base is made from, or None: made from Debian packages.
    online: str | None
    #: The backend's node lock.
    lock: Path
    #: The recipe files (:func:`node_files`), the Dockerfile first.
    files: tuple[Path, ...]
    #: The base image's tag.
    base: str
    #: ``clusterkit/<backend>:<hash12>``.
    tag: str

    @property
    def env(self) -> str:
        """The tag of the image's venv build stage."""
        return env_tag(self.tag)


def resolve_recipe(backend: str, *, base_image: str | None = None) -> Recipe:
    """The node image of ``backend``: its inputs, and its tag over them (see :func:`image_tag`)."""
    check_backend(backend)
    jre = facts_of(backend).jre
    lock, files = lock_path(backend), tuple(node_files(backend))
    parts: list[bytes | str] = [backend, read_input(lock), read_input(lock_path())]
    parts += [read_input(p) for p in files]
    online = online_base(jre, base_image)
    base = _base_tag(jre, online)
    parts += [base, __version__]
    return Recipe(backend, jre, online, lock, files, base, f"{REPO}/{backend}:{digest(parts)[:12]}")


def image_tag(backend: str, *, base_image: str | None = None) -> str:
    """``clusterkit/<backend>:<hash12>`` over the locks, Dockerfile, base and version (not the source).

    The union lock is in it too: the image records its hash (the drift check
    compares it), so an image from another union lock is another image.
    """
    return resolve_recipe(backend, base_image=base_image).tag


def env_tag(ref: str) -> str:
    """``clusterkit/<backend>-env:<hash12>``: the venv build stage of a node image."""
    repo, _, tag = ref.rpartition(":")
    return f"{repo}-env:{tag}"


def notebook_files() -> list[Path]:
    """The recipe files of a notebook layer (all of them are in its tag)."""
    d = paths.images_dir()
    return [d / "Dockerfile.notebook", d / "trim-venv.sh"]


def notebook_tag(backend: str, node: str | None = None) -> str:
    """``clusterkit/<backend>-notebook:<hash12>`` over the notebook lock, the recipe and the node tag.

    ``node`` is the node image's tag when the caller has it already.
    """
    check_backend(backend)
    parts: list[bytes | str] = [backend, "notebook", read_input(notebook_lock_path(backend))]
    parts += [read_input(p) for p in notebook_files()]
    parts.append(node or image_tag(backend))
    return f"{REPO}/{backend}-notebook:{digest(parts)[:12]}"


def source_hash(root: Path | None = None) -> str:
    """Hash of the clusterkit sources that go into the last image layer."""
    root = root or paths.source_dir()
    parts: list[bytes | str] = []
    for p in sorted(paths.source_files(root)):
        parts += [p.relative_to(root).as_posix(), p.read_bytes()]
    return digest(parts)[:16]
