"""What every container runtime shares: nodes found by label, diagnosed, removed gracefully.

Compose and testcontainers (and, next, swarm) differ only in how they create
containers. Finding them (by the labels in :mod:`clusterkit.labels`, never by
name), reading the recorded spec back from the scheduler's label, saying why a
start failed, and tearing down (workers first, then the scheduler once it has
seen them leave) are written here once.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from clusterkit import labels
from clusterkit.backends import get_backend
from clusterkit.engine import docker_client
from clusterkit.errors import (
    ClusterKitError,
    ClusterNotFound,
    EngineUnavailable,
    ImageNotFound,
    NodeStartError,
    StartupTimeout,
)
from clusterkit.progress import Progress
from clusterkit.runtimes.base import Runtime
from clusterkit.spec import ClusterSpec
from clusterkit.waiting import NotReady, wait_for

#: Seconds a node gets between SIGTERM and SIGKILL.
STOP_TIMEOUT = 5


def require_image(spec: ClusterSpec) -> None:
    """The image a spec names must be on the engine: nothing is pulled."""
    from clusterkit import images

    if spec.image and not images.image_exists(spec.image):
        raise ImageNotFound(
            f"image {spec.image!r} is not present on the engine; build it (`clusterkit image build "
            f"{spec.backend}` or `make images`), or drop `image:` to use the one built from the lock"
        )


def node_image(spec: ClusterSpec, progress: Progress) -> str:
    """The image the nodes run: the spec's, else the one built from the lock (built if missing)."""
    from clusterkit import images

    return spec.image or images.ensure_image(spec.backend, progress=progress)


def _quietly(action: Any) -> None:
    """Run a Docker call on a container that may already be gone or stopping."""
    from docker.errors import APIError, NotFound

    try:
        action()
    except NotFound:
        pass
    except APIError as e:
        if e.status_code != 409:  # 409: not running, or removal already in progress
            raise


class ContainerRuntime(Runtime):
    """Clusters whose nodes are containers carrying the cluster's labels."""

    def __init__(self) -> None:
        self._docker: Any = None

    @property
    def docker(self) -> Any:
        if self._docker is None:
            self._docker = docker_client()
        return self._docker

    def _filters(self, name: str | None = None, role: str | None = None) -> dict[str, list[str]]:
        wanted = {"runtime": self.name}
        if name:
            wanted["cluster"] = name
        if role:
            wanted["role"] = role
        return {"label": labels.selector(**wanted)}

    def _containers(self, name: str | None = None, role: str | None = None) -> list[Any]:
        return self.docker.containers.list(all=True, filters=self._filters(name, role))

    def _scheduler(self, name: str) -> Any:
        found = self._containers(name, "scheduler")
        if not found:
            raise ClusterNotFound(
                f"no {self.name} cluster named {name!r}; start one with `clusterkit up --name {name}`"
            )
        return found[0]

    # -- finding -----------------------------------------------------------------

    def clusters(self) -> list[str]:
        try:
            found = self._containers(role="scheduler")
        except EngineUnavailable:
            return []
        return sorted({c.labels[labels.CLUSTER] for c in found})

    def spec_of(self, name: str) -> ClusterSpec:
        return ClusterSpec.from_record(json.loads(self._scheduler(name).labels[labels.SPEC]))

    def worker_names(self, name: str) -> list[str]:
        workers = sorted(self._containers(name, "worker"), key=lambda c: c.attrs["Created"])
        return [c.attrs["Config"]["Hostname"] for c in workers]  # a worker registers as its host name

    def _exists(self, name: str) -> bool:
        return bool(self._containers(name)) or bool(self.docker.networks.list(filters=self._filters(name)))

    def _preflight(self, spec: ClusterSpec) -> None:
        require_image(spec)

    def _prepare(self, spec: ClusterSpec, progress: Progress) -> str | None:
        return node_image(spec, progress)

    # -- explaining a failure ------------------------------------------------------

    def _unregistered(self, name: str) -> list[str]:
        """Worker containers the scheduler does not list (by host name or address)."""
        try:
            spec = self.client_spec(name)
            seen = get_backend(spec.backend).collect_status(
                spec.scheduler_host, spec.scheduler_port, spec.dashboard_port
            )
        except (ClusterKitError, NotReady):
            return []
        known = {w.name for w in seen.workers}
        known |= {w.address.split("://")[-1].rsplit(":", 1)[0] for w in seen.workers}
        missing = []
        for c in self._containers(name, "worker"):
            addresses = {n.get("IPAddress") for n in c.attrs["NetworkSettings"]["Networks"].values()}
            if c.attrs["Config"]["Hostname"] not in known and not addresses & known:
                missing.append(c.name)
        return sorted(missing)

    def _diagnose(self, name: str) -> str:
        lines = []
        missing = self._unregistered(name)
        if missing:
            lines.append(f"  not registered with the scheduler: {', '.join(missing)}")
        for c in self._containers(name):
            state = c.attrs["State"]
            health = state.get("Health", {}).get("Status", "")
            if state["Status"] == "running" and health != "unhealthy" and not state.get("ExitCode"):
                continue
            lines.append(
                f"  {c.name} ({c.labels.get(labels.ROLE)}) is {state['Status']}"
                f"{' ' + health if health else ''}, exit code {state.get('ExitCode')}; last log lines:"
            )
            tail = c.logs(tail=8).decode(errors="replace").rstrip().splitlines()
            lines += [f"    {line}" for line in tail] or ["    (empty log)"]
            probes = state.get("Health", {}).get("Log") or []
            if probes and probes[-1].get("ExitCode"):
                lines.append(f"    last health probe: {probes[-1].get('Output', '').strip()[:300]}")
        return "\n".join(lines)

    def _check(self, name: str) -> None:
        for c in self._containers(name):
            state = c.attrs["State"]
            if state["Status"] == "exited" and state.get("ExitCode") not in (0, None):
                raise NodeStartError(f"cluster {name!r}: a node exited\n" + self._diagnose(name))

    # -- removing -------------------------------------------------------------------

    def _remove_workers(self, name: str, workers: list[str]) -> None:
        wanted = set(workers)
        doomed = [c for c in self._containers(name, "worker") if c.attrs["Config"]["Hostname"] in wanted]
        self._remove(doomed)

    def _teardown(self, name: str, volumes: bool = False) -> None:
        """Stop and remove everything labelled with the cluster, gracefully and in parallel.

        By label, so it also removes what a crashed ``up`` left. Workers get
        SIGTERM first; the scheduler follows as soon as it has seen them leave
        (a worker whose scheduler vanishes first waits to reconnect).
        """
        containers = self._containers(name)
        try:
            spec: ClusterSpec | None = self.client_spec(name)
        except (ClusterKitError, KeyError, ValueError):
            spec = None  # no scheduler (or no record): nothing to wait for
        self._remove(containers, spec, volumes)
        for network in self.docker.networks.list(filters=self._filters(name)):
            _quietly(network.remove)
        if volumes:
            for volume in self.docker.volumes.list(filters={"label": labels.selector(cluster=name)}):
                _quietly(lambda v=volume: v.remove(force=True))

    def _remove(self, containers: list[Any], spec: ClusterSpec | None = None, volumes: bool = False) -> None:
        if not containers:
            return
        workers = [c for c in containers if c.labels.get(labels.ROLE) != "scheduler"]
        schedulers = [c for c in containers if c not in workers]
        with ThreadPoolExecutor(max_workers=min(32, len(containers) + 1)) as pool:
            list(pool.map(lambda c: _quietly(lambda: c.kill(signal="SIGTERM")), workers))
            if schedulers and spec is not None:
                _await_workers_gone(spec)
            list(pool.map(lambda c: _quietly(lambda: c.stop(timeout=STOP_TIMEOUT)), containers))
            list(pool.map(lambda c: _quietly(lambda: c.remove(v=volumes, force=True)), containers))


def _await_workers_gone(spec: ClusterSpec, timeout: float = 3.0) -> None:
    """Wait (briefly) until the scheduler lists no worker; give up quietly if it does not answer."""
    from clusterkit import probe

    ui = f"{spec.scheduler_host}:{spec.dashboard_port}"

    def none_left() -> None:
        try:
            left = probe.registered_workers(spec.backend, ui)
        except probe.NotReadyYet:
            return  # the scheduler does not answer: nothing to wait for
        if left:
            raise NotReady(f"{left} workers still registered")

    try:
        wait_for(none_left, what="workers to leave", timeout=timeout, interval=0.05, max_interval=0.1)
    except StartupTimeout:
        pass  # stop the scheduler anyway; the workers are already terminating
