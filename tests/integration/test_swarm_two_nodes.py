"""A real second swarm node: a second engine in its own network namespace joins this engine's swarm.

Placement across the two nodes, ``clusterkit image push`` into the second engine
(no registry), a Dask worker on node 2 computing for a client on this host,
and the two bad inputs only a second node shows: a node the image cannot
reach, and an encrypted overlay without working IPsec between the nodes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import docker
import pytest

from clusterkit import Cluster
from tests.conftest import free_port
from tests.integration import connect_child
from tests.integration.swarmhost import HIDDEN_FROM_NODE2, two_node_swarm
from tests.integration.test_swarm import swarm_leftovers

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.swarm]


@pytest.fixture(scope="module")
def node2(docker_client):
    with two_node_swarm(docker_client) as node:
        yield node


def label_engine(node2, present: bool) -> None:
    change = (
        ["--label-add", f"clusterkit.engine={node2.socket}"]
        if present
        else ["--label-rm", "clusterkit.engine"]
    )
    # --label-rm of a label the node does not have fails: that is fine, it is not there
    subprocess.run(["docker", "node", "update", *change, node2.node_id], check=present, capture_output=True)


def node2_leftovers(node2, name: str) -> list[str]:
    engine = docker.DockerClient(base_url=node2.socket)
    selector = {"label": [f"clusterkit.cluster={name}"]}
    return [c.name for c in engine.containers.list(all=True, filters=selector)]


def test_a_node_that_cannot_be_reached_is_named_and_nothing_starts(node2, docker_client, cli):
    label_engine(node2, present=False)
    result = cli("up", "--runtime", "swarm", "--name", "ck-two-unreached", "--scheduler-port", str(free_port()),
                 "--dashboard-port", str(free_port()))  # fmt: skip
    assert result.returncode == 1
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and node2.node_id[:12] in error[0] and "clusterkit.engine" in error[0]
    assert swarm_leftovers(docker_client, "ck-two-unreached") == []


def test_image_push_sends_only_what_a_node_lacks(node2, cli):
    label_engine(node2, present=True)
    first = cli("image", "push", "dask")
    assert first.returncode == 0, first.stderr
    engine = docker.DockerClient(base_url=node2.socket)
    ref = first.stdout.split(":")[0] + ":" + first.stdout.split(":")[1]
    assert engine.images.get(ref).id == docker.from_env().images.get(ref).id
    again = cli("image", "push", "dask")
    assert again.returncode == 0 and "every swarm node has it" in again.stdout


def test_workers_spread_over_both_nodes_and_node2_computes(node2, docker_client, cli, request):
    from distributed import Client

    label_engine(node2, present=True)
    name = "ck-two-spread"
    shared = Path("/srv/ck-two-shared")  # on both nodes (node 2's engine sees this host's files)
    shared.mkdir(parents=True, exist_ok=True)
    request.addfinalizer(lambda: shutil.rmtree(shared, ignore_errors=True))
    (shared / "numbers.csv").write_text("x\n1\n2\n3\n")
    with Cluster(
        "dask", workers=2, runtime="swarm", name=name, max_replicas_per_node=1,
        scheduler_port=free_port(), dashboard_port=free_port(), mounts=[str(shared)],
    ) as c:  # fmt: skip
        workers = c.report().workers
        assert len({w.node for w in workers}) == 2, f"one worker on each node: {workers}"
        on_node2 = [w for w in workers if node2.node_id[:8] in (w.node or "")]
        assert on_node2, f"no worker on node 2 ({node2.node_id[:8]}): {workers}"
        with Client(c) as client:
            hostname = client.submit(
                lambda: __import__("socket").gethostname(), workers=[on_node2[0].address], pure=False
            )
            assert hostname.result() == on_node2[0].name
            total = client.submit(
                lambda p: sum(int(x) for x in open(p).read().split()[1:]),
                str(shared / "numbers.csv"),
                workers=[on_node2[0].address],
                pure=False,
            )
            assert total.result() == 6, "node 2 reads the shared folder at the same path"
    assert swarm_leftovers(docker_client, name) == [] and node2_leftovers(node2, name) == []


def test_a_connect_client_here_runs_tasks_on_node2(node2, docker_client):
    """The driver runs in the cluster (Spark Connect), so executors on node 2 need no route to this host."""
    label_engine(node2, present=True)
    name = "ck-two-connect"
    with Cluster(
        "spark", workers=2, runtime="swarm", name=name, max_replicas_per_node=1,
        scheduler_port=free_port(), dashboard_port=free_port(), connect_port=free_port(),
    ):  # fmt: skip
        engine = docker.DockerClient(base_url=node2.socket)
        selector = {"label": [f"clusterkit.cluster={name}", "clusterkit.role=worker"]}
        on_node2 = {w.attrs["Config"]["Hostname"] for w in engine.containers.list(filters=selector)}
        assert on_node2, "a worker runs on node 2"
        # The client runs jobs of slow tasks until one ran on node 2 (or its deadline).
        seen = connect_child.run("--name", name, "--hosts", ",".join(sorted(on_node2)))
        assert set(seen.get("hosts", [])) & on_node2, seen
    assert swarm_leftovers(docker_client, name) == [] and node2_leftovers(node2, name) == []


def test_a_shared_folder_one_node_lacks_is_named_and_nothing_starts(node2, docker_client, cli):
    label_engine(node2, present=True)
    name = "ck-two-lacks"
    data = HIDDEN_FROM_NODE2 / "data"
    data.mkdir(parents=True, exist_ok=True)
    result = cli(
        "up", "--runtime", "swarm", "--name", name, "--workers", "2", "--mount", str(data),
        "--scheduler-port", str(free_port()), "--dashboard-port", str(free_port()),
    )  # fmt: skip
    assert result.returncode != 0
    line = result.stderr.strip().splitlines()[-1]
    assert "same path on every swarm node" in line and f"lacks {data}" in line, result.stderr
    assert node2.node_id[:12] in line, "names the node that lacks it"
    assert swarm_leftovers(docker_client, name) == [] and node2_leftovers(node2, name) == []


def test_encrypted_overlay_without_ipsec_fails_clearly_and_leaves_nothing(node2, docker_client, cli):
    label_engine(node2, present=True)
    name = "ck-two-encrypted"
    result = cli(
        "up", "--runtime", "swarm", "--name", name, "--workers", "2", "--max-replicas-per-node", "1",
        "--encrypted", "--timeout", "60", "--json",
        "--scheduler-port", str(free_port()), "--dashboard-port", str(free_port()),
    )  # fmt: skip
    if result.returncode == 0:  # IPsec works between the nodes here: the cluster is real and encrypted
        status = json.loads(result.stdout)
        assert len(status["workers"]) == 2
        assert cli("down", "--name", name).returncode == 0
    else:
        assert result.returncode == 1
        assert "encrypted (IPsec)" in result.stderr and "without --encrypted" in result.stderr
    assert swarm_leftovers(docker_client, name) == [] and node2_leftovers(node2, name) == []
