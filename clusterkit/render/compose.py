"""A spec as a compose file: pure (spec -> dict), no Docker, no files.

``render`` is what ``clusterkit render`` prints and what ``make render``
writes under ``compose/`` (a test fails when those files are stale). The
file avoids keys that either Compose v1 (docker-compose 1.29) or v2 rejects:
no ``version``, no top-level ``name``, no ``start_interval``. The image's
entrypoint is tini, so SIGTERM reaches the node program and it stops well
within ``stop_grace_period``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from clusterkit import labels
from clusterkit.nodes import SCHEDULER_HOST, node_commands, node_environment, worker_memory_limit
from clusterkit.spec import ClusterSpec

#: Seconds a node gets between SIGTERM and SIGKILL.
STOP_GRACE = 5


def project_name(cluster: str) -> str:
    """The compose project (and network) of cluster ``cluster``."""
    return f"clusterkit-{cluster}"


def _healthcheck(test: list[str], interval: str) -> dict[str, Any]:
    return {
        "test": ["CMD", *test],
        "interval": interval,
        "timeout": "5s",
        "retries": 3,
        "start_period": "60s",
    }


def render(spec: ClusterSpec, image: str) -> dict[str, Any]:
    """The compose file for ``spec`` as a dict.

    >>> from clusterkit.spec import resolve_spec
    >>> doc = render(resolve_spec(overrides={"workers": 3}, environ={}), "clusterkit/dask:abc")
    >>> doc["services"]["worker"]["scale"], doc["services"]["scheduler"]["ports"][0]
    (3, '127.0.0.1:8786:8786')
    """
    commands = node_commands(spec)
    env = node_environment(spec)

    def service(role: str) -> dict[str, Any]:
        svc: dict[str, Any] = {
            "image": image,
            "command": commands[role]["command"],
            "restart": "unless-stopped",
            "stop_grace_period": f"{STOP_GRACE}s",
            "networks": ["cluster"],
            "labels": labels.cluster_labels(spec.name, spec.backend, "compose", role),
            # Workers start once the scheduler is healthy, so its probe runs often;
            # nothing waits on a worker's health, so theirs cost less CPU.
            "healthcheck": _healthcheck(commands[role]["probe"], "1s" if role == "scheduler" else "5s"),
        }
        if env:
            svc["environment"] = dict(sorted(env.items()))
        return svc

    scheduler = service("scheduler")
    scheduler["hostname"] = SCHEDULER_HOST
    scheduler["labels"][labels.SPEC] = json.dumps(spec.to_dict(), sort_keys=True)
    bind = spec.bind_address
    scheduler["ports"] = [
        f"{bind}:{spec.scheduler_port}:{spec.scheduler_port}",
        f"{bind}:{spec.dashboard_port}:{spec.dashboard_port}",
    ]
    worker = service("worker")
    worker["depends_on"] = {"scheduler": {"condition": "service_healthy"}}
    worker["scale"] = spec.workers
    worker["cpus"] = float(spec.cores)
    worker["mem_limit"] = worker_memory_limit(spec)
    return {
        "services": {SCHEDULER_HOST: scheduler, "worker": worker},
        "networks": {
            "cluster": {
                "name": project_name(spec.name),
                "labels": labels.cluster_labels(spec.name, spec.backend, "compose"),
            }
        },
    }


def dump(document: dict[str, Any]) -> str:
    """YAML text of a rendered file, with a header that says who wrote it."""
    header = "# Written by `clusterkit render`; do not edit by hand (CI compares it).\n"
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def write_default_files(folder: Path) -> list[Path]:
    """Write ``<folder>/<backend>.yml`` for each backend's default spec (``make render``)."""
    from clusterkit import images
    from clusterkit.spec import BACKENDS, resolve_spec

    written = []
    for backend in BACKENDS:
        spec = resolve_spec(overrides={"backend": backend}, environ={})
        path = folder / f"{backend}.yml"
        path.write_text(dump(render(spec, images.image_tag(backend))))
        written.append(path)
    return written
