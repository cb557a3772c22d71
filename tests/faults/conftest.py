"""The fault suite: real engine, both backends, clusters shared per module where possible.

Every test here leaves nothing behind, also when it fails: clusters carry
their test's names and are removed by label (``remove_cluster``), and the
detached supervisors ``clusterkit up`` leaves are stopped first.
"""

from __future__ import annotations

import json
import subprocess
import sys

import psutil
import pytest

from clusterkit import records, supervisor
from tests.conftest import ROOT
from tests.integration.conftest import cluster_names, docker_client, leftovers, require_engine

__all__ = ["cluster_names", "docker_client", "leftovers", "remove_cluster", "require_engine"]


def remove_cluster(client, name: str) -> None:
    """Everything labelled with cluster ``name``, and its reconciler and record."""
    try:
        records.update(name, stopping=True)
    except OSError:
        pass
    supervisor.stop_detached(name)()  # and wait for its end
    selector = {"label": ["clusterkit.project=clusterkit", f"clusterkit.cluster={name}"]}
    for container in client.containers.list(all=True, filters=selector, ignore_removed=True):
        container.remove(force=True)
    for network in client.networks.list(filters=selector):
        network.remove()
    for volume in client.volumes.list(filters=selector):
        volume.remove(force=True)
    records.forget(name)


def processes_of(name: str) -> list[str]:
    """A supervisor (or another helper process) still working on cluster ``name`` (``pid: command line``)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        line = " ".join(proc.info["cmdline"] or [])
        if f"clusterkit-{name} " in line or ("clusterkit.supervise " in line and f"--name {name}" in line):
            found.append(f"{proc.pid}: {line[:120]}")
    return found


def status_cli(name: str, *extra: str) -> tuple[int, dict]:
    """``clusterkit status --name NAME --json`` as a user runs it: (exit code, the JSON)."""
    result = subprocess.run(
        [sys.executable, "-m", "clusterkit", "status", "--name", name, "--json", *extra],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


@pytest.fixture(scope="session")
def node_images():
    """Both node images, current, before anything is timed or signalled."""
    require_engine()
    from clusterkit import images

    return {backend: images.ensure_image(backend) for backend in ("dask", "spark")}
