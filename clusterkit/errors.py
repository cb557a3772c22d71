"""One exception hierarchy for everything clusterkit reports to a user.

Low-level errors (sockets, docker, py4j, subprocess) are translated into
these at one boundary and chained with ``from``; the CLI turns them into one
line and an exit code: 2 for bad input the user can fix in the command or
spec, 1 for a runtime failure.

The errors a caller of the seed API (``unified_map``) catches as
``ConnectionError`` are ``ConnectionError`` s here too: ``ClusterUnavailable``
(no scheduler answers), ``PortInUse`` (a port is taken) and ``BadAddress``
(an address ``connect_to_scheduler`` cannot use).
"""

from __future__ import annotations


class ClusterKitError(Exception):
    """Base of every error clusterkit raises on purpose."""

    exit_code = 1


# --- bad input (exit 2) -----------------------------------------------------


class SpecError(ClusterKitError):
    """The cluster description is wrong; the message names field, value and fix."""

    exit_code = 2


class UnknownBackend(SpecError):
    """A backend name that is not ``dask`` or ``spark``."""


class InvalidValue(SpecError):
    """A spec field whose value is out of range or of the wrong type."""


class UnknownKey(SpecError):
    """A key in ``clusterkit.yaml`` that the spec does not have."""


class SpecFileError(SpecError):
    """The spec file is missing, unreadable or not valid YAML."""


class PortInUse(SpecError, ConnectionError):
    """A port the cluster needs is already bound by another process (also a ``ConnectionError``)."""


class BadAddress(InvalidValue, ConnectionError):
    """An address that cannot be connected to (bad port, no host); also a ``ConnectionError``."""


class ClusterNotFound(ClusterKitError):
    """No running cluster has the given name."""

    exit_code = 2


class ClusterExists(ClusterKitError):
    """A cluster of that name is already up; ``down`` it or pick another name."""

    exit_code = 2


# --- runtime failures (exit 1) -----------------------------------------------


class EngineUnavailable(ClusterKitError):
    """The Docker engine does not answer."""


class ClusterUnavailable(ClusterKitError, ConnectionError):
    """Could not connect to a scheduler before the deadline (also a ``ConnectionError``)."""


class StartupTimeout(ClusterKitError):
    """A cluster (or a part of it) did not become ready before the deadline."""


class NodeStartError(ClusterKitError):
    """A scheduler or worker process could not be started."""


class VersionMismatch(ClusterKitError):
    """Client and nodes do not run the same locked environment."""


class ImageError(ClusterKitError):
    """A node image is missing or could not be built."""


class ImageNotFound(ImageError):
    """The image a spec names is not present on the engine."""

    exit_code = 2


class BuildError(ImageError):
    """Building the base or node image failed."""


class SwarmUnavailable(EngineUnavailable):
    """The engine is not a swarm manager (or the swarm cannot do what the spec asks)."""


class ClientStartError(ClusterKitError):
    """A client container (``clusterkit run``, ``shell``, the notebook) could not be started."""


class ProjectLockError(SpecError):
    """The project's dependencies cannot be locked against the node lock (a version conflict)."""
