"""testcontainers runtime: nodes as testcontainers ``DockerContainer`` objects on a private network.

What the pytest plugin starts, with the same commands, probes and environment
as the compose file (:mod:`clusterkit.nodes`). Its ports are published on
127.0.0.1 at ports the kernel picks, so test sessions never collide;
:meth:`TestcontainersRuntime.client_spec` reads them back from the engine.

Ryuk (testcontainers' reaper) is off for our own containers only: its image
cannot be pulled everywhere, and clean-up is ours instead. The settings are
applied around clusterkit's calls and restored after (:func:`_our_settings`),
so a user's other testcontainers fixtures see theirs. Every container and
network carries the cluster's labels plus a session id and the owner's PID
(:func:`clusterkit.records.owner_labels`); a held cluster (a test session, a
Python ``Cluster``) also carries a lease its owner renews in the scheduler
container (:mod:`clusterkit.runtimes.leases`), so ``clusterkit gc``
(:func:`clusterkit.cluster.gc`) tells a live owner from a dead one across PID
namespaces and machines.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from clusterkit import labels, records
from clusterkit.backends import get_backend
from clusterkit.nodes import (
    SCHEDULER_HOST,
    node_binds,
    node_commands,
    node_environment,
    node_isolation,
    worker_memory_limit,
)
from clusterkit.progress import Progress, quiet
from clusterkit.runtimes import leases
from clusterkit.runtimes.containers import ContainerRuntime
from clusterkit.spec import ClusterSpec
from clusterkit.waiting import NotReady, wait_for

RUNTIME = "testcontainers"
#: When the owning process started: a recycled PID is not the owner.
SESSION_STARTED = records.OWNER_STARTED


@contextmanager
def _our_settings() -> Iterator[None]:
    """No Ryuk (we clean up ourselves), and published ports on loopback, only for our own calls.

    Published ports bind to 127.0.0.1, so testcontainers must not guess a
    gateway address (it does when it believes it runs inside a container).
    testcontainers keeps these in one process-wide object: every field is put
    back as it was afterwards, so the user's other fixtures keep their settings.
    """
    from testcontainers.core.config import ConnectionMode, testcontainers_config

    saved = dict(vars(testcontainers_config))
    testcontainers_config.ryuk_disabled = True
    testcontainers_config.connection_mode_override = ConnectionMode.docker_host
    testcontainers_config.tc_host_override = "127.0.0.1"
    try:
        yield
    finally:
        for key in set(vars(testcontainers_config)) - set(saved):
            delattr(testcontainers_config, key)
        vars(testcontainers_config).update(saved)


def _published(scheduler: Any, spec: ClusterSpec) -> ClusterSpec | None:
    """``spec`` with the scheduler container's ports as published on 127.0.0.1; ``None`` while none are."""
    ports = scheduler.attrs["NetworkSettings"]["Ports"] or {}
    wanted = [p for p in (spec.scheduler_port, spec.dashboard_port, spec.connect_port) if p]
    try:
        published = {p: int(ports[f"{p}/tcp"][0]["HostPort"]) for p in wanted}
    except (KeyError, IndexError, TypeError):
        return None
    return spec.replace(
        bind_address="127.0.0.1",
        scheduler_port=published[spec.scheduler_port],
        dashboard_port=published[spec.dashboard_port],
        connect_port=published[spec.connect_port] if spec.connect_port else None,
    )


def _page_says(url: str, marker: str) -> None:
    """``NotReady`` unless ``url`` answers 200 with ``marker`` in its body."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - http on loopback
            status, body = response.status, response.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as e:  # HTTPError (a 5xx while starting) is a URLError
        raise NotReady(f"{url} does not answer ({getattr(e, 'reason', e)})") from e
    if status != 200 or marker not in body:
        raise NotReady(f"{url} answers {status} without {marker!r}")


class _NetworkByName:
    """What ``DockerContainer.with_network`` reads of a network: its name."""

    def __init__(self, name: str) -> None:
        self.name = name


class TestcontainersRuntime(ContainerRuntime):
    """Clusters of testcontainers containers, owned by one process (a test session).

    Args:
        session: an id put on every resource (``labels.new_session_id()`` by default).
        owner_pid: the process that owns them, for a test session (its clusters are
            then held: under a lease this process renews, which ``clusterkit gc``
            reads instead of the PID); default: the process that starts the cluster.
    """

    __test__ = False  # not a pytest test class, despite its name
    name = RUNTIME

    def __init__(self, session: str | None = None, owner_pid: int | None = None) -> None:
        super().__init__()
        self.session = session or labels.new_session_id()
        self.owner_pid = owner_pid
        self._held = owner_pid is not None  # a test session holds its clusters
        self._renewers: dict[str, leases.Renewer] = {}
        #: More labels for one cluster's resources, by cluster name (a kept cluster's reuse labels).
        self.extra_labels: dict[str, dict[str, str]] = {}

    def up(
        self,
        spec: ClusterSpec,
        *,
        timeout: float = 120,
        keep: bool = False,
        progress: Progress = quiet,
        held: bool = False,
    ) -> Any:
        """As every runtime's ``up``; a ``held`` cluster gets a lease this process renews."""
        self._held = held or self.owner_pid is not None
        return super().up(spec, timeout=timeout, keep=keep, progress=progress, held=held)

    def hold(self, name: str) -> None:
        """Renew cluster ``name``'s lease from this process too, until it is removed or :meth:`release`."""
        from clusterkit.engine import docker_client

        if name not in self._renewers:  # its own client: the SDK's is not made for two threads
            self._renewers[name] = leases.Renewer(docker_client(), name, self.session).start()

    def release(self, name: str) -> None:
        """Stop renewing ``name``'s lease here (another holder, or the sweep after it, decides)."""
        renewer = self._renewers.pop(name, None)
        if renewer is not None:
            renewer.stop()

    def keep(self, name: str) -> None:
        """Leave ``name`` running after this process (``--clusterkit-keep``): a lease no sweep ends."""
        self.release(name)
        leases.write(self.docker, name, self.session, leases.KEPT)

    def _labels(self, spec: ClusterSpec, role: str | None = None) -> dict[str, str]:
        found = labels.cluster_labels(spec.name, spec.backend, RUNTIME, role)
        found[labels.SESSION] = self.session
        found.update(records.owner_labels(self.owner_pid or os.getpid()))
        if self.owner_pid is not None:
            found[records.HELD] = "1"  # a test session: gone with its owner, whatever this machine recorded
        if self._held:
            found[leases.LEASE] = "1"  # its owner is whoever renews the lease, not a PID
        found.update(self.extra_labels.get(spec.name, {}))
        return found

    def client_spec(self, name: str) -> ClusterSpec:
        """The spec with the ports published on 127.0.0.1."""
        scheduler = self._scheduler(name)
        spec = ClusterSpec.from_record(json.loads(scheduler.labels[labels.SPEC]))
        return _published(scheduler, spec) or spec  # not running: nothing published

    # -- containers ------------------------------------------------------------------

    def _container(self, spec: ClusterSpec, image: str, role: str, network: Any) -> Any:
        from testcontainers.core.container import DockerContainer

        container = DockerContainer(image).with_command(node_commands(spec)[role]["command"])
        container = container.with_network(network)
        for key, value in node_environment(spec).items():
            container = container.with_env(key, value)
        # As in the compose file: the engine starts a crashed node again (the supervisor the rest).
        isolation = node_isolation(spec, role)
        container.tmpfs.update(isolation.pop("tmpfs"))  # testcontainers passes its own tmpfs=
        kwargs: dict[str, Any] = {
            "labels": self._labels(spec, role),
            "restart_policy": {"Name": "unless-stopped"},
            **isolation,
        }
        for source, target, read_only in node_binds(spec):  # same path as here (clusterkit.mounts)
            container = container.with_volume_mapping(source, target, "ro" if read_only else "rw")
        if role == "scheduler":
            container = container.with_network_aliases(SCHEDULER_HOST)
            kwargs["hostname"] = SCHEDULER_HOST
            kwargs["labels"][labels.SPEC] = json.dumps(spec.to_dict(), sort_keys=True)
            # Published on loopback only, on ports the kernel picks.
            container.ports[spec.scheduler_port] = ("127.0.0.1", None)
            container.ports[spec.dashboard_port] = ("127.0.0.1", None)
            if spec.connect_port:
                container.ports[spec.connect_port] = ("127.0.0.1", None)
        else:
            kwargs["mem_limit"] = worker_memory_limit(spec)
            kwargs["nano_cpus"] = int(spec.cores * 1e9)
        return container.with_kwargs(**kwargs)

    def _start(self, spec: ClusterSpec, image: str | None, timeout: float) -> None:
        """Scheduler and workers start concurrently; then the scheduler's health page must answer."""
        from testcontainers.core.network import Network

        assert image is not None
        deadline = time.monotonic() + timeout
        with _our_settings():
            network = Network(docker_network_kw={"labels": self._labels(spec)}).create()
            containers = [self._container(spec, image, "scheduler", network)]
            containers += [self._container(spec, image, "worker", network) for _ in range(spec.workers)]
            self._run(containers)
        if self._held:
            self.hold(spec.name)  # until then, the lease's grace period covers the start
        self._await_scheduler(spec, max(1.0, deadline - time.monotonic()))

    def _await_scheduler(self, spec: ClusterSpec, timeout: float) -> None:
        """Wait until the scheduler's dashboard, as published here, answers the backend's health page."""
        backend = get_backend(spec.backend)

        def answers() -> None:
            self._check(spec.name)  # a scheduler that exited fails now, not at the deadline
            reach = _published(self._scheduler(spec.name), spec)
            if reach is None:
                raise NotReady("the scheduler has no published ports yet")
            _page_says(
                f"http://{reach.scheduler_host}:{reach.dashboard_port}{backend.health_path}",
                backend.health_marker,
            )

        wait_for(
            answers,
            what=f"the {spec.backend} scheduler of cluster {spec.name!r} to answer on its dashboard",
            timeout=timeout,
            interval=0.1,
            max_interval=0.25,
            on_timeout=lambda: self._diagnose(spec.name),
        )

    def _run(self, containers: list[Any]) -> None:
        with ThreadPoolExecutor(max_workers=len(containers)) as pool:
            for future in [pool.submit(c.start) for c in containers]:
                future.result()

    def _add_workers(self, name: str, count: int) -> None:
        spec = self.spec_of(name)
        scheduler = self._scheduler(name)
        image = scheduler.attrs["Config"]["Image"]
        network = _NetworkByName(next(iter(scheduler.attrs["NetworkSettings"]["Networks"])))
        with _our_settings():
            self._run([self._container(spec, image, "worker", network) for _ in range(count)])

    def _teardown(self, name: str, volumes: bool = False) -> None:
        self.release(name)
        super()._teardown(name, volumes)
