"""The hash of the checkout's union lock, below every layer that needs it.

``clusterkit.status`` reports it in every process and ``clusterkit.images``
labels node images with it; defining it here (standard library only) spares
the status layer an import of the image builder. Files are read through
:func:`read_bytes`, which keeps what it read while the file's (mtime, ctime,
size, inode) stay the same: one build or ``up`` asks for the same locks and
recipes many times.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from pathlib import Path

#: The union lock: every node lock is a pinned subset of it, and so is the client venv.
UNION_LOCK = "requirements.lock"

_PACKAGE = Path(__file__).resolve().parent  # the clusterkit package
#: Where an installed wheel (or sdist) carries ``images/``: setuptools maps that folder into the
#: package as the data package ``clusterkit.recipes`` (pyproject.toml, setup.py).
RECIPES = "recipes"
#: A file changed this recently is read again every time: file times are coarse (a jiffy, or a
#: second or two on some filesystems), so a same-size rewrite could keep its (mtime, ctime) key.
SETTLED_NS = 2_000_000_000


def _default_images_dir() -> Path:
    # An installed wheel: the package's own copy; a checkout (editable or not): the top-level folder.
    packaged = _PACKAGE / RECIPES
    return packaged if packaged.is_dir() else _PACKAGE.parent / "images"


_IMAGES = _default_images_dir()


def images_dir() -> Path:
    """The folder with locks, Dockerfiles and scripts ($CLUSTERKIT_IMAGES_DIR for tests).

    In a checkout that is the top-level ``images/``; in an installed wheel the
    same files, carried as package data in ``clusterkit/recipes/``.
    """
    env = os.environ.get("CLUSTERKIT_IMAGES_DIR")
    return Path(env) if env else _IMAGES


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes, read again only when its mtime, ctime, size or inode changed.

    ``FileNotFoundError`` if it is missing (callers word their own error).
    """
    st = os.stat(path)
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < SETTLED_NS:
        return _read(path)
    return _read_settled(os.fspath(path), st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


def _read(path: str | Path, *_key: int) -> bytes:
    with open(path, "rb") as f:
        return f.read()


_read_settled = functools.lru_cache(maxsize=32)(_read)  # the file's times, size and inode key it


def lock_hash(path: str | Path | None = None) -> str:
    """sha256 hex of a lock (default: the union lock): the one number saying 'same environment'."""
    return hashlib.sha256(read_bytes(path or images_dir() / UNION_LOCK)).hexdigest()
