"""What a node container runs: its command, health probe, environment and limits.

One description shared by every container runtime (the compose file, the
testcontainers containers and the swarm stack), so a port, a command
or a probe is written once.
"""

from __future__ import annotations

from typing import Any

from clusterkit.backends import get_backend
from clusterkit.security import NODE_SECRETS_DIR, secured
from clusterkit.spec import ClusterSpec, format_memory

#: The scheduler's host name on a cluster network; workers reach it by this name.
SCHEDULER_HOST = "scheduler"


def node_commands(spec: ClusterSpec, scheduler_host: str = SCHEDULER_HOST) -> dict[str, dict[str, list[str]]]:
    """Commands and health probes of the scheduler and a worker, inside the image.

    >>> from clusterkit.spec import ClusterSpec
    >>> spec = ClusterSpec(name="x")
    >>> worker = node_commands(spec)["worker"]["command"]
    >>> worker[3:5], worker[5] == spec.backend, worker[6:8]
    (['worker', '--backend'], True, ['--scheduler', 'scheduler:8786'])
    """
    b, p, d = spec.backend, str(spec.scheduler_port), str(spec.dashboard_port)
    node = ["python", "-m", "clusterkit.node"]  # = `clusterkit node`, without the CLI's imports
    scheduler = [*node, "scheduler", "--backend", b, "--port", p, "--dashboard-port", d]
    worker = [*node, "worker", "--backend", b, "--scheduler", f"{scheduler_host}:{p}"]
    worker += ["--cores", str(spec.cores), "--memory", format_memory(spec.memory)]
    probe = ["python", "-m", "clusterkit.probe"]  # = `clusterkit probe`, without the CLI's imports
    scheduler_probe = [*probe, "scheduler", "--backend", b, "--ui", f"127.0.0.1:{d}"]
    worker_probe = [*probe, "worker", "--backend", b, "--ui", f"{scheduler_host}:{d}"]
    worker_ui = get_backend(b).worker_ui_port
    if worker_ui:
        worker_probe += ["--worker-ui", f"127.0.0.1:{worker_ui}"]
    if secured(spec):  # the credentials arrive as files (swarm secrets) in this folder
        scheduler += ["--secrets", NODE_SECRETS_DIR]
        worker += ["--secrets", NODE_SECRETS_DIR]
    return {
        "scheduler": {"command": scheduler, "probe": scheduler_probe},
        "worker": {"command": worker, "probe": worker_probe},
    }


def node_environment(spec: ClusterSpec, containers: bool = True) -> dict[str, str]:
    """The backend's node environment (and, for ``containers``, its container-only part),
    overridden by the spec's ``env``."""
    backend = get_backend(spec.backend)
    return {**backend.node_env, **(backend.container_env if containers else {}), **dict(spec.env)}


def worker_memory_limit(spec: ClusterSpec) -> int:
    """Bytes a worker container may use: the worker's memory plus the backend's overhead."""
    return spec.memory + get_backend(spec.backend).memory_overhead


def healthcheck(test: list[str], interval: str) -> dict[str, Any]:
    """A compose/stack ``healthcheck`` running ``test`` (a probe command) every ``interval``."""
    return {
        "test": ["CMD", *test],
        "interval": interval,
        "timeout": "5s",
        "retries": 3,
        "start_period": "60s",
    }
