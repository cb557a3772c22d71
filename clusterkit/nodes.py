"""What a node container runs: its command, health probe, environment and limits.

One description shared by every container runtime (the compose file, the
testcontainers containers and the swarm stack), so a port, a command
or a probe is written once.
"""

from __future__ import annotations

from typing import Any

from clusterkit import mounts
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
    options = get_backend(b).scheduler_options(spec)
    for key, value in options.items():
        scheduler += [f"--{key.replace('_', '-')}", str(value)]
    worker = [*node, "worker", "--backend", b, "--scheduler", f"{scheduler_host}:{p}"]
    worker += ["--cores", str(spec.cores), "--memory", format_memory(spec.memory)]
    probe = ["python", "-m", "clusterkit.probe"]  # = `clusterkit probe`, without the CLI's imports
    scheduler_probe = [*probe, "scheduler", "--backend", b, "--ui", f"127.0.0.1:{d}"]
    if spec.connect_port:  # the Connect server is part of the scheduler node (its pair program)
        scheduler_probe += ["--connect", f"127.0.0.1:{spec.connect_port}"]
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


def node_environment(spec: ClusterSpec, containers: bool = True, scratch: bool = True) -> dict[str, str]:
    """The backend's node environment (and, for ``containers``, its container-only part; for
    ``scratch`` containers, the scratch tmpfs: :data:`clusterkit.mounts.SCRATCH`), overridden by the spec's ``env``.

    A swarm's nodes get no scratch tmpfs (a stack file cannot make one that
    allows native libraries to load), so their root stays writable.
    """
    backend = get_backend(spec.backend)
    env = {**backend.node_env, **(backend.container_env if containers else {})}
    if containers and scratch:
        env = {"TMPDIR": mounts.SCRATCH, "HOME": mounts.SCRATCH, **env, **backend.scratch_env}
    return {**env, **dict(spec.env)}


def sealed(role: str) -> bool:
    """Does a ``role`` node have a read-only root file system?

    Workers do: what they write outside the shared folders and the scratch
    tmpfs fails instead of vanishing with the container. The scheduler runs
    no task; its root stays writable for the owner's lease
    (:mod:`clusterkit.runtimes.leases`), which the engine's archive API
    cannot write under a read-only root.
    """
    return role != "scheduler"


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


#: Users every node image knows; any other uid gets a generated passwd file (:func:`passwd_file`).
_KNOWN_UIDS = ("0", "1000")


def passwd_file(user: str) -> str:
    """Where the passwd file that names ``user`` on the nodes lives on this host (:func:`passwd_text`)."""
    from clusterkit.paths import run_root

    return str(run_root() / "passwd" / user.replace(":", "-"))


def passwd_text(user: str, login: str) -> str:
    """A passwd file with the image's users and ``user`` as ``login``, home in the scratch folder.

    Java (a Spark node) refuses to start for a uid without a name.

    >>> passwd_text("1234:100", "ana").splitlines()[-1]
    'ana:x:1234:100:clusterkit node:/run/clusterkit/tmp:/bin/sh'
    """
    uid, gid = user.split(":")
    return (
        "root:x:0:0:root:/root:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        "clusterkit:x:1000:1000:clusterkit:/home/clusterkit:/bin/sh\n"
        f"{login}:x:{uid}:{gid}:clusterkit node:{mounts.SCRATCH}:/bin/sh\n"
    )


def node_binds(spec: ClusterSpec) -> list[tuple[str, str, bool]]:
    """``(host path, node path, read-only)`` of every bind a node gets: the shared folders at
    their own path, and the passwd file for a uid the image does not know."""
    binds = [(m.path, m.path, m.read_only) for m in mounts.of(spec.mounts)]
    if spec.user and spec.user.split(":")[0] not in _KNOWN_UIDS:
        binds.append((passwd_file(spec.user), "/etc/passwd", True))
    return binds


def node_isolation(spec: ClusterSpec, role: str) -> dict[str, Any]:
    """What every node container gets beyond its command, in the Docker SDK's words (``containers.create``).

    Its user (the spec's), no capability and no way to gain one, the scratch
    tmpfs (``exec``: Spark loads native libraries it unpacks there) and, for
    a :func:`sealed` role, a read-only root file system.

    >>> sorted(node_isolation(ClusterSpec(name="x", user="5:5"), "worker"))
    ['cap_drop', 'read_only', 'security_opt', 'tmpfs', 'user']
    """
    options: dict[str, Any] = {
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "tmpfs": {mounts.SCRATCH: "exec,mode=1777"},
    }
    if spec.user:
        options["user"] = spec.user
    if sealed(role):
        options["read_only"] = True
    return options
