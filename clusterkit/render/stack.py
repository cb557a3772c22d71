"""A spec as a swarm stack file: pure (spec -> dict), for ``docker stack deploy``.

Version 3.8 of the format, which Docker 20.10's CLI and newer accept:
resources, replicas and restarts under ``deploy`` (the stack schema has no
``cpus``, ``mem_limit``, ``scale`` or ``depends_on`` conditions: nodes wait for
each other by protocol, with a deadline); the scheduler on a manager, workers
spread over the nodes; the scheduler port in ``mode: host`` on the
scheduler's node (a swarm cannot bind a published port to 127.0.0.1, so the
port is protected by TLS instead; a scheduler that binds only its overlay
address, which a host-mode port cannot reach, is forwarded by the runtime),
and the dashboard not published at all: the runtime forwards it to
127.0.0.1 of this machine. Both services resolve by
DNS round robin (``endpoint_mode: dnsrr``): a worker reaches the scheduler's
task directly and registers with its own overlay address, never a service VIP
(whose load balancer also drops idle connections).
"""

from __future__ import annotations

import json
from typing import Any

from clusterkit import labels, security
from clusterkit.backends import get_backend
from clusterkit.nodes import (
    SCHEDULER_HOST,
    healthcheck,
    node_binds,
    node_commands,
    node_environment,
    worker_memory_limit,
)
from clusterkit.render.compose import STOP_GRACE, project_name
from clusterkit.spec import ClusterSpec

VERSION = "3.8"


def secret_names(cluster: str, deployment: str) -> dict[str, str]:
    """Swarm secret names of one deployment (swarm secrets cannot change: a new ``up`` makes new ones)."""
    return {
        name: f"{project_name(cluster)}-{deployment}-{name.removeprefix('clusterkit-')}"
        for name in security.NODE_FILES
    }


def render(
    spec: ClusterSpec, image: str, deployment: str = "example", scheduler_node: str | None = None
) -> dict[str, Any]:
    """The stack file for ``spec`` (``security`` and the other fields as given).

    ``deployment`` names this deployment's secrets; ``scheduler_node`` (a node
    ID) pins the scheduler to that manager, the one whose 127.0.0.1 the client uses.

    >>> from clusterkit.spec import ClusterSpec
    >>> doc = render(ClusterSpec(name="lab", workers=3, security="tls"), "img:abc")
    >>> doc["services"]["worker"]["deploy"]["replicas"], doc["services"]["scheduler"]["ports"][0]["mode"]
    (3, 'host')
    """
    names = secret_names(spec.name, deployment)
    document: dict[str, Any] = {
        "version": VERSION,
        "services": {
            SCHEDULER_HOST: _scheduler(spec, image, names, scheduler_node),
            "worker": _worker(spec, image, names),
        },
        "networks": {"cluster": _network(spec)},
    }
    if security.secured(spec):  # created by the runtime (labelled, removed by `down`), never written here
        document["secrets"] = {names[f]: {"external": True} for f in security.NODE_FILES}
    return verbatim(document)


def _service(spec: ClusterSpec, image: str, role: str, names: dict[str, str]) -> dict[str, Any]:
    """What the scheduler and worker services share: image, command, labels, probe, restarts, secrets."""
    command = node_commands(spec)[role]
    env = node_environment(spec, scratch=False)
    role_labels = labels.cluster_labels(spec.name, spec.backend, "swarm", role)
    svc: dict[str, Any] = {
        "image": image,
        "command": command["command"],
        "init": True,
        "stop_grace_period": f"{STOP_GRACE}s",
        "networks": ["cluster"],
        "labels": dict(role_labels),  # on every task's container
        "healthcheck": healthcheck(command["probe"], "2s" if role == "scheduler" else "5s"),
        "deploy": {
            "labels": dict(role_labels),  # on the service
            "endpoint_mode": "dnsrr",
            "restart_policy": {"condition": "any", "delay": "1s"},
        },
    }
    if env:
        svc["environment"] = dict(sorted(env.items()))
    binds = node_binds(spec)
    if binds:  # the same path on every node: `up` checked that each has it
        svc["volumes"] = [{"type": "bind", "source": s, "target": t, "read_only": ro} for s, t, ro in binds]
    if security.secured(spec):
        uid = str(security.NODE_UID)  # the node user owns its secrets' files
        svc["secrets"] = [
            {"source": names[f], "target": f, "uid": uid, "gid": uid, "mode": 0o400}
            for f in security.NODE_FILES
        ]
    return svc


def _scheduler(
    spec: ClusterSpec, image: str, names: dict[str, str], scheduler_node: str | None
) -> dict[str, Any]:
    """The scheduler service: on a manager (that one, if given), the spec on its label, its port."""
    scheduler = _service(spec, image, "scheduler", names)
    scheduler["hostname"] = SCHEDULER_HOST
    scheduler["deploy"]["labels"][labels.SPEC] = json.dumps(spec.to_dict(), sort_keys=True)
    scheduler["deploy"]["replicas"] = 1
    constraints = ["node.role == manager"] + ([f"node.id == {scheduler_node}"] if scheduler_node else [])
    scheduler["deploy"]["placement"] = {"constraints": constraints}
    if get_backend(spec.backend).listens_on_all_interfaces:
        port = {"target": spec.scheduler_port, "published": spec.scheduler_port, "protocol": "tcp"}
        scheduler["ports"] = [{**port, "mode": "host"}]
    return scheduler


def _worker(spec: ClusterSpec, image: str, names: dict[str, str]) -> dict[str, Any]:
    """The worker service: replicas, resources, spread over the nodes."""
    worker = _service(spec, image, "worker", names)
    worker["deploy"]["replicas"] = spec.workers
    worker["deploy"]["resources"] = {
        "limits": {"cpus": f"{float(spec.cores)}", "memory": f"{worker_memory_limit(spec) // 2**20}M"},
        "reservations": {"memory": f"{spec.memory // 2**20}M"},
    }
    placement: dict[str, Any] = {"preferences": [{"spread": "node.id"}]}
    if spec.max_replicas_per_node:
        placement["max_replicas_per_node"] = spec.max_replicas_per_node
    worker["deploy"]["placement"] = placement
    return worker


def _network(spec: ClusterSpec) -> dict[str, Any]:
    """The cluster's overlay network: attachable (clients and the forwarder join it), encrypted on request."""
    network: dict[str, Any] = {
        "name": project_name(spec.name),
        "driver": "overlay",
        "attachable": True,  # `clusterkit run` and the dashboard forwarder join it
        "labels": labels.cluster_labels(spec.name, spec.backend, "swarm"),
    }
    if spec.encrypted:
        network["driver_opts"] = {"encrypted": ""}
    return network


def verbatim(value: Any) -> Any:
    """``$`` doubled in every string, so the tool's variable interpolation gives each value back as is."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {k: verbatim(v) for k, v in value.items()}
    if isinstance(value, list):
        return [verbatim(v) for v in value]
    return value
