"""testcontainers runtime: a cluster as ``DockerContainer`` objects on a private ``Network``.

This is what the pytest plugin starts. Commands, probes and environment come
from the same functions as the compose file (:func:`compose.node_commands`,
:func:`compose.node_environment`), so ports and probes are described once.

Ryuk (testcontainers' reaper) is disabled: its image cannot be pulled here,
and clean-up is ours instead. Every container and network carries the
cluster's labels plus a session id and the PID of the process that owns it;
:func:`sweep` removes what belongs to owners that no longer exist.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psutil
from docker.errors import APIError
from docker.errors import NotFound as DockerNotFound

from clusterkit import labels
from clusterkit.backends import get_backend
from clusterkit.engine import docker_client
from clusterkit.errors import ImageNotFound, StartupTimeout
from clusterkit.runtimes.base import wait_for_workers
from clusterkit.runtimes.compose import node_commands, node_environment
from clusterkit.spec import ClusterSpec
from clusterkit.status import ClusterStatus

RUNTIME = "testcontainers"


def _configure_testcontainers() -> None:
    """No Ryuk (we clean up ourselves), and reach published ports on loopback.

    Published ports bind to 127.0.0.1, so testcontainers must not guess a
    gateway address (it does when it believes it runs inside a container).
    """
    from testcontainers.core.config import ConnectionMode, testcontainers_config

    testcontainers_config.ryuk_disabled = True
    testcontainers_config.connection_mode_override = ConnectionMode.docker_host
    testcontainers_config.tc_host_override = "127.0.0.1"


def owner_alive(pid: int, started: float | None) -> bool:
    """Is the owning process still the one that created the resources?"""
    try:
        proc = psutil.Process(pid)
        return started is None or abs(proc.create_time() - started) < 1.0
    except psutil.NoSuchProcess:
        return False


def sweep(*, only_dead: bool = True) -> list[str]:
    """Remove test-session containers and networks whose owner process is gone.

    ``only_dead=False`` removes every one (``clusterkit gc --all``).
    """
    client = docker_client()
    wanted = {"label": labels.selector(runtime=RUNTIME)}
    removed: list[str] = []

    def dead(resource_labels: dict[str, str]) -> bool:
        if not only_dead:
            return True
        pid = int(resource_labels.get(labels.SESSION_PID, "0") or 0)
        started = resource_labels.get("clusterkit.session-started")
        return not owner_alive(pid, float(started) if started else None)

    for container in client.containers.list(all=True, filters=wanted):
        if dead(container.labels):
            container.remove(force=True)
            removed.append(f"container {container.name}")
    for network in client.networks.list(filters=wanted):
        if dead(network.attrs.get("Labels") or {}):
            try:
                network.remove()
                removed.append(f"network {network.name}")
            except APIError:
                continue  # still in use by a live container: leave it
    return removed


@dataclass
class ContainerCluster:
    """One cluster started by testcontainers; ``start()``, ``scale(n)``, ``stop()``.

    ``scheduler_address`` and ``dashboard_port`` are the host side (127.0.0.1
    and random free ports), so several sessions never collide.
    """

    spec: ClusterSpec
    image: str
    session: str
    owner_pid: int = field(default_factory=os.getpid)
    host_scheduler_port: int | None = None
    host_dashboard_port: int | None = None
    network_name: str | None = None
    _network: Any = None
    _scheduler: Any = None
    _workers: list[Any] = field(default_factory=list)

    # -- data --------------------------------------------------------------------

    def _labels(self, role: str | None = None) -> dict[str, str]:
        found = labels.cluster_labels(self.spec.name, self.spec.backend, RUNTIME, role)
        found[labels.SESSION] = self.session
        found[labels.SESSION_PID] = str(self.owner_pid)
        found["clusterkit.session-started"] = f"{psutil.Process(self.owner_pid).create_time():.3f}"
        return found

    @property
    def scheduler_address(self) -> str:
        return f"127.0.0.1:{self.host_scheduler_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.host_dashboard_port}"

    def host_spec(self) -> ClusterSpec:
        """The spec as seen from the host: the published ports."""
        return self.spec.replace(
            scheduler_port=self.host_scheduler_port, dashboard_port=self.host_dashboard_port
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "image": self.image,
            "session": self.session,
            "owner_pid": self.owner_pid,
            "host_scheduler_port": self.host_scheduler_port,
            "host_dashboard_port": self.host_dashboard_port,
            "network_name": self.network_name,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ContainerCluster:
        """Attach to a cluster another process started (pytest-xdist workers)."""
        from clusterkit.spec import resolve_spec

        spec = resolve_spec(overrides=state["spec"], environ={})
        return cls(
            spec=spec,
            image=state["image"],
            session=state["session"],
            owner_pid=state["owner_pid"],
            host_scheduler_port=state["host_scheduler_port"],
            host_dashboard_port=state["host_dashboard_port"],
            network_name=state["network_name"],
        )

    # -- containers ----------------------------------------------------------------

    def _container(self, role: str) -> Any:
        from testcontainers.core.container import DockerContainer

        command = node_commands(self.spec)[role]["command"]
        container = DockerContainer(self.image).with_command(command).with_network(self._network)
        for key, value in node_environment(self.spec).items():
            container = container.with_env(key, value)
        kwargs: dict[str, Any] = {"labels": self._labels(role)}
        if role == "scheduler":
            container = container.with_network_aliases("scheduler")
            kwargs["hostname"] = "scheduler"
            # Published on loopback only, on ports the kernel picks.
            container.ports[self.spec.scheduler_port] = ("127.0.0.1", None)
            container.ports[self.spec.dashboard_port] = ("127.0.0.1", None)
        else:
            kwargs["mem_limit"] = self.spec.memory + get_backend(self.spec.backend).memory_overhead
            kwargs["nano_cpus"] = int(self.spec.cores * 1e9)
        return container.with_kwargs(**kwargs)

    def _scheduler_wait(self) -> Any:
        from testcontainers.core.wait_strategies import HttpWaitStrategy

        path = "/health" if self.spec.backend == "dask" else "/json/"
        return (
            HttpWaitStrategy(self.spec.dashboard_port, path)
            .for_response_predicate(lambda body: "ok" in body or '"ALIVE"' in body)
            .with_startup_timeout(120)
            .with_poll_interval(0.1)
        )

    def start(self, timeout: float = 180) -> ContainerCluster:
        """Start scheduler and workers concurrently; return when all workers are registered.

        A failure part-way removes everything started so far.
        """
        from testcontainers.core.network import Network

        _configure_testcontainers()
        client = docker_client()
        try:
            client.images.get(self.image)
        except DockerNotFound as e:
            raise ImageNotFound(
                f"image {self.image!r} is not present on the engine; build it with "
                f"`clusterkit image build {self.spec.backend}` (or `make images`)"
            ) from e
        try:
            self._network = Network(docker_network_kw={"labels": self._labels()}).create()
            self.network_name = self._network.name
            self._scheduler = self._container("scheduler").waiting_for(self._scheduler_wait())
            workers = [self._container("worker") for _ in range(self.spec.workers)]
            with ThreadPoolExecutor(max_workers=1 + len(workers)) as pool:
                futures = [pool.submit(self._scheduler.start)]
                futures += [pool.submit(w.start) for w in workers]
                for future in futures:
                    future.result()
            self._workers = workers
            wrapped = self._scheduler.get_wrapped_container()
            wrapped.reload()
            ports = wrapped.attrs["NetworkSettings"]["Ports"]
            self.host_scheduler_port = int(ports[f"{self.spec.scheduler_port}/tcp"][0]["HostPort"])
            self.host_dashboard_port = int(ports[f"{self.spec.dashboard_port}/tcp"][0]["HostPort"])
            self._wait(self.spec.workers, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait(self, expected: int, timeout: float) -> None:
        wait_for_workers(
            self.host_spec(), "127.0.0.1", expected=expected, timeout=timeout, diagnose=self._diagnose
        )

    def _diagnose(self) -> str:
        lines = []
        for c in self._resources():
            c.reload()
            state = c.attrs["State"]
            lines.append(
                f"  {c.name} ({c.labels.get(labels.ROLE)}): {state['Status']}, exit code {state.get('ExitCode')}"
            )
            lines += [f"    {line}" for line in c.logs(tail=6).decode(errors="replace").splitlines()]
        return "\n".join(lines)

    def _resources(self) -> list[Any]:
        return docker_client().containers.list(
            all=True, filters={"label": [*labels.selector(cluster=self.spec.name, runtime=RUNTIME)]}
        )

    def scale(self, workers: int, timeout: float = 180) -> ClusterStatus:
        """Add or remove worker containers until the scheduler sees exactly ``workers``."""
        count = ClusterSpec(name=self.spec.name, workers=workers).workers
        current = [c for c in self._resources() if c.labels.get(labels.ROLE) == "worker"]
        if count > len(current):
            if self._network is None:
                from testcontainers.core.network import Network

                self._network = Network()
                self._network.name = self.network_name
                self._network._network = docker_client().networks.get(self.network_name)
            new = [self._container("worker") for _ in range(count - len(current))]
            with ThreadPoolExecutor(max_workers=len(new)) as pool:
                list(pool.map(lambda c: c.start(), new))
        else:
            for container in current[count:]:
                container.stop(timeout=5)
                container.remove(force=True)
        self._wait(count, timeout)
        return self.status()

    def status(self) -> ClusterStatus:
        found = get_backend(self.spec.backend).collect_status(
            "127.0.0.1", self.host_scheduler_port, self.host_dashboard_port
        )
        return ClusterStatus(**{**found.__dict__, "name": self.spec.name, "runtime": RUNTIME})

    def stop(self) -> None:
        """Remove every container and the network of this cluster (by label, workers first)."""
        try:
            client = docker_client()
        except Exception:  # noqa: BLE001 - no engine: nothing we could remove
            return
        selector = {"label": labels.selector(cluster=self.spec.name, runtime=RUNTIME)}
        containers = client.containers.list(all=True, filters=selector)
        workers = [c for c in containers if c.labels.get(labels.ROLE) == "worker"]
        for group in (workers, [c for c in containers if c not in workers]):
            if group:
                with ThreadPoolExecutor(max_workers=min(16, len(group))) as pool:
                    list(pool.map(lambda c: c.remove(force=True), group))
        for network in client.networks.list(filters=selector):
            network.remove()


__all__ = ["ContainerCluster", "StartupTimeout", "sweep"]
