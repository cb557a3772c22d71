"""What a runtime (where a cluster runs) must do; backends say what runs.

A runtime turns a ``ClusterSpec`` into running nodes and back. The interface
is small on purpose so that compose, swarm and testcontainers slot in beside
the local-process runtime.
"""

from __future__ import annotations

from collections.abc import Callable

from clusterkit.backends import get_backend
from clusterkit.errors import StartupTimeout
from clusterkit.spec import ClusterSpec
from clusterkit.status import ClusterStatus
from clusterkit.waiting import NotReady, wait_for

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


class Runtime:
    """Start, inspect, scale and stop clusters of one kind (processes, containers)."""

    name = ""

    def up(
        self, spec: ClusterSpec, *, timeout: float = 120, keep: bool = False, progress: Progress = _quiet
    ) -> ClusterStatus:
        """Start ``spec`` and return once all its workers are registered.

        On failure everything started is removed again, unless ``keep``.
        """
        raise NotImplementedError

    def down(self, name: str, *, volumes: bool = False) -> None:
        raise NotImplementedError

    def status(self, name: str) -> ClusterStatus:
        raise NotImplementedError

    def scale(self, name: str, workers: int, *, timeout: float = 120) -> ClusterStatus:
        raise NotImplementedError

    def logs(self, name: str, service: str | None = None, *, follow: bool = False, tail: int = 100) -> None:
        raise NotImplementedError

    def clusters(self) -> list[str]:
        """Names of the clusters this runtime has running."""
        raise NotImplementedError

    def spec_of(self, name: str) -> ClusterSpec:
        raise NotImplementedError


def wait_for_workers(
    spec: ClusterSpec,
    host: str,
    *,
    expected: int,
    timeout: float,
    check: Callable[[], None] | None = None,
    diagnose: Callable[[], str] | None = None,
) -> int:
    """Wait until the scheduler at ``host`` sees exactly ``expected`` workers.

    ``check`` runs on every poll and may raise at once (a node has exited);
    ``diagnose`` adds what went wrong to a time-out message.
    """
    backend = get_backend(spec.backend)

    def probe() -> int:
        if check is not None:
            check()
        seen = backend.count_workers(host, spec.scheduler_port, spec.dashboard_port)
        if seen != expected:
            raise NotReady(f"{seen} of {expected} workers registered")
        return seen

    return wait_for(
        probe,
        what=f"{expected} {spec.backend} workers of cluster {spec.name!r} at {host}:{spec.scheduler_port}",
        timeout=timeout,
        interval=0.1,
        max_interval=0.25,  # readiness is what `up` is timed by: notice it promptly
        error=StartupTimeout,
        on_timeout=diagnose,
    )
