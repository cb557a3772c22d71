"""Honest health: what runs, compared with what the spec (or the last ``scale``) wants.

A runtime reports its nodes as :class:`NodeState` (``Runtime.nodes``) and the
worker count it was asked for (``Runtime.wanted_workers``); the backend
reports what the scheduler has registered. :func:`verdict` turns the three
into one word, written once for every runtime:

- ``healthy``: the scheduler runs and answers, every wanted worker runs and is
  registered, and no node is exited, restarting or missing;
- ``degraded``: the scheduler answers, but a worker is missing, exited,
  restarting or not registered (or more are registered than wanted);
- ``down``: the scheduler is not running or does not answer.

``clusterkit status`` exits with :data:`EXIT_CODES`: 0 only when healthy.

    >>> nodes = [NodeState("scheduler", "s", RUNNING), NodeState("worker", "w1", RUNNING)]
    >>> verdict(nodes, wanted=2, registered=1, scheduler_answers=True)[0]
    'degraded'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

HEALTHY = "healthy"
DEGRADED = "degraded"
DOWN = "down"
#: Exit codes of ``clusterkit status`` (1 and 2 keep their meaning: failure, bad input).
EXIT_CODES = {HEALTHY: 0, DEGRADED: 3, DOWN: 4}

#: What a node can be: its process runs; the engine is restarting it (a crash loop);
#: it ended (a crash, an OOM kill, ``docker kill``); or the spec wants it and it does not exist.
RUNNING = "running"
RESTARTING = "restarting"
EXITED = "exited"
MISSING = "missing"
NODE_STATES = (RUNNING, RESTARTING, EXITED, MISSING)


@dataclass(frozen=True)
class NodeState:
    """One scheduler or worker node as its runtime sees it (a container, a process, a task).

    Attributes:
        role: ``scheduler`` or ``worker``.
        name: the container's or process's name (``missing`` nodes: a placeholder).
        state: one of :data:`NODE_STATES`.
        exit_code: the last exit code, if the node has ended at least once.
        restarts: how often the engine (or the kit) restarted it.
        where: where it runs: a container id, ``pid 1234``, a swarm node.
        detail: what the runtime adds (``OOMKilled``, an engine error), or ``""``.
    """

    role: str
    name: str
    state: str
    exit_code: int | None = None
    restarts: int = 0
    where: str = ""
    detail: str = ""

    def describe(self) -> str:
        """``worker ck-w-2 exited (code 137, 1 restart)``: one line for a problem list."""
        extras = []
        if self.exit_code is not None and self.state != RUNNING:
            extras.append(f"code {self.exit_code}")
        if self.restarts:
            extras.append(f"{self.restarts} restart{'s' if self.restarts != 1 else ''}")
        if self.detail:
            extras.append(self.detail)
        return f"{self.role} {self.name} {self.state}" + (f" ({', '.join(extras)})" if extras else "")


def with_missing(nodes: Sequence[NodeState], wanted: int) -> list[NodeState]:
    """``nodes`` plus a ``missing`` worker for each one the spec wants and no runtime node stands for."""
    workers = sum(1 for n in nodes if n.role == "worker")
    missing = [
        NodeState("worker", f"(worker {workers + i + 1} of {wanted})", MISSING)
        for i in range(max(0, wanted - workers))
    ]
    return [*nodes, *missing]


def verdict(
    nodes: Sequence[NodeState] | None,
    *,
    wanted: int,
    registered: int,
    scheduler_answers: bool,
    also: Sequence[str] = (),
) -> tuple[str, list[str]]:
    """``(healthy | degraded | down, problems)`` from the runtime's nodes and the scheduler's count.

    ``also``: what the backend found wrong beside the scheduler (Spark: its Connect server
    does not answer); any of it makes a cluster degraded.

    ``nodes`` should already hold the ``missing`` ones (:func:`with_missing`); ``None``
    (a runtime that cannot list its nodes) grades the scheduler's view alone.

    >>> verdict([NodeState("scheduler", "s", EXITED, 137)], wanted=1, registered=0,
    ...         scheduler_answers=False)
    ('down', ['scheduler s exited (code 137)', 'the scheduler does not answer'])
    """
    if nodes is None:
        nodes, schedulers = [], [NodeState("scheduler", "", RUNNING)]  # only its answer is known
    else:
        schedulers = [n for n in nodes if n.role == "scheduler"]
    problems = [*also, *(n.describe() for n in nodes if n.state != RUNNING)]
    if not schedulers:
        problems.insert(0, "no scheduler node")
    if not scheduler_answers:
        problems.append("the scheduler does not answer")
    if not schedulers or not scheduler_answers or all(n.state != RUNNING for n in schedulers):
        return DOWN, problems
    if registered != wanted:
        problems.append(f"{registered} of {wanted} wanted workers registered with the scheduler")
    return (DEGRADED if problems else HEALTHY), problems
