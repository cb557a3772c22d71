"""Swarms the tests make on this engine, and leave as they found it.

One node: ``docker swarm init --advertise-addr 127.0.0.1``. Two nodes: a second
``dockerd`` in its own network namespace (its own address, data root, exec
root and socket) joins as a worker (the recipe in the project's shared notes;
Docker's own test suite runs several daemons on one host the same way). The
traffic stays between this host and the namespace the test made.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from clusterkit.waiting import NotReady, wait_for

NETNS = "cknode2"
HOST_ADDR, NODE2_ADDR = "10.77.0.1", "10.77.0.2"
VETH_HOST, VETH_NODE = "ck-veth0", "ck-veth1"
RUN = Path("/run/ck-node2")
DATA_ROOT = Path("/var/lib/ck-node2")
NODE2_SOCKET = f"unix://{RUN}/docker.sock"
#: A folder of this host that node 2 does not have: its engine runs in a mount namespace of its
#: own with an empty tmpfs over it (for the shared-folder check: a folder one node lacks).
HIDDEN_FROM_NODE2 = Path("/srv/ck-node2-lacks")


class SwarmSetupError(RuntimeError):
    """A step of making the test swarm failed: the command and what it said."""


def sh(*argv: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise SwarmSetupError(
            f"`{' '.join(argv)}` failed ({result.returncode}): {result.stderr.strip()[-500:]}"
        )
    return result


def swarm_state(docker_client) -> dict:
    return docker_client.info()["Swarm"]


def _networks(docker_client) -> set[str]:
    return {n.name for n in docker_client.networks.list()}


def _vxlan_rules() -> set[str]:
    """The INPUT rules for VXLAN (udp 4789) an encrypted overlay adds; the engine leaves them behind."""
    result = sh("iptables", "-S", "INPUT", check=False)
    return {line for line in result.stdout.splitlines() if "4789" in line and line.startswith("-A ")}


@contextmanager
def leave_as_found(docker_client) -> Iterator[None]:
    """Leave the swarm; remove docker_gwbridge and the overlay's iptables rules unless they were there."""
    had_gwbridge = "docker_gwbridge" in _networks(docker_client)
    had_rules = _vxlan_rules()
    try:
        yield
    finally:
        sh("docker", "swarm", "leave", "--force", check=False)
        for rule in _vxlan_rules() - had_rules:
            sh("iptables", "-D", *shlex.split(rule)[1:], check=False)

        def left() -> None:
            if swarm_state(docker_client)["LocalNodeState"] not in ("inactive", ""):
                raise NotReady("still in the swarm")

        wait_for(left, what="the engine to leave the swarm", timeout=60, interval=0.5)
        if not had_gwbridge:
            with suppress(Exception):
                wait_for(
                    lambda: (
                        sh("docker", "network", "rm", "docker_gwbridge")
                        if "docker_gwbridge" in _networks(docker_client)
                        else None
                    ),
                    what="docker_gwbridge to be removable",
                    timeout=30,
                    interval=0.5,
                    retry_on=(NotReady, OSError, SwarmSetupError),
                )


@contextmanager
def single_node_swarm(docker_client) -> Iterator[None]:
    """A one-node swarm on 127.0.0.1; an engine already managing a swarm is used as it is."""
    state = swarm_state(docker_client)
    if state["LocalNodeState"] == "active":
        if not state.get("ControlAvailable"):
            raise SwarmSetupError("this engine is a swarm worker; the swarm tests need a manager or no swarm")
        yield
        return
    with leave_as_found(docker_client):
        sh("docker", "swarm", "init", "--advertise-addr", "127.0.0.1")
        yield


@dataclass
class SecondNode:
    """The second engine: its socket and its swarm node ID (once joined)."""

    socket: str
    node_id: str = ""


def _start_second_engine() -> SecondNode:
    sh("ip", "netns", "add", NETNS)
    sh("ip", "link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_NODE)
    sh("ip", "link", "set", VETH_NODE, "netns", NETNS)
    sh("ip", "addr", "add", f"{HOST_ADDR}/24", "dev", VETH_HOST)
    sh("ip", "link", "set", VETH_HOST, "up")
    sh("ip", "netns", "exec", NETNS, "ip", "addr", "add", f"{NODE2_ADDR}/24", "dev", VETH_NODE)
    sh("ip", "netns", "exec", NETNS, "ip", "link", "set", VETH_NODE, "up")
    sh("ip", "netns", "exec", NETNS, "ip", "link", "set", "lo", "up")
    sh("ip", "netns", "exec", NETNS, "ip", "route", "add", "default", "via", HOST_ADDR)
    RUN.mkdir(parents=True, exist_ok=True)
    config = {
        "data-root": str(DATA_ROOT),
        "storage-driver": "fuse-overlayfs",
        "iptables": False,
        "bridge": "none",
    }
    (RUN / "daemon.json").write_text(json.dumps(config))
    log = open(RUN / "dockerd.log", "wb")
    HIDDEN_FROM_NODE2.mkdir(parents=True, exist_ok=True)
    hide = f'mount -t tmpfs -o size=1m ck-node2-lacks {HIDDEN_FROM_NODE2} && exec "$@"'
    # nsenter, not `ip netns exec`: the latter remounts /sys and hides the cgroup mounts.
    subprocess.Popen(
        [
            *("unshare", "--mount", "--propagation", "private", "sh", "-c", hide, "sh"),
            "nsenter",
            f"--net=/var/run/netns/{NETNS}",
            "dockerd",
            "--config-file",
            str(RUN / "daemon.json"),
            "--exec-root",
            str(RUN / "exec"),
            "--pidfile",
            str(RUN / "dockerd.pid"),
            "-H",
            NODE2_SOCKET,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_for(
        lambda: sh("docker", "-H", NODE2_SOCKET, "info", timeout=10),
        what="the second engine to answer",
        timeout=60,
        interval=0.5,
        retry_on=(SwarmSetupError, subprocess.TimeoutExpired),
    )
    return SecondNode(NODE2_SOCKET)


def _stop_second_engine() -> None:
    sh("docker", "-H", NODE2_SOCKET, "swarm", "leave", "--force", check=False, timeout=30)
    pid_file = RUN / "dockerd.pid"
    if pid_file.exists():
        pid = pid_file.read_text().strip()
        sh("kill", pid, check=False)

        def exited() -> None:
            if Path(f"/proc/{pid}").exists():
                raise NotReady(f"dockerd {pid} still running")

        try:
            wait_for(exited, what="the second engine to exit", timeout=30, interval=0.5)
        except Exception:
            sh("kill", "-9", pid, check=False)
    sh("ip", "netns", "del", NETNS, check=False)
    sh("ip", "link", "del", VETH_HOST, check=False)
    sh("umount", "-R", str(DATA_ROOT), check=False)
    shutil.rmtree(DATA_ROOT, ignore_errors=True)
    shutil.rmtree(RUN, ignore_errors=True)
    shutil.rmtree(HIDDEN_FROM_NODE2, ignore_errors=True)


@contextmanager
def second_engine() -> Iterator[SecondNode]:
    """Only the second engine, not joined (an engine to push an image to)."""
    try:
        yield _start_second_engine()
    finally:
        _stop_second_engine()


@contextmanager
def two_node_swarm(docker_client) -> Iterator[SecondNode]:
    """This engine manages a swarm at 10.77.0.1; the second engine joins it as a worker."""
    if swarm_state(docker_client)["LocalNodeState"] == "active":
        raise SwarmSetupError("this engine is already in a swarm; the two-node test makes its own")
    with second_engine() as node, leave_as_found(docker_client):
        sh("docker", "swarm", "init", "--advertise-addr", HOST_ADDR)
        token = sh("docker", "swarm", "join-token", "-q", "worker").stdout.strip()
        sh(
            "docker",
            "-H",
            node.socket,
            "swarm",
            "join",
            "--token",
            token,
            "--advertise-addr",
            NODE2_ADDR,
            f"{HOST_ADDR}:2377",
        )
        node.node_id = sh("docker", "-H", node.socket, "info", "--format", "{{.Swarm.NodeID}}").stdout.strip()

        def ready() -> None:
            state = sh(
                "docker", "node", "inspect", node.node_id, "--format", "{{.Status.State}}"
            ).stdout.strip()
            if state != "ready":
                raise NotReady(f"node 2 is {state}")

        wait_for(ready, what="node 2 to be ready", timeout=60, interval=0.5)
        try:
            yield node
        finally:  # the worker leaves first, then this engine (leave_as_found)
            sh("docker", "-H", node.socket, "swarm", "leave", "--force", check=False, timeout=30)
