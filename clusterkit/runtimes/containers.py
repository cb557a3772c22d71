"""What every container runtime shares: nodes found by label, diagnosed, removed gracefully.

Compose and testcontainers (and, next, swarm) differ only in how they create
containers. Finding them (by the labels in :mod:`clusterkit.labels`, never by
name), reading the recorded spec back from the scheduler's label, saying why a
start failed, and tearing down (workers first, then the scheduler once it has
seen them leave) are written here once.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from clusterkit import health, labels, records, security
from clusterkit.backends import get_backend
from clusterkit.client_env import ClientPlace
from clusterkit.errors import (
    ClusterKitError,
    ClusterNotFound,
    EngineUnavailable,
    ImageNotFound,
    NodeStartError,
)
from clusterkit.facts import facts_of
from clusterkit.health import NodeState
from clusterkit.progress import Progress
from clusterkit.runtimes import nodelogs
from clusterkit.runtimes.base import Runtime
from clusterkit.runtimes.checks import check_memory_fits
from clusterkit.runtimes.follow import print_containers
from clusterkit.spec import ClusterSpec
from clusterkit.waiting import NotReady

#: Seconds a node gets between SIGTERM and SIGKILL.
STOP_TIMEOUT = 5


def require_image(spec: ClusterSpec) -> None:
    """The image a spec names must be on the engine (nothing is pulled) and be a node image of its backend.

    A node runs ``python -m clusterkit.node``: an image without it (a base
    image, the other backend's image, anything else) would only end in
    Compose's "Encountered errors while bringing up the project".
    """
    if not spec.image:
        return
    import docker

    from clusterkit.images.store import client, get_image

    try:
        found = get_image(client(), spec.image)
    except docker.errors.APIError as e:  # e.g. "invalid reference format"
        raise ImageNotFound(f"image {spec.image!r} cannot be looked up: {e.explanation or e}") from e
    if found is None:
        raise ImageNotFound(
            f"image {spec.image!r} is not present on the engine; build it (`clusterkit image build "
            f"{spec.backend}` or `make images`), or drop `image:` to use the one built from the lock"
        )
    backend = (found.labels or {}).get(labels.BACKEND)
    if backend != spec.backend:
        what = f"a clusterkit {backend} image" if backend else "not a clusterkit node image"
        raise ImageNotFound(
            f"image {spec.image!r} is {what}, not a {spec.backend} node image (its label "
            f"{labels.BACKEND} is {backend or 'missing'}); use one built by `clusterkit image build "
            f"{spec.backend}` (or an image built FROM it), or drop `image:`"
        )


def node_image(spec: ClusterSpec, progress: Progress) -> str:
    """The image the nodes run: the spec's as it is, else the one built from the lock (built if
    missing) plus the project's dependencies (:mod:`clusterkit.images.project`), if it has any."""
    from clusterkit import images

    if spec.image:
        return spec.image
    node = images.ensure_image(spec.backend, progress=progress)
    return images.with_project(node, spec.backend, spec.requirements, progress=progress)


def quietly(action: Any) -> None:
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

    runs_clients = True
    #: Host folders bind at the same path on the nodes (:mod:`clusterkit.runtimes.sharing`).
    binds_host_paths = True

    def _filters(self, name: str | None = None, role: str | None = None) -> dict[str, list[str]]:
        wanted = {"runtime": self.name}
        if name:
            wanted["cluster"] = name
        if role:
            wanted["role"] = role
        return {"label": labels.selector(**wanted)}

    def _containers(self, name: str | None = None, role: str | None = None) -> list[Any]:
        # ignore_removed: a container can go between the listing and its inspection (a teardown,
        # or a create that a killed Compose left half-done).
        return self.docker.containers.list(all=True, filters=self._filters(name, role), ignore_removed=True)

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

    def client_place(self, name: str) -> ClientPlace:
        """Where a client container of cluster ``name`` runs (``clusterkit run``, ``shell``, the notebook).

        The scheduler's image (by ID: a tag rebuilt since still names this
        image) and network, the scheduler by its name on that network, and the
        cluster's labels (with a test session's), so ``down`` and ``gc`` remove
        the client with the cluster.
        """
        from clusterkit import security
        from clusterkit.nodes import SCHEDULER_HOST

        scheduler = self._scheduler(name)
        spec = self.spec_of(name)
        published = self.client_spec(name)
        own = {k: v for k, v in scheduler.labels.items() if k.startswith("clusterkit.")}
        for key in (labels.SPEC, labels.ROLE):
            own.pop(key, None)
        dashboard = f"http://{published.scheduler_host}:{published.dashboard_port}"
        # The configured network: a restarting scheduler has none attached at this moment.
        network = scheduler.attrs["HostConfig"].get("NetworkMode") or ""
        if network in ("", "default", "bridge"):
            network = next(iter(scheduler.attrs["NetworkSettings"].get("Networks") or {}), "")
        if not network:
            raise ClusterNotFound(f"cluster {name!r} has no network to run a client in; restart it")
        return ClientPlace(
            cluster=name,
            backend=spec.backend,
            image=scheduler.attrs["Image"],
            network=network,
            scheduler_host=SCHEDULER_HOST,
            scheduler_port=spec.scheduler_port,
            dashboard_port=spec.dashboard_port,
            labels=own,
            dashboard_link=dashboard + facts_of(spec.backend).dashboard_path,
            secured=security.secured(spec),
            env=dict(spec.env),
            mounts=spec.mounts or (),
        )

    def exists(self, name: str) -> bool:
        return bool(self._containers(name)) or bool(self.docker.networks.list(filters=self._filters(name)))

    def _preflight(self, spec: ClusterSpec) -> None:
        require_image(spec)
        check_memory_fits(spec, int(self.docker.info().get("MemTotal") or 0), "the Docker engine")

    def _prepare(self, spec: ClusterSpec, progress: Progress) -> str | None:
        return node_image(spec, progress)

    # -- health --------------------------------------------------------------------

    def nodes(self, name: str) -> list[NodeState]:
        """Scheduler and worker containers (oldest first), from the engine's state of each."""
        restarts = records.load(name).get("restarts") or {}
        found = []
        containers = sorted(self._containers(name), key=lambda c: c.attrs["Created"])
        for c in containers:
            role = c.labels.get(labels.ROLE)
            if role not in ("scheduler", "worker"):
                continue  # a client or a forwarder: not a node
            found.append(_node_state(c, role, int(restarts.get(c.name, 0))))
        return sorted(found, key=lambda n: n.role != "scheduler")

    def _restart(self, name: str, node: NodeState) -> None:
        """``docker start`` the ended container again: same name, host name, network and labels."""
        for c in self._containers(name, node.role):
            if c.name == node.name:
                quietly(c.start)

    def restart_workers(self, name: str, timeout: float = 120) -> None:
        """Fresh worker processes in the same containers (a kept test cluster), then all registered again."""
        workers = self._containers(name, "worker")
        with ThreadPoolExecutor(max_workers=min(32, len(workers) + 1)) as pool:
            list(pool.map(lambda c: c.restart(timeout=STOP_TIMEOUT), workers))
        self.wait(name, self.wanted_workers(name), timeout)

    # -- explaining a failure ------------------------------------------------------

    def _unregistered(self, name: str) -> list[str]:
        """Worker containers the scheduler does not list (by host name or address)."""
        try:
            spec = self.client_spec(name)
            backend = get_backend(spec.backend)
            seen = backend.collect_status(
                spec.scheduler_host, spec.scheduler_port, spec.dashboard_port, **backend.status_options(spec)
            )
        except (ClusterKitError, NotReady):  # the scheduler does not answer: none is registered
            return sorted(c.name for c in self._containers(name, "worker"))
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
            restarts = int(c.attrs.get("RestartCount") or 0)  # a crash loop looks "running" between crashes
            if (
                state["Status"] == "running"
                and health != "unhealthy"
                and not state.get("ExitCode")
                and not restarts
            ):
                continue
            error = f" ({state['Error']})" if state.get("Error") else ""  # e.g. the image has no such program
            again = f", restarted {restarts} times" if restarts else ""
            lines.append(
                f"  {c.name} ({c.labels.get(labels.ROLE)}) is {state['Status']}"
                f"{' ' + health if health else ''}, exit code {state.get('ExitCode')}{error}{again}; "
                "last log lines:"
            )
            tail = log_excerpt(c.logs(tail=200).decode(errors="replace"))
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

    # -- logs ------------------------------------------------------------------------

    def logs(self, name: str, service: str | None = None, *, follow: bool = False, **options: Any) -> None:
        """Print the node containers' logs after their names; ``follow``: streamed, interleaved."""
        print_containers(lambda: self._containers(name), service, follow=follow, **options)

    def node_logs(
        self,
        name: str,
        *,
        since: float | str | None = None,
        tail: int | None = None,
        timestamps: bool = False,
    ) -> dict[str, str]:
        """Each node container's log (and a running Spark worker's executor outputs) as text, by node name."""
        options = {"since": nodelogs.parse_since(since), "tail": tail, "timestamps": timestamps}
        return nodelogs.containers_text(self._containers(name), executors=True, **options)

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
        self._remove(self._containers(name), volumes)
        # What was created while this ran (a killed `up`'s last request, a repair elsewhere).
        self._remove(self._containers(name), volumes)
        security.forget(name)  # this machine's copy of its credentials, if it had any
        for network in self.docker.networks.list(filters=self._filters(name)):
            quietly(network.remove)
        if volumes:
            for volume in self.docker.volumes.list(filters={"label": labels.selector(cluster=name)}):
                quietly(lambda v=volume: v.remove(force=True))

    def _remove(self, containers: list[Any], volumes: bool = False) -> None:
        if not containers:
            return
        workers = [c for c in containers if c.labels.get(labels.ROLE) != "scheduler"]
        schedulers = [c for c in containers if c not in workers]
        with ThreadPoolExecutor(max_workers=min(32, len(containers) + 1)) as pool:
            list(pool.map(lambda c: quietly(lambda: c.kill(signal="SIGTERM")), workers))
            if schedulers:  # a worker leaves its scheduler (and exits) before the scheduler goes
                list(pool.map(await_exit, [c for c in workers if c.status == "running"]))
            list(pool.map(lambda c: quietly(lambda: c.stop(timeout=STOP_TIMEOUT)), containers))
            list(pool.map(lambda c: quietly(lambda: c.remove(v=volumes, force=True)), containers))


def log_excerpt(text: str, lines: int = 8) -> list[str]:
    """The last ``lines`` of a log without Python stack frames, and the last error line above them.

    A Python crash ends with its outermost exception ("Scheduler failed to
    start"); the cause ("ValueError: unknown address scheme ...") is further up.
    Stack frames say where, not what: they would fill the excerpt (and read as
    this command's own traceback), so they are left to ``clusterkit logs``.

    >>> log_excerpt("a\\nValueError: bad scheme\\n\\nx\\ny\\nz", lines=2)
    ['ValueError: bad scheme', '...', 'y', 'z']
    >>> log_excerpt("failed\\nTraceback (most recent call last):\\n  File \\"x.py\\"\\n    f()\\nOSError: no", lines=3)
    ['failed', 'OSError: no']
    """
    found, inside = [], False
    for line in text.rstrip().splitlines():
        if line.lstrip().startswith("Traceback (most recent call last)"):
            inside = True
        elif not (inside and (line.startswith(" ") or not line.strip())):
            inside = False
            found.append(line)
    tail = found[-lines:]
    errors = [line for line in found[:-lines] if re.match(r"^\w+(Error|Exception)\b.*:", line.strip())]
    return [errors[-1].strip(), "...", *tail] if errors else tail


def _node_state(container: Any, role: str, kit_restarts: int = 0) -> NodeState:
    """A container as a :class:`~clusterkit.health.NodeState`."""
    state = container.attrs["State"]
    status = state.get("Status", "")
    if status == "running":
        found, code = health.RUNNING, None
    elif status == "restarting":
        found, code = health.RESTARTING, state.get("ExitCode")
    else:  # created (never ran), exited, dead, paused, removing
        found, code = health.EXITED, state.get("ExitCode")
    details = []
    if state.get("OOMKilled"):
        details.append("OOMKilled")
    if status not in ("running", "restarting", "exited"):
        details.append(status)
    if state.get("Error"):
        details.append(str(state["Error"])[:200])
    if (state.get("Health") or {}).get("Status") == "unhealthy":
        details.append("unhealthy")
    return NodeState(
        role=role,
        name=container.name,
        state=found,
        exit_code=code,
        restarts=int(container.attrs.get("RestartCount") or 0) + kit_restarts,
        where=container.short_id,
        detail=", ".join(details),
    )


def await_exit(container: Any, timeout: float = 3.0) -> None:
    """Wait (briefly) until a container that got SIGTERM has exited; give up quietly.

    A worker exits once it has closed and told its scheduler; waiting for that
    (rather than asking the scheduler) needs no client library and no scheduler
    that answers. A worker whose scheduler vanished first would wait to reconnect.
    """
    try:
        container.wait(timeout=timeout)
    except Exception:  # noqa: BLE001, S110 - a time-out (requests), or gone already: stop it anyway
        pass
