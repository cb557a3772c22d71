"""Reading a swarm: a cluster's services and tasks found by label, as nodes, and why tasks do not run.

The read side of the swarm runtime (:mod:`clusterkit.runtimes.swarm`), which
deploys and removes; nothing here changes the swarm. A task is a service's
task as the engine lists it, with the role of its service added as ``_role``.
"""

from __future__ import annotations

import subprocess
from typing import Any

from clusterkit import labels
from clusterkit.errors import ClusterNotFound
from clusterkit.health import EXITED, RESTARTING, RUNNING, NodeState

RUNTIME = "swarm"
#: Task states after which a task will not run again.
ENDED = ("complete", "failed", "shutdown", "rejected", "orphaned", "remove")

IPSEC_HINT = (
    "  the overlay is encrypted (IPsec), and tasks on other nodes do not come up: IPsec between the nodes "
    "may be unavailable here ({states}); run without --encrypted, or load the kernel's esp4 module and "
    "allow IP protocol 50 between the nodes"
)


def ipsec_states() -> str:
    """How many IPsec security associations this machine has (an encrypted overlay makes some)."""
    try:
        out = subprocess.run(["ip", "xfrm", "state"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "`ip xfrm state` could not run"
    if out.returncode != 0:
        return f"`ip xfrm state`: {out.stderr.strip() or out.returncode}"
    count = sum(1 for line in out.stdout.splitlines() if line.startswith("src "))
    return f"`ip xfrm state` lists {count} security associations"


def filters(name: str | None = None, role: str | None = None) -> dict[str, list[str]]:
    """The engine's label filter for this runtime's resources (of cluster ``name``, in ``role``)."""
    wanted = {"runtime": RUNTIME}
    if name:
        wanted["cluster"] = name
    if role:
        wanted["role"] = role
    return {"label": labels.selector(**wanted)}


def services(docker: Any, name: str | None = None, role: str | None = None) -> list[Any]:
    """The swarm services of cluster ``name`` (every cluster's without it), of one ``role``."""
    return docker.services.list(filters=filters(name, role))


def service(docker: Any, name: str, role: str) -> Any:
    """The ``role`` service of cluster ``name``; ``ClusterNotFound`` if there is none."""
    found = services(docker, name, role)
    if not found:
        raise ClusterNotFound(
            f"no swarm cluster named {name!r}; start one with `clusterkit up --runtime swarm`"
        )
    return found[0]


def tasks(docker: Any, name: str, role: str | None = None) -> list[dict[str, Any]]:
    """Every task of the services of cluster ``name``, each with its service's role as ``_role``."""
    found = []
    for svc in services(docker, name, role):
        role_of = svc.attrs["Spec"]["Labels"].get(labels.ROLE, "")
        found += [{**t, "_role": role_of} for t in svc.tasks()]
    return found


def node_names(docker: Any) -> dict[str, str]:
    """Node ID -> how status shows it: the host name, with the ID where host names repeat."""
    nodes = {n.id: n.attrs["Description"]["Hostname"] for n in docker.nodes.list()}
    repeated = {h for h in nodes.values() if list(nodes.values()).count(h) > 1}
    return {i: f"{h}/{i[:8]}" if h in repeated else h for i, h in nodes.items()}


def node_states(project: str, found: list[dict[str, Any]], hosts: dict[str, str]) -> list[NodeState]:
    """One node per task slot the swarm keeps: its newest task, with the slot's earlier ends as restarts.

    ``project`` is the stack's name (tasks show as ``<project>_<role>.<slot>``),
    ``hosts`` the swarm nodes' names by ID (:func:`node_names`).
    """
    slots: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for task in found:
        slots.setdefault((task["_role"], int(task.get("Slot") or 0)), []).append(task)
    nodes = []
    for (role, slot), history in sorted(slots.items()):
        history.sort(key=lambda t: t["CreatedAt"])
        newest = history[-1]
        if newest["DesiredState"] != "running":
            continue  # a slot scaled away
        state = newest["Status"]["State"]
        container = newest["Status"].get("ContainerStatus") or {}
        nodes.append(
            NodeState(
                role,
                f"{project}_{role}.{slot}",
                RUNNING if state == "running" else (EXITED if state in ENDED else RESTARTING),
                exit_code=container.get("ExitCode") if state != "running" else None,
                restarts=len(history) - 1,
                where=hosts.get(newest.get("NodeID", ""), ""),
                detail=newest["Status"].get("Err", ""),
            )
        )
    return nodes


def task_problems(found: list[dict[str, Any]], hosts: dict[str, str]) -> list[str]:
    """A line for each task that is not running and did not end as asked (for a time-out message)."""
    lines = []
    for task in found:
        state, desired = task["Status"]["State"], task["DesiredState"]
        if state == "running" or (state in ENDED and desired != "running" and not task["Status"].get("Err")):
            continue
        where = hosts.get(task.get("NodeID", ""), "no node")
        error = task["Status"].get("Err") or task["Status"].get("Message", "")
        lines.append(f"  {task['_role']} task on {where}: {state} ({error})")
    return lines


def worker_hosts(found: list[dict[str, Any]], hosts: dict[str, str]) -> dict[str, str]:
    """Overlay address -> the swarm node a worker task runs on."""
    where: dict[str, str] = {}
    for task in found:
        for attachment in task.get("NetworksAttachments") or []:
            for address in attachment.get("Addresses") or []:
                where[address.split("/")[0]] = hosts.get(task.get("NodeID", ""), "")
    return where


def service_logs(name: str, tail: int) -> str:
    """The last ``tail`` log lines of swarm service ``name`` (its tasks' output and errors)."""
    result = subprocess.run(
        ["docker", "service", "logs", "--no-task-ids", "--tail", str(tail), name],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.stdout + result.stderr
