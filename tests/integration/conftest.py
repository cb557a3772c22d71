"""Integration fixtures: the real engine, and clean-up by label even on failure."""

from __future__ import annotations

import pytest

from tests.conftest import docker_unavailable


def require_engine():
    """The docker SDK client; skip without an engine, or fail when CI demands one."""
    import docker

    try:
        client = docker.from_env(timeout=60)
        client.ping()
        return client
    except Exception as e:
        docker_unavailable(f"no Docker engine answers ({e})")


@pytest.fixture(scope="session")
def docker_client():
    return require_engine()


@pytest.fixture
def cluster_names(docker_client):
    """Names a test uses; everything labelled with them is removed afterwards, pass or fail."""
    names: list[str] = []
    yield names
    for name in names:
        selector = {"label": ["clusterkit.project=clusterkit", f"clusterkit.cluster={name}"]}
        for container in docker_client.containers.list(all=True, filters=selector):
            container.remove(force=True)
        for network in docker_client.networks.list(filters=selector):
            network.remove()
        for volume in docker_client.volumes.list(filters=selector):
            volume.remove(force=True)


@pytest.fixture
def teardown(run_dir):
    """Names of local clusters a test starts; each is brought down afterwards, pass or fail."""
    from clusterkit import cluster

    started: list[str] = []
    yield started
    for name in started:
        try:
            cluster.down(name, "local")
        except Exception:
            pass


def leftovers(docker_client, name: str) -> list[str]:
    """Containers, networks and volumes that still carry the cluster's labels."""
    selector = {"label": ["clusterkit.project=clusterkit", f"clusterkit.cluster={name}"]}
    found = [f"container {c.name}" for c in docker_client.containers.list(all=True, filters=selector)]
    found += [f"network {n.name}" for n in docker_client.networks.list(filters=selector)]
    found += [f"volume {v.name}" for v in docker_client.volumes.list(filters=selector)]
    return found
