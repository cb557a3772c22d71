"""Runtimes by name: where a cluster runs (local processes, compose, swarm, testcontainers)."""

from __future__ import annotations

from clusterkit.errors import InvalidValue
from clusterkit.runtimes.base import Runtime

#: Every runtime, in the order ``clusterkit.cluster.find`` looks for a named cluster.
RUNTIMES = ("compose", "local", "swarm", "testcontainers")


def get_runtime(name: str | Runtime) -> Runtime:
    """The runtime object for ``name`` (a ``Runtime`` is returned as it is)."""
    if isinstance(name, Runtime):
        return name
    if name == "compose":
        from clusterkit.runtimes.compose import ComposeRuntime

        return ComposeRuntime()
    if name == "local":
        from clusterkit.runtimes.local import LocalRuntime

        return LocalRuntime()
    if name == "swarm":
        from clusterkit.runtimes.swarm import SwarmRuntime

        return SwarmRuntime()
    if name == "testcontainers":
        from clusterkit.runtimes.testcontainers import TestcontainersRuntime

        return TestcontainersRuntime()
    raise InvalidValue(f"runtime: {name!r} is not known; expected one of {', '.join(RUNTIMES)}")
