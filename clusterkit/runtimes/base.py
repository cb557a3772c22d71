"""The lifecycle every runtime shares, written once; a runtime says only what differs.

A runtime (local processes, compose, testcontainers, next swarm) turns a
``ClusterSpec`` into running nodes and back. The steps that are the same
everywhere live here: refuse a name in use, prepare (image, ports), start,
wait until every worker is registered, remove what started when that fails,
read status, reconcile the worker count. A runtime supplies the verbs in the
"what each runtime says" block: start the nodes, add or remove workers, find
them, remove them, and explain a failure. This is the shape of distributed's
``SpecCluster`` with its small ``ProcessInterface``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from clusterkit.backends import get_backend
from clusterkit.errors import ClusterExists, ClusterNotFound, ClusterUnavailable, StartupTimeout
from clusterkit.progress import Event, Progress, quiet
from clusterkit.spec import ClusterSpec, parse_count
from clusterkit.status import ClusterStatus
from clusterkit.waiting import NotReady, wait_for


class Runtime:
    """Start, inspect, scale and stop clusters of one kind (processes, containers)."""

    #: The runtime's name, as ``--runtime`` spells it.
    name = ""

    # -- what each runtime says --------------------------------------------------

    def clusters(self) -> list[str]:
        """Names of the clusters this runtime has running."""
        raise NotImplementedError

    def spec_of(self, name: str) -> ClusterSpec:
        """The spec cluster ``name`` was started with (a record, not user input)."""
        raise NotImplementedError

    def client_spec(self, name: str) -> ClusterSpec:
        """The spec as a client on this host reaches it (published ports may differ)."""
        return self.spec_of(name)

    def worker_names(self, name: str) -> list[str]:
        """The names the workers of ``name`` register under, oldest first."""
        raise NotImplementedError

    def logs(self, name: str, service: str | None = None, *, follow: bool = False, tail: int = 100) -> None:
        """Print the nodes' logs (one ``service``: scheduler or worker)."""
        raise NotImplementedError

    def _preflight(self, spec: ClusterSpec) -> None:
        """Refuse bad input before anything is said or started (a taken port, a missing image)."""

    def _prepare(self, spec: ClusterSpec, progress: Progress) -> str | None:
        """Build or find what ``spec`` needs before anything starts; returns the image, if any."""
        return None

    def _start(self, spec: ClusterSpec, image: str | None, timeout: float) -> None:
        """Start the scheduler and ``spec.workers`` workers (without waiting for them)."""
        raise NotImplementedError

    def _add_workers(self, name: str, count: int) -> None:
        raise NotImplementedError

    def _remove_workers(self, name: str, workers: list[str]) -> None:
        """Stop and remove the workers registered as ``workers`` (names)."""
        raise NotImplementedError

    def _teardown(self, name: str, volumes: bool = False) -> None:
        """Remove everything of cluster ``name``, also what a crashed ``up`` left."""
        raise NotImplementedError

    def _exists(self, name: str) -> bool:
        """Anything of cluster ``name`` is left (``down`` removes a half-started one too)."""
        return name in self.clusters()

    def _check(self, name: str) -> None:
        """Raise at once (``NodeStartError``) if a node has ended for good."""

    def _diagnose(self, name: str) -> str:
        """What went wrong, for a time-out message: ended nodes, exit codes, log tails."""
        return ""

    # -- the shared lifecycle -------------------------------------------------------

    def up(
        self, spec: ClusterSpec, *, timeout: float = 120, keep: bool = False, progress: Progress = quiet
    ) -> ClusterStatus:
        """Start ``spec`` and return once all its workers are registered.

        On failure (or Ctrl-C) everything started is removed again, unless ``keep``.
        """
        if spec.name in self.clusters():
            raise ClusterExists(
                f"cluster {spec.name!r} is already up ({self.name}); run `clusterkit down --name "
                f"{spec.name}` first or choose another --name"
            )
        self._preflight(spec)
        progress(Event("image", f"preparing {spec.backend} cluster {spec.name!r} ({self.name})"))
        image = self._prepare(spec, progress)
        progress(Event("start", f"starting the {spec.backend} scheduler and {spec.workers} workers"))
        try:
            deadline = time.monotonic() + timeout  # one deadline for starting and waiting
            self._start(spec, image, timeout)
            progress(Event("wait", f"waiting for {spec.workers} workers to register"))
            self.wait(spec.name, spec.workers, max(1.0, deadline - time.monotonic()))
        except BaseException:
            if not keep:
                self._teardown(spec.name)
            raise
        progress(Event("ready", f"cluster {spec.name!r} is ready"))
        return self.status(spec.name)

    def down(self, name: str, *, volumes: bool = False) -> None:
        """Stop cluster ``name`` and remove everything it started."""
        if not self._exists(name):
            raise ClusterNotFound(
                f"no {self.name} cluster named {name!r}; `clusterkit status` lists what runs"
            )
        self._teardown(name, volumes)

    def status(self, name: str) -> ClusterStatus:
        """The cluster as its scheduler reports it now."""
        spec = self.client_spec(name)
        backend = get_backend(spec.backend)
        try:
            found = backend.collect_status(spec.scheduler_host, spec.scheduler_port, spec.dashboard_port)
        except NotReady as e:
            detail = self._diagnose(name)
            raise ClusterUnavailable(
                f"cluster {name!r} ({self.name}) is up but its scheduler does not answer ({e}); "
                f"`clusterkit logs --name {name}` shows why, `clusterkit down --name {name}` removes it"
                + (f"\n{detail}" if detail else "")
            ) from e
        return dataclasses.replace(found, name=name, runtime=self.name)

    def scale(
        self, name: str, workers: int, *, timeout: float = 120, wait: bool = True
    ) -> ClusterStatus | None:
        """Reconcile to exactly ``workers`` workers; the scheduler keeps running.

        ``wait=False`` returns once the nodes are started or removed (adaptive
        scaling polls the scheduler itself).
        """
        count = parse_count("workers", workers)
        current = self.worker_names(name)
        if count > len(current):
            self._add_workers(name, count - len(current))
        elif count < len(current):
            self._remove_workers(name, current[count:])
        if not wait:
            return None
        self.wait(name, count, timeout)
        return self.status(name)

    def remove_workers(self, name: str, workers: list[str]) -> None:
        """Remove the named workers (those the scheduler chose to retire)."""
        mine = set(self.worker_names(name))
        self._remove_workers(name, [w for w in workers if w in mine])

    def wait(self, name: str, expected: int, timeout: float) -> int:
        """Wait until the scheduler of ``name`` sees exactly ``expected`` workers."""
        return wait_for_workers(
            self.client_spec(name),
            expected=expected,
            timeout=timeout,
            check=lambda: self._check(name),
            diagnose=lambda: self._diagnose(name),
        )


def wait_for_workers(
    spec: ClusterSpec,
    *,
    expected: int,
    timeout: float,
    check: Callable[[], None] | None = None,
    diagnose: Callable[[], str] | None = None,
) -> int:
    """Wait until the scheduler of ``spec`` (as this host reaches it) sees ``expected`` workers.

    ``check`` runs on every poll and may raise at once (a node has exited);
    ``diagnose`` adds what went wrong to a time-out message.
    """
    backend = get_backend(spec.backend)

    def probe() -> int:
        if check is not None:
            check()
        seen = backend.count_workers(spec.scheduler_host, spec.scheduler_port, spec.dashboard_port)
        if seen != expected:
            raise NotReady(f"{seen} of {expected} workers registered")
        return seen

    return wait_for(
        probe,
        what=f"{expected} {spec.backend} workers of cluster {spec.name!r} at {spec.scheduler_address}",
        timeout=timeout,
        interval=0.1,
        max_interval=0.25,  # readiness is what `up` is timed by: notice it promptly
        error=StartupTimeout,
        on_timeout=diagnose,
    )
