"""Where the image inputs and the host caches live.

Every other module asks here, so tests can point the whole builder at a
private copy of ``images/`` (``$CLUSTERKIT_IMAGES_DIR``) and a private cache
(``$CLUSTERKIT_CACHE_DIR``) with two environment variables, and at another
clusterkit source tree by patching :func:`source_dir`. Input files are read
with :func:`read_bytes`, which reads a file again only once it has changed.
"""

from __future__ import annotations

import os
from pathlib import Path

# Defined below the status layer, which hashes the union lock too: one definition of where it is.
from clusterkit.lockhash import RECIPES, images_dir, read_bytes

__all__ = ["cache_dir", "images_dir", "read_bytes", "source_dir", "source_files"]

_PACKAGE = Path(__file__).resolve().parent.parent  # the clusterkit package


def cache_dir() -> Path:
    """Host cache for wheelhouses and build logs, kept across builds so rebuilds don't re-download."""
    env = os.environ.get("CLUSTERKIT_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "clusterkit"


def source_dir() -> Path:
    """The clusterkit package whose sources become the last layer of a node image."""
    return _PACKAGE


def source_files(root: Path) -> list[Path]:
    """The files of a source tree that go into the image (no bytecode caches).

    An installed wheel's ``recipes/`` (the image inputs, ``images/`` of a
    checkout) stays out: a node needs none of it, and the source layer and its
    hash are then the same from a wheel as from a checkout.
    """
    return [
        p
        for p in root.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and p.suffix not in (".pyc", ".pyo")
        and p.relative_to(root).parts[0] != RECIPES
    ]
