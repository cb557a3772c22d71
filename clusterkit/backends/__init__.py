"""Backends by name: what runs (Dask, Spark). Runtimes decide where it runs."""

from __future__ import annotations

from clusterkit.backends.base import Backend
from clusterkit.errors import UnknownBackend
from clusterkit.spec import BACKENDS


def get_backend(name: str) -> Backend:
    """The ready backend object for ``name`` (``dask`` or ``spark``)."""
    if name == "dask":
        from clusterkit.backends.dask import backend
    elif name == "spark":
        from clusterkit.backends.spark import backend
    else:
        raise UnknownBackend(f"backend: {name!r} is not known; expected one of {', '.join(BACKENDS)}")
    return backend
