"""Backends by name: what runs (Dask, Spark). Runtimes decide where it runs.

Each backend is a folder here named after its row of :mod:`clusterkit.facts`,
holding one ready object, ``backend``; it is imported when first asked for.
"""

from __future__ import annotations

import importlib

from clusterkit.backends.base import Backend
from clusterkit.facts import BACKENDS, facts_of

#: Every backend's module, by name.
MODULES: dict[str, str] = {name: f"{__name__}.{name}" for name in BACKENDS}


def get_backend(name: str) -> Backend:
    """The ready backend object for ``name`` (one of :data:`clusterkit.facts.BACKENDS`);
    an unknown name raises ``UnknownBackend``."""
    facts_of(name)  # the error that lists the known names
    backend: Backend = importlib.import_module(MODULES[name]).backend
    return backend
