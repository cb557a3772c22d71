"""Runtimes by name: where a cluster runs (local processes, containers)."""

from __future__ import annotations

from clusterkit.errors import InvalidValue
from clusterkit.runtimes.base import Runtime

RUNTIMES = ("compose", "local")


def get_runtime(name: str) -> Runtime:
    """The runtime object for ``name``."""
    if name == "compose":
        from clusterkit.runtimes.compose import ComposeRuntime

        return ComposeRuntime()
    if name == "local":
        from clusterkit.runtimes.local import LocalRuntime

        return LocalRuntime()
    raise InvalidValue(f"runtime: {name!r} is not known; expected one of {', '.join(RUNTIMES)}")
