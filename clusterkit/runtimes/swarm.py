"""Swarm runtime: a spec rendered to a stack file (:mod:`clusterkit.render.stack`) and deployed
with ``docker stack deploy`` on the swarm this engine manages.

Secure by default: a published port on a swarm is open on every interface of
the node, so a cluster without ``security:`` gets ``tls`` here (what the backend
offers: mutual TLS, or an authentication secret with RPC encryption; the material
is made per deployment and handed to the nodes as swarm secrets). The dashboard
is forwarded to 127.0.0.1 of this machine by a small container on the
cluster's overlay network (:mod:`clusterkit.forward`), and nowhere else.
Images reach every node with no registry (:mod:`clusterkit.images.push`);
the deploy never asks a registry (``--resolve-image never``).
"""

from __future__ import annotations

import json
import secrets
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import yaml
from docker.errors import APIError

from clusterkit import labels, security
from clusterkit.backends import get_backend
from clusterkit.errors import EngineUnavailable, NodeStartError, SwarmUnavailable
from clusterkit.facts import facts_of
from clusterkit.health import NodeState
from clusterkit.net import ensure_port_free
from clusterkit.progress import Progress
from clusterkit.render import stack
from clusterkit.render.compose import STOP_GRACE, project_name
from clusterkit.runtimes import nodelogs, swarm_tasks
from clusterkit.runtimes.base import Runtime
from clusterkit.runtimes.containers import await_exit, node_image, quietly, require_image
from clusterkit.runtimes.sharing import on_every_node
from clusterkit.runtimes.swarm_tasks import RUNTIME
from clusterkit.spec import ClusterSpec
from clusterkit.status import ClusterStatus
from clusterkit.waiting import NotReady, wait_for


class SwarmRuntime(Runtime):
    """Clusters as stacks ``clusterkit-<name>`` on the swarm this engine manages."""

    name = RUNTIME
    runs_clients = True

    def _node_id(self) -> str:
        """This engine's node ID; ``SwarmUnavailable`` unless it is a swarm manager."""
        from clusterkit.images.push import manager_node_id

        return manager_node_id(self.docker)

    # Reading the swarm: :mod:`clusterkit.runtimes.swarm_tasks`, with this engine.

    def _filters(self, name: str | None = None, role: str | None = None) -> dict[str, list[str]]:
        return swarm_tasks.filters(name, role)

    def _services(self, name: str | None = None, role: str | None = None) -> list[Any]:
        return swarm_tasks.services(self.docker, name, role)

    def _service(self, name: str, role: str) -> Any:
        return swarm_tasks.service(self.docker, name, role)

    def _tasks(self, name: str, role: str | None = None) -> list[dict[str, Any]]:
        return swarm_tasks.tasks(self.docker, name, role)

    # -- finding -----------------------------------------------------------------------

    def clusters(self) -> list[str]:
        try:
            found = self._services(role="scheduler")
        except EngineUnavailable:
            return []
        except APIError as e:
            if e.status_code == 503:  # an engine that is no swarm manager
                return []
            raise
        return sorted({s.attrs["Spec"]["Labels"][labels.CLUSTER] for s in found})

    def spec_of(self, name: str) -> ClusterSpec:
        record = self._service(name, "scheduler").attrs["Spec"]["Labels"][labels.SPEC]
        return ClusterSpec.from_record(json.loads(record))

    def worker_names(self, name: str) -> list[str]:
        running = [t for t in self._tasks(name, "worker") if t["Status"]["State"] == "running"]
        running.sort(key=lambda t: t["CreatedAt"])
        return [t["Status"]["ContainerStatus"]["ContainerID"][:12] for t in running]  # the host name

    def client_place(self, name: str) -> Any:
        """Where a client container of cluster ``name`` runs: on this manager, joined to the
        cluster's attachable overlay, in the image the services run (present here: ``up``
        pushed it from here), with the cluster's labels so ``down`` removes it. See
        :meth:`clusterkit.runtimes.containers.ContainerRuntime.client_place`.
        """
        from clusterkit.client_env import ClientPlace

        spec = self.spec_of(name)
        image = self._service(name, "scheduler").attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        published = self.client_spec(name)  # the forwarder's 127.0.0.1 port
        dashboard = f"http://{published.scheduler_host}:{published.dashboard_port}"
        return ClientPlace(
            cluster=name,
            backend=spec.backend,
            image=image.split("@", 1)[0],  # a tag, not a registry digest: nothing is pulled
            network=project_name(name),
            scheduler_host=stack.SCHEDULER_HOST,
            scheduler_port=spec.scheduler_port,
            dashboard_port=spec.dashboard_port,
            labels=labels.cluster_labels(name, spec.backend, RUNTIME),
            dashboard_link=dashboard + facts_of(spec.backend).dashboard_path,
            secured=security.secured(spec),
            env=dict(spec.env),
            mounts=spec.mounts or (),
        )

    def exists(self, name: str) -> bool:
        try:
            self._node_id()
        except SwarmUnavailable:
            return False
        return bool(
            self._services(name)
            or self.docker.networks.list(filters=self._filters(name))
            or self.docker.secrets.list(filters=self._filters(name))
            or self._forwarders(name)
        )

    # -- starting --------------------------------------------------------------------------

    def up(self, spec: ClusterSpec, **options: Any) -> ClusterStatus:
        """As every runtime, with ``security: tls`` unless the spec says otherwise."""
        return super().up(spec.replace(security=spec.security or "tls"), **options)

    def _preflight(self, spec: ClusterSpec) -> None:
        self._node_id()
        require_image(spec)
        host_mode = get_backend(spec.backend).listens_on_all_interfaces  # else forwarded
        ensure_port_free("0.0.0.0" if host_mode else "127.0.0.1", spec.scheduler_port, "scheduler")
        ensure_port_free("127.0.0.1", spec.dashboard_port, "dashboard")
        if spec.connect_port:  # forwarded, on this machine only: token clients are on the manager host
            ensure_port_free("127.0.0.1", spec.connect_port, "Spark Connect")
        if spec.bind_address not in ("127.0.0.1", "0.0.0.0"):
            raise SwarmUnavailable(
                f"bind_address {spec.bind_address}: a swarm publishes the scheduler port on every interface "
                "of its node; leave bind_address out (the dashboard stays on 127.0.0.1)"
            )

    def _prepare(self, spec: ClusterSpec, progress: Progress) -> str | None:
        from clusterkit.images.push import push

        image = node_image(spec, progress)
        push(self.docker, image, progress)
        on_every_node(self.docker, spec, image)  # shared folders: every node has them, or nothing starts
        return image

    def _start(self, spec: ClusterSpec, image: str | None, timeout: float) -> None:
        assert image is not None
        deployment = secrets.token_hex(3)  # swarm secrets cannot change: each deployment has its own
        if security.secured(spec):
            material = security.Material.create(spec.name)
            security.save(material)
            names = stack.secret_names(spec.name, deployment)
            secret_labels = labels.cluster_labels(spec.name, spec.backend, RUNTIME)
            for file, data in material.files().items():
                if file in names:
                    self.docker.secrets.create(name=names[file], data=data, labels=secret_labels)
        document = stack.render(spec, image, deployment, scheduler_node=self._node_id())
        argv = ["docker", "stack", "deploy", "--resolve-image", "never", "-c", "-", project_name(spec.name)]
        result = subprocess.run(
            argv,
            input=yaml.safe_dump(document, sort_keys=False),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise NodeStartError(
                f"`docker stack deploy` of cluster {spec.name!r} failed: {detail[-1] if detail else result.returncode}"
            )
        self._start_forwarder(spec, image)

    def _start_forwarder(self, spec: ClusterSpec, image: str) -> None:
        """The dashboard (and a scheduler port the stack does not publish) on 127.0.0.1 of this
        machine only, through the overlay network."""
        ports = [spec.dashboard_port, *([spec.connect_port] if spec.connect_port else [])]
        if not get_backend(spec.backend).listens_on_all_interfaces:
            ports.append(spec.scheduler_port)
        command = ["python", "-m", "clusterkit.forward"]
        for port in ports:
            command += [str(port), f"{stack.SCHEDULER_HOST}:{port}"]
        self.docker.containers.run(
            image,
            command,
            name=f"{project_name(spec.name)}-forwarder",
            detach=True,
            network=project_name(spec.name),
            ports={f"{port}/tcp": ("127.0.0.1", port) for port in ports},
            labels=labels.cluster_labels(spec.name, spec.backend, RUNTIME, "forwarder"),
            restart_policy={"Name": "unless-stopped"},
        )

    def _forwarders(self, name: str) -> list[Any]:
        """The containers this machine runs beside the stack: the dashboard forwarder and the
        clients (``clusterkit run``, ``shell``, the notebook), which ``down`` removes first."""
        found = self.docker.containers.list(all=True, filters=self._filters(name), ignore_removed=True)
        return [c for c in found if c.labels.get(labels.ROLE) not in ("scheduler", "worker")]

    def _scale_to(self, name: str, replicas: int) -> None:
        # The CLI changes the replica count only (the SDK's Service.scale re-sends a partial
        # spec, which rolls every task).
        service = self._service(name, "worker").name
        argv = ["docker", "service", "scale", "--detach", f"{service}={max(0, replicas)}"]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise NodeStartError(
                f"`docker service scale` of cluster {name!r} failed: {result.stderr.strip()}"
            )

    def _reconcile(self, name: str, count: int) -> None:
        self._scale_to(name, count)  # the swarm starts or stops tasks until that many run

    def _add_workers(self, name: str, count: int) -> None:
        self._scale_to(name, self.wanted_workers(name) + count)

    def _remove_workers(self, name: str, workers: list[str]) -> None:
        # A swarm picks which tasks stop; the scheduler has retired the chosen workers already.
        self._scale_to(name, self.wanted_workers(name) - len(workers))

    def heal(self, name: str) -> list[str]:
        """Nothing to do: the swarm replaces an ended task itself (``restart_policy: any``)."""
        return []

    def wanted_workers(self, name: str) -> int:
        """The worker service's replica count: the swarm keeps it (the last ``scale``)."""
        return int(self._service(name, "worker").attrs["Spec"]["Mode"]["Replicated"]["Replicas"])

    def nodes(self, name: str) -> list[NodeState]:
        """One node per task slot the swarm keeps: its newest task, with the slot's earlier ends as restarts."""
        hosts = swarm_tasks.node_names(self.docker)
        return swarm_tasks.node_states(project_name(name), self._tasks(name), hosts)

    # -- explaining -------------------------------------------------------------------------

    def _check(self, name: str) -> None:
        rejected = [t for t in self._tasks(name) if t["Status"]["State"] == "rejected"]
        if rejected:
            raise NodeStartError(f"cluster {name!r}: the swarm rejected a task\n" + self._diagnose(name))

    def _diagnose(self, name: str) -> str:
        hosts = swarm_tasks.node_names(self.docker)
        lines = swarm_tasks.task_problems(self._tasks(name), hosts)
        if self.spec_of(name).encrypted and any(t["Status"]["State"] != "running" for t in self._tasks(name)):
            lines.append(swarm_tasks.IPSEC_HINT.format(states=swarm_tasks.ipsec_states()))
        for service in self._services(name):
            tail = swarm_tasks.service_logs(service.name, 8)
            if tail.strip():
                lines.append(f"  last log lines of {service.name}:")
                lines += [f"    {line}" for line in tail.rstrip().splitlines()]
        return "\n".join(lines)

    def status(self, name: str, **options: Any) -> ClusterStatus:
        """As every runtime, and on which swarm node each worker runs."""
        import dataclasses

        found = super().status(name, **options)
        where = swarm_tasks.worker_hosts(self._tasks(name, "worker"), swarm_tasks.node_names(self.docker))
        workers = tuple(
            dataclasses.replace(w, node=where.get(w.address.split("://")[-1].rsplit(":", 1)[0]))
            for w in found.workers
        )
        return dataclasses.replace(found, workers=workers)

    def logs(self, name: str, service: str | None = None, *, follow: bool = False, **options: Any) -> None:
        """``docker service logs`` of the scheduler and worker services (its prefix names each task)."""
        role = service if service in ("scheduler", "worker") else None
        for svc in self._services(name, role):
            subprocess.run(
                ["docker", "service", "logs", *_log_flags(follow=follow, **options), svc.name], check=False
            )

    def node_logs(
        self,
        name: str,
        *,
        since: float | str | None = None,
        tail: int | None = None,
        timestamps: bool = False,
    ) -> dict[str, str]:
        """Each task slot's log as text (``scheduler``, ``worker-<slot>``), from ``docker service logs``."""
        found: dict[str, str] = {}
        for svc in self._services(name):
            flags = _log_flags(since=since, tail=tail, timestamps=timestamps)
            result = subprocess.run(
                ["docker", "service", "logs", "--no-task-ids", *flags, svc.name],
                capture_output=True,
                text=True,
                timeout=120,
            )
            found.update(
                nodelogs.swarm_text(
                    result.stdout + result.stderr, svc.attrs["Spec"]["Labels"].get(labels.ROLE, "node")
                )
            )
        return found

    # -- removing ---------------------------------------------------------------------------

    def _other_engines(self) -> list[Any]:
        """The engines of the other swarm nodes this machine can reach (their ``clusterkit.engine`` label)."""
        from clusterkit.errors import ImageError
        from clusterkit.images.push import engine_client, swarm_nodes

        engines = []
        for node in swarm_nodes(self.docker):
            if node.engine:
                try:
                    engines.append(engine_client(node.engine))
                except ImageError:
                    continue  # plain TCP without certificates: nothing to check there
        return engines

    def _teardown(self, name: str, volumes: bool = False) -> None:
        """Services, then (once their tasks are gone) the network and the secrets; all by label.

        ``docker stack rm`` returns before the network is removed; this waits until it is.
        """
        engines = self._other_engines()  # a task's container on another node goes a moment later
        for service in self._services(name):  # nothing is restarted from now on
            service.remove()
        for container in self._forwarders(name):
            container.remove(force=True)
        # Swarm's agents stop the tasks ~3.5 s after their service went, all at once; stopping
        # them here takes ~0.3 s, workers first: a worker whose scheduler vanished first waits
        # to reconnect until its grace period ends.
        tasks = [
            c
            for engine in [self.docker, *engines]
            for c in engine.containers.list(all=True, filters=self._filters(name), ignore_removed=True)
        ]
        workers = [c for c in tasks if c.labels.get(labels.ROLE) != "scheduler"]
        with ThreadPoolExecutor(max_workers=len(tasks) + 1) as pool:
            for group in (workers, [c for c in tasks if c not in workers]):
                list(pool.map(_stop_task, group))
            list(pool.map(lambda c: quietly(lambda: c.remove(force=True)), tasks))

        def gone() -> None:
            for engine in [self.docker, *engines]:
                left = engine.containers.list(all=True, filters=self._filters(name), ignore_removed=True)
                if left:
                    raise NotReady(f"{len(left)} task containers still on a node")
            for network in self.docker.networks.list(filters=self._filters(name)):
                try:
                    network.remove()
                except APIError as e:  # in use until its endpoints are gone
                    raise NotReady(f"network {network.name} still in use") from e
            for secret in self.docker.secrets.list(filters=self._filters(name)):
                try:
                    secret.remove()
                except APIError as e:  # in use until the tasks are gone
                    raise NotReady(f"secret {secret.name} still in use") from e
            for engine in [self.docker, *engines]:  # a removed network may be listed a moment longer
                if engine.networks.list(filters=self._filters(name)):
                    raise NotReady("the cluster's network is still listed")

        try:
            wait_for(
                gone, what=f"swarm cluster {name!r} to be removed", timeout=60, interval=0.2, max_interval=1
            )
        finally:
            security.forget(name)


def _log_flags(*, follow: bool = False, **options: Any) -> list[str]:
    """``docker service logs`` flags for ``follow``, ``tail`` (default 100), ``since``, ``timestamps``."""
    since, tail = nodelogs.parse_since(options.get("since")), options.get("tail", 100)
    flags = ["--tail", "all" if tail is None else str(tail)]
    flags += ["-f"] * follow + ["-t"] * bool(options.get("timestamps"))
    return flags + (["--since", f"{since:.9f}"] if since is not None else [])


__all__ = ["SwarmRuntime"]


def _stop_task(container: Any) -> None:
    """SIGTERM a task's container and wait (briefly) until it exited; gone already is fine."""
    quietly(lambda: container.kill(signal="SIGTERM"))
    await_exit(container, timeout=STOP_GRACE)
