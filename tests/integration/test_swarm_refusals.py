"""The swarm runtime on an engine that is not a swarm manager: one clear line, exit 1, nothing made."""

from __future__ import annotations

import pytest

from tests.conftest import docker_unavailable, free_port
from tests.integration.test_swarm import swarm_leftovers

pytestmark = [pytest.mark.docker, pytest.mark.swarm]


@pytest.fixture
def no_swarm(docker_client):
    if docker_client.info()["Swarm"]["LocalNodeState"] != "inactive":
        docker_unavailable("this engine is in a swarm (the refusals need one that is not)")
    return docker_client


@pytest.mark.parametrize(
    "args",
    [
        ["up", "--runtime", "swarm", "--name", "ck-no-swarm"],
        ["image", "push", "dask"],
    ],
    ids=["up", "image-push"],
)
def test_no_swarm_is_one_clear_line(no_swarm, cli, args):
    if args[0] == "up":
        args = [*args, "--scheduler-port", str(free_port()), "--dashboard-port", str(free_port())]
    result = cli(*args)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: this Docker engine is not part of a swarm; run `docker swarm init` (or join one, on a "
        "manager), or choose another runtime (`--runtime compose`)"
    ]
    assert "Traceback" not in result.stderr
    assert swarm_leftovers(no_swarm, "ck-no-swarm") == []
