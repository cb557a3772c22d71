"""Node images: build, tag, list and prune the pinned Dask and Spark images.

Why it works this way:

* No registry is assumed. The base images are made from Debian packages with
  ``mmdebstrap`` and ``docker import`` (:mod:`.base`), or, for users who can
  pull, from ``$BASE_IMAGE`` plus ``images/Dockerfile.base-online``.
* Python packages come from a host wheelhouse (:mod:`.wheels`, cached,
  keyed by the lock hash) and are installed with ``--no-index
  --require-hashes`` in a build that has no network (:mod:`.build`), so a
  node runs exactly what ``images/requirements.lock`` (:mod:`.locks`) says.
* A node tag (:mod:`.tags`) is a hash of the image's inputs, not of the
  clusterkit source: that is the last layer, so a code-only change rebuilds
  one layer under the same tag (:func:`ensure_image`).
* :mod:`.store` is the engine side (list, versions, prune); :mod:`.transcript`
  keeps the raw build output in a log file and reports one line per step.

The public names are re-exported here lazily: ``from clusterkit import
images`` imports no builder module, and asking for the lock hash
(``clusterkit.images.locks``) does not import the builder or docker. Inside
the package the imports run one way: ``paths`` < ``locks`` < ``tags`` <
``store`` < ``base``, ``wheels``, ``commit`` < ``build`` < ``notebook``.
"""

from __future__ import annotations

import importlib
from typing import Any

from clusterkit.facts import BACKENDS

#: module -> the public names it holds, re-exported here on first use.
_EXPORTS = {
    "paths": ("cache_dir", "images_dir"),
    "locks": (
        "PYTHON_MINOR",
        "UNION_LOCK",
        "Pin",
        "compile_locks",
        "lock_hash",
        "lock_path",
        "normalize",
        "parse_lock",
        "read_lock",
        "subset_problems",
    ),
    "tags": ("REPO", "base_tag", "env_tag", "image_tag", "package_list", "source_hash"),
    "store": (
        "ImageInfo",
        "current_refs",
        "image_exists",
        "image_versions",
        "list_images",
        "prune",
        "prune_wheelhouses",
    ),
    "base": ("build_base",),
    "wheels": ("wheelhouse",),
    "build": ("build_node_image", "ensure_image", "label_instruction"),
    "project": ("ensure_lock", "ensure_project_image", "find_source", "with_project"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = ["BACKENDS", *sorted(_WHERE)]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
