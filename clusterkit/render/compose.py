"""A spec as a compose file: pure (spec -> dict), no Docker, no files.

``render`` is what ``clusterkit render`` prints and what ``make render``
writes under ``compose/`` (a test fails when those files are stale). The
file avoids keys that either Compose v1 (docker-compose 1.29) or v2 rejects:
no ``version``, no top-level ``name``, no ``start_interval``. The image's
entrypoint is tini, so SIGTERM reaches the node program and it stops well
within ``stop_grace_period``. Compose interpolates ``$`` in every value, so
each ``$`` of the spec (an ``env`` value, a path) is written as ``$$``: the
nodes get every value verbatim.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from clusterkit import labels, security
from clusterkit.nodes import (
    SCHEDULER_HOST,
    healthcheck,
    node_binds,
    node_commands,
    node_environment,
    node_isolation,
    worker_memory_limit,
)
from clusterkit.spec import ClusterSpec

#: Seconds a node gets between SIGTERM and SIGKILL.
STOP_GRACE = 5
#: How often the engine probes a node (each probe starts a Python in the container).
PROBE_INTERVAL = "5s"


def project_name(cluster: str) -> str:
    """The compose project (and network) of cluster ``cluster``."""
    return f"clusterkit-{cluster}"


def _escape(value: Any) -> Any:
    """Every ``$`` as ``$$``, in every string of the document (Compose reads ``$$`` as ``$``).

    >>> _escape({"A": "abc$def", "B": ["x$$y"]})
    {'A': 'abc$$def', 'B': ['x$$$$y']}
    """
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {_escape(k): _escape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape(v) for v in value]
    return value


def published(bind: str, port: int) -> str:
    """A ``ports:`` entry on ``bind`` (IPv6 in brackets).

    >>> published("::1", 8786), published("127.0.0.1", 8786)
    ('[::1]:8786:8786', '127.0.0.1:8786:8786')
    """
    host = f"[{bind}]" if ":" in bind else bind
    return f"{host}:{port}:{port}"


def render(
    spec: ClusterSpec,
    image: str,
    secrets_dir: str | None = None,
    extra_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The compose file for ``spec`` as a dict.

    With ``security: tls``, ``secrets_dir`` is the folder of the cluster's
    credentials on this machine (:mod:`clusterkit.security`); the nodes get
    them as compose secrets (files under ``/run/secrets``), as on a swarm.
    ``extra_labels`` go on every container and the network (the owner of a
    cluster being started: :func:`clusterkit.records.owner_labels`).

    >>> from clusterkit.spec import resolve_spec
    >>> doc = render(resolve_spec(overrides={"workers": 3}, environ={}), "img:abc")
    >>> doc["services"]["worker"]["scale"], doc["services"]["scheduler"]["ports"][0]
    (3, '127.0.0.1:8786:8786')
    """
    secured = security.secured(spec)
    if secured and not secrets_dir:
        raise ValueError("a spec with security: tls needs the folder of its credentials (secrets_dir)")
    document: dict[str, Any] = {
        "services": {SCHEDULER_HOST: _scheduler(spec, image), "worker": _worker(spec, image)},
        "networks": {
            "cluster": {
                "name": project_name(spec.name),
                "labels": labels.cluster_labels(spec.name, spec.backend, "compose"),
            }
        },
    }
    if secured:
        document["secrets"] = {f: {"file": f"{secrets_dir}/{f}"} for f in security.NODE_FILES}
    if extra_labels:
        for svc in document["services"].values():
            svc["labels"].update(extra_labels)
        document["networks"]["cluster"]["labels"].update(extra_labels)
    return _escape(document)


def _service(spec: ClusterSpec, image: str, role: str) -> dict[str, Any]:
    """What the scheduler and worker services share: image, command, restarts, labels, probe."""
    command = node_commands(spec)[role]
    env = node_environment(spec)
    svc: dict[str, Any] = {
        "image": image,
        "command": command["command"],
        "restart": "unless-stopped",
        "stop_grace_period": f"{STOP_GRACE}s",
        "networks": ["cluster"],
        "labels": labels.cluster_labels(spec.name, spec.backend, "compose", role),
        # Nothing waits on a probe (workers wait for the scheduler's port
        # themselves, `up` waits for the registered-worker count): probes only
        # feed `status`, so they run seldom and leave the CPU to starting nodes.
        "healthcheck": healthcheck(command["probe"], PROBE_INTERVAL),
    }
    if env:
        svc["environment"] = dict(sorted(env.items()))
    isolation = node_isolation(spec, role)
    svc["tmpfs"] = [f"{path}:{options}" for path, options in isolation.pop("tmpfs").items()]
    svc.update(isolation)
    binds = node_binds(spec)
    if binds:  # the shared folders at the same path as on this host (clusterkit.mounts)
        svc["volumes"] = [{"type": "bind", "source": s, "target": t, "read_only": ro} for s, t, ro in binds]
    if security.secured(spec):
        svc["secrets"] = list(security.NODE_FILES)
    return svc


def _scheduler(spec: ClusterSpec, image: str) -> dict[str, Any]:
    """The scheduler service: its host name, the spec on its label, its published ports."""
    scheduler = _service(spec, image, "scheduler")
    scheduler["hostname"] = SCHEDULER_HOST
    scheduler["labels"][labels.SPEC] = json.dumps(spec.to_dict(), sort_keys=True)
    scheduler["ports"] = [
        published(spec.bind_address, spec.scheduler_port),
        published(spec.bind_address, spec.dashboard_port),
        *([published(spec.bind_address, spec.connect_port)] if spec.connect_port else []),
    ]
    return scheduler


def _worker(spec: ClusterSpec, image: str) -> dict[str, Any]:
    """The worker service: its count and limits."""
    worker = _service(spec, image, "worker")
    # Started right after the scheduler, not once it is healthy: a worker waits for
    # the scheduler's port itself (`clusterkit.node`), so no health gate holds it back.
    worker["depends_on"] = [SCHEDULER_HOST]
    worker["scale"] = spec.workers
    worker["cpus"] = float(spec.cores)
    worker["mem_limit"] = worker_memory_limit(spec)
    return worker


def dump(document: dict[str, Any]) -> str:
    """YAML text of a rendered file, with a header that says who wrote it."""
    header = "# Written by `clusterkit render`; do not edit by hand (CI compares it).\n"
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
