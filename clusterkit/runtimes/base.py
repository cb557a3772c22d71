"""The lifecycle every runtime shares, written once; a runtime says only what differs.

A runtime (local processes, compose, testcontainers, swarm) turns a
``ClusterSpec`` into running nodes and back. The steps that are the same
everywhere live here: refuse a name in use, prepare (image, ports), start,
wait until every worker is registered, remove what started when that fails,
read status, reconcile the worker count. A runtime supplies the verbs in the
"what each runtime says" block: start the nodes, add or remove workers, find
them, remove them, and explain a failure; a container runtime also says where a client container
runs (:meth:`Runtime.client_place`): distributed's ``SpecCluster`` over its ``ProcessInterface``.
The checks around a start (memory, exposure, readiness) are :mod:`clusterkit.runtimes.checks`.

Honest status and self-healing are written here once too: a runtime reports
its nodes (:meth:`Runtime.nodes`, as :class:`~clusterkit.health.NodeState`)
and can start an ended one again (:meth:`Runtime._restart`); :meth:`Runtime.status`
compares them and the scheduler's view with the wanted count
(:meth:`Runtime.wanted_workers`) into ``healthy | degraded | down``, and
:meth:`Runtime.heal` (run by ``status`` and by :mod:`clusterkit.supervisor`)
brings the cluster back to what is wanted.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from clusterkit import health, records
from clusterkit.errors import ClientStartError, ClusterExists, ClusterNotFound
from clusterkit.health import NodeState
from clusterkit.progress import Event, Progress, quiet
from clusterkit.runtimes.checks import exposure, scheduler_view, wait_for_workers
from clusterkit.spec import ClusterSpec, parse_count
from clusterkit.status import ClusterStatus

if TYPE_CHECKING:
    from clusterkit.client_env import ClientPlace


class Runtime:
    """Start, inspect, scale and stop clusters of one kind (processes, containers)."""

    #: The runtime's name, as ``--runtime`` spells it.
    name = ""
    _docker: Any = None

    @property
    def docker(self) -> Any:
        """The Docker engine's SDK client, made on first use (the local runtime never needs one)."""
        if self._docker is None:
            from clusterkit.engine import docker_client

            self._docker = docker_client()
        return self._docker

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

    def logs(self, name: str, service: str | None = None, *, follow: bool = False, **options: Any) -> None:
        """Print the nodes' logs, each line after its node (``service``: scheduler or worker), as :meth:`node_logs`."""
        raise NotImplementedError

    def node_logs(
        self, name: str, *, since: Any = None, tail: int | None = None, timestamps: bool = False
    ) -> dict[str, str]:
        """Each node's log as text by short name (``scheduler``, ``worker-1``): :mod:`clusterkit.runtimes.nodelogs`."""
        raise NotImplementedError

    #: Clients (``clusterkit run``, ``shell``, a notebook) run in containers beside this
    #: runtime's clusters: :meth:`client_place` says where.
    runs_clients = False

    def client_place(self, name: str) -> ClientPlace:
        """Where a client container of cluster ``name`` runs (``clusterkit run``, ``shell``, the notebook).

        The image, network and scheduler host the client uses, the cluster's
        labels (so ``down`` and ``gc`` remove it with the cluster), its dashboard
        link and credentials. Only a runtime with ``runs_clients`` has them; any
        other has no image or network to run a client in and raises ``ClientStartError``.
        """
        raise ClientStartError(
            f"cluster {name!r} runs on the {self.name} runtime, which has no image or network to run "
            "a client in; run the program directly in this environment instead"
        )

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

    def exists(self, name: str) -> bool:
        """Anything of cluster ``name`` is left (``down`` removes a half-started one too)."""
        return name in self.clusters()

    def _check(self, name: str) -> None:
        """Raise at once (``NodeStartError``) if a node has ended for good."""

    def _diagnose(self, name: str) -> str:
        """What went wrong, for a time-out message: ended nodes, exit codes, log tails."""
        return ""

    # -- health: what each runtime says ----------------------------------------------

    def nodes(self, name: str) -> list[NodeState]:
        """Every scheduler and worker node of cluster ``name`` as this runtime sees it now.

        One :class:`~clusterkit.health.NodeState` per node the runtime knows
        (a container, a process, a swarm task that should run): ``role``
        (``scheduler`` or ``worker``), ``name``, ``state`` (``running``,
        ``restarting``, ``exited`` or ``missing``), ``exit_code`` (the last
        one, ``None`` while running), ``restarts`` (by the engine and by the
        kit), ``where`` it runs (container id, ``pid N``, swarm node) and a
        ``detail`` (``OOMKilled``, an engine error). Workers the wanted count
        asks for and no node stands for are added as ``missing`` by the base;
        a runtime lists only what it has. Helpers (a port forwarder) are not
        nodes. :meth:`status` computes the verdict from this and from what
        the scheduler reports; a runtime never grades its own health.
        """
        raise NotImplementedError

    def _restart(self, name: str, node: NodeState) -> None:
        """Run an ``exited`` node of cluster ``name`` again, under the same name and in the same place.

        Runtimes whose engine replaces ended nodes itself (swarm's tasks) need
        not implement it: :meth:`heal` then leaves restarting to the engine.
        """
        raise NotImplementedError

    def wanted_workers(self, name: str) -> int:
        """The worker count cluster ``name`` should have: the last ``scale``, else its spec.

        Read from this machine's record (:mod:`clusterkit.records`); a runtime
        whose engine keeps the count itself (a swarm service's replicas) says so here.
        """
        wanted = records.load(name).get("wanted")
        return int(wanted) if wanted is not None else self.spec_of(name).workers

    # -- the shared lifecycle -------------------------------------------------------

    def up(
        self,
        spec: ClusterSpec,
        *,
        timeout: float = 120,
        keep: bool = False,
        progress: Progress = quiet,
        held: bool = False,
    ) -> ClusterStatus:
        """Start ``spec`` and return once all its workers are registered.

        On failure (or Ctrl-C, or SIGTERM: :mod:`clusterkit.interrupts`) everything
        started is removed again, unless ``keep``. Every resource carries this
        process as its owner; ``held`` says the owner keeps the cluster for its
        whole life (a Python ``Cluster``), so ``clusterkit gc`` removes it once
        the owner is gone, as it removes one whose ``up`` never finished.
        """
        if spec.name in self.clusters():
            raise ClusterExists(
                f"cluster {spec.name!r} is already up ({self.name}); run `clusterkit down --name "
                f"{spec.name}` first or choose another --name"
            )
        self._preflight(spec)
        exposed = exposure(spec)
        if exposed:
            progress(Event("warning", exposed))
        progress(Event("image", f"preparing {spec.backend} cluster {spec.name!r} ({self.name})"))
        image = self._prepare(spec, progress)
        progress(Event("start", f"starting the {spec.backend} scheduler and {spec.workers} workers"))
        try:
            records.forget(spec.name)  # a record left by a cluster of this name that is gone
            records.update(
                spec.name,
                runtime=self.name,
                owner=records.owner(getattr(self, "owner_pid", None)),
                ready=False,
                held=held,
                wanted=spec.workers,
            )
            deadline = time.monotonic() + timeout  # one deadline for starting and waiting
            self._start(spec, image, timeout)
            client = self.client_spec(spec.name)  # read once: this command made the cluster
            progress(Event("wait", f"waiting for {spec.workers} workers to register"))
            left = max(1.0, deadline - time.monotonic())
            self.wait(spec.name, spec.workers, left, client=client, progress=progress)
        except BaseException:
            if not keep:
                self.remove_all(spec.name)
            raise
        _record_ready(client)
        progress(Event("ready", f"cluster {spec.name!r} is ready"))
        return self.status(spec.name, client=client)

    def down(self, name: str, *, volumes: bool = False) -> None:
        """Stop cluster ``name`` and remove everything it started."""
        if not self.exists(name):
            raise ClusterNotFound(
                f"no {self.name} cluster named {name!r}; `clusterkit status` lists what runs"
            )
        self.remove_all(name, volumes)

    def remove_all(self, name: str, volumes: bool = False) -> None:
        """Stop the reconcilers, remove everything, forget the record."""
        from clusterkit import supervisor

        try:
            records.update(name, stopping=True)  # waits for a repair in progress to finish
        except OSError:
            pass  # no writable run dir: nothing can be reconciling from it either
        # `stopping` is set: no repair starts anything now, so the supervisor ends meanwhile.
        supervisor_ended = supervisor.stop_detached(name)
        self._teardown(name, volumes)
        supervisor_ended()
        records.forget(name)

    def status(self, name: str, *, repair: bool = False, client: ClusterSpec | None = None) -> ClusterStatus:
        """The cluster now: the scheduler's view compared with the nodes and the wanted count.

        ``health`` is ``healthy``, ``degraded`` or ``down`` (:mod:`clusterkit.health`),
        with the ``nodes``, the ``wanted`` count and the ``problems``. A scheduler
        that does not answer gives ``down``, not an exception. ``repair=True``
        then runs :meth:`heal` and lists what it did in ``repairs``; the verdict
        is what was found before repairing. ``client``: the client spec, when the
        caller has it (``up``), so it is not read back.
        """
        spec = client or self.client_spec(name)
        try:
            nodes: list[NodeState] | None = self.nodes(name)
        except NotImplementedError:
            nodes = None  # a runtime that cannot list its nodes: grade the scheduler's view alone
        wanted = self.wanted_workers(name)
        found, silent = scheduler_view(spec)
        listed = health.with_missing(nodes, wanted) if nodes is not None else None
        seen = {"registered": len(found.alive_workers), "also": found.problems}  # also: Spark's Connect
        verdict, problems = health.verdict(listed, wanted=wanted, scheduler_answers=not silent, **seen)
        if silent:
            problems.append(
                f"{silent}; `clusterkit logs --name {name}` shows why, `clusterkit down --name {name}` "
                "removes the cluster"
            )
        repairs = self.heal(name) if repair else []
        return dataclasses.replace(
            found,
            name=name,
            runtime=self.name,
            health=verdict,
            wanted=wanted,
            nodes=tuple(listed or ()),
            problems=tuple(problems),
            repairs=tuple(repairs),
        )

    def heal(self, name: str) -> list[str]:
        """Bring cluster ``name`` back to what is wanted; returns what was done, one line each.

        A scheduler that ended is started again first; then ended workers,
        up to the wanted count; then workers are added for those that are
        gone. Nothing happens while ``up`` or ``down`` is in progress, or
        while another process is repairing the same cluster. Restarting
        (crash-looping) nodes are left to the engine's restart policy.
        """
        from filelock import Timeout

        try:
            with records.locked(name, timeout=0):
                record = records.load(name)
                if record.get("stopping") or record.get("ready") is False:
                    return []  # being removed, or still being started
                return self._heal(name)
        except Timeout:
            return []  # another process is repairing it right now

    def _heal(self, name: str) -> list[str]:
        try:
            nodes = self.nodes(name)
        except NotImplementedError:
            return []
        done: list[str] = []

        def restart(node: NodeState) -> None:
            try:
                self._restart(name, node)
            except NotImplementedError:
                return
            records.count_restart(name, node.name)
            done.append(f"{node.describe()}: started it again")

        for node in nodes:
            if node.role == "scheduler" and node.state == health.EXITED:
                restart(node)
        if not any(n.role == "scheduler" for n in nodes):
            return done  # nothing to add workers to
        wanted = self.wanted_workers(name)
        workers = [n for n in nodes if n.role == "worker"]
        active = sum(1 for n in workers if n.state in (health.RUNNING, health.RESTARTING))
        for node in [n for n in workers if n.state == health.EXITED][: max(0, wanted - active)]:
            restart(node)
            active += 1
        if active < wanted and len(workers) < wanted:
            self._add_workers(name, wanted - max(active, len(workers)))
            done.append(f"added {wanted - max(active, len(workers))} worker(s) to reach the wanted {wanted}")
        return done

    def scale(
        self, name: str, workers: int, *, timeout: float = 120, wait: bool = True
    ) -> ClusterStatus | None:
        """Reconcile to exactly ``workers`` workers; the scheduler keeps running.

        ``wait=False`` returns once the nodes are started or removed (adaptive
        scaling polls the scheduler itself).
        """
        count = parse_count("workers", workers)
        with records.locked(name):  # the new count (status and repairs read it) and its workers at once
            records.update(name, wanted=count)
            self._reconcile(name, count)
        if not wait:
            return None
        self.wait(name, count, timeout)
        return self.status(name)

    def _reconcile(self, name: str, count: int) -> None:
        """Start or remove workers until ``count`` run (a swarm sets its service's replicas instead)."""
        current = self.worker_names(name)
        if count > len(current):
            self._add_workers(name, count - len(current))
        elif count < len(current):
            self._remove_workers(name, current[count:])

    def remove_workers(self, name: str, workers: list[str]) -> None:
        """Remove the named workers (those the scheduler chose to retire)."""
        current = self.worker_names(name)
        doomed = [w for w in workers if w in set(current)]
        with records.locked(name):
            records.update(name, wanted=max(0, len(current) - len(doomed)))
            self._remove_workers(name, doomed)

    def wait(
        self,
        name: str,
        expected: int,
        timeout: float,
        client: ClusterSpec | None = None,
        progress: Progress = quiet,
    ) -> int:
        """Wait until the scheduler of ``name`` sees exactly ``expected`` workers (``progress``
        hears each new count)."""
        return wait_for_workers(
            client or self.client_spec(name),
            expected=expected,
            timeout=timeout,
            check=lambda: self._check(name),
            diagnose=lambda: self._diagnose(name),
            progress=progress,
        )


def _record_ready(client: ClusterSpec) -> None:
    """``up`` finished: say so, and how this host reaches the cluster (:func:`records.reached_at`)."""
    records.update(
        client.name,
        ready=True,
        reach={
            "backend": client.backend,
            "host": client.scheduler_host,
            "scheduler_port": client.scheduler_port,
            "dashboard_port": client.dashboard_port,
        },
    )
