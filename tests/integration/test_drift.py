"""The drift check against real containers: the pinned image passes, a different one fails."""

from __future__ import annotations

import subprocess
import sys

import pytest

from clusterkit import cluster, images
from clusterkit.spec import resolve_spec
from tests.conftest import free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def up(name: str, image: str | None = None):
    spec = resolve_spec(
        overrides={
            "name": name,
            "workers": 2,
            "scheduler_port": free_port(),
            "dashboard_port": free_port(),
            "image": image,
        },
        environ={},
    )
    cluster.up(spec, "compose", timeout=180)
    return spec


def test_pinned_image_and_venv_client_have_no_error(docker_client, cluster_names, cli):
    cluster_names.append("ck-drift-ok")
    up("ck-drift-ok")
    result = cli("doctor", "--name", "ck-drift-ok")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "compared 4 nodes" in result.stdout  # client, scheduler, 2 workers
    assert "error" not in result.stdout


@pytest.fixture
def drifted_image(docker_client, tmp_path):
    """The dask node image with another (real, older) cloudpickle wheel installed over the pinned one."""
    base = images.ensure_image("dask")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.11",
            "--platform",
            "manylinux_2_36_x86_64",
            "cloudpickle==3.0.0",
            "-d",
            str(tmp_path),
        ],
        check=True,
    )
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base}\nUSER root\nCOPY *.whl /tmp/\n"
        "RUN /opt/venv/bin/pip install --quiet --no-deps --no-index /tmp/cloudpickle-3.0.0-py3-none-any.whl\n"
        "USER clusterkit\n"
    )
    tag = "clusterkit/dask-drift-test:latest"
    docker_client.images.build(
        path=str(tmp_path),
        tag=tag,
        network_mode="none",
        rm=True,
        forcerm=True,
        labels={"clusterkit.project": "clusterkit"},
    )
    yield tag
    # The test's cluster may still run on it (this fixture ends before `cluster_names` cleans up):
    # an image removed under a container is only untagged, and would stay behind dangling.
    for container in docker_client.containers.list(all=True, filters={"ancestor": tag}):
        container.remove(force=True)
    docker_client.images.remove(tag, force=True)


def test_a_different_image_is_reported_and_exits_non_zero(docker_client, cluster_names, cli, drifted_image):
    cluster_names.append("ck-drift-bad")
    up("ck-drift-bad", drifted_image)
    result = cli("doctor", "--name", "ck-drift-bad")
    assert result.returncode == 1
    assert "cloudpickle" in result.stdout and "3.0.0" in result.stdout
    assert "version mismatch" in result.stderr

    from clusterkit import dask
    from clusterkit.errors import VersionMismatch

    spec = cluster.find("ck-drift-bad", "compose")[0].spec_of("ck-drift-bad")
    client = dask.connect_to_scheduler(spec.scheduler_address, timeout=30)
    try:
        with pytest.raises(VersionMismatch, match="cloudpickle"):
            dask.report_status(check=True)
        lenient = dask.report_status(check=False)
        assert len(lenient.workers) == 2
    finally:
        client.close()
