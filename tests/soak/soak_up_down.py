"""25 ``clusterkit up`` / ``clusterkit down`` cycles: nothing may be left after any of them.

Not part of ``make test`` (it takes minutes): ``make soak`` runs it by path
(the file name does not match ``test_*.py``, so a plain ``pytest`` never
collects it). Each cycle runs the real command, supervisor included, and
checks for leftover containers, networks, volumes, images and processes.
The printed figures (seconds per ``up`` and ``down``) go to
benchmarks/RESULTS.md; nothing here asserts a duration.
"""

from __future__ import annotations

import statistics
import time

import pytest

from tests.conftest import free_port
from tests.faults.conftest import leftovers, processes_of, remove_cluster

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.soak]

CYCLES = 25
NAME = "ck-soak"


def _dangling(client) -> set[str]:
    """Untagged images: what a cycle could leave behind (the node image is pinned, so none is built)."""
    return {image.id for image in client.images.list(filters={"dangling": True})}


def _summary(label: str, values: list[float]) -> str:
    return (
        f"{label}: median {statistics.median(values):.2f} s, min {min(values):.2f} s, "
        f"max {max(values):.2f} s over {len(values)} cycles"
    )


def test_up_down_cycles_leave_nothing(cli, run_dir, docker_client, node_images):
    remove_cluster(docker_client, NAME)
    images_before = _dangling(docker_client)
    ups: list[float] = []
    downs: list[float] = []
    try:
        for cycle in range(CYCLES):
            ports = ["--scheduler-port", str(free_port()), "--dashboard-port", str(free_port())]
            started = time.monotonic()
            up = cli(
                "up",
                "--runtime",
                "compose",
                "--name",
                NAME,
                "--workers",
                "2",
                "--image",
                node_images["dask"],
                *ports,
            )
            ups.append(time.monotonic() - started)
            assert up.returncode == 0, f"cycle {cycle}: {up.stderr}"
            started = time.monotonic()
            down = cli("down", "--name", NAME)
            downs.append(time.monotonic() - started)
            assert down.returncode == 0, f"cycle {cycle}: {down.stderr}"
            assert leftovers(docker_client, NAME) == [], f"cycle {cycle}"
            assert processes_of(NAME) == [], f"cycle {cycle}"
            assert not list((run_dir / ".records").glob(f"{NAME}*")), f"cycle {cycle}: a record is left"
        assert _dangling(docker_client) - images_before == set(), "an image was left"
    finally:
        remove_cluster(docker_client, NAME)
    print()
    print(_summary("clusterkit up (dask, 2 workers, supervised)", ups))
    print(_summary("clusterkit down", downs))
