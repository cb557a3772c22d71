"""A running cluster's spec is a record: another folder's clusterkit.yaml does not change it."""

from __future__ import annotations

import json

import pytest

from tests.conftest import free_port
from tests.integration.conftest import leftovers

pytestmark = [pytest.mark.slow]

HOSTILE_YAML = "backend: dask\nimage: somebody/else:latest\nworkerz: 3\n"


@pytest.mark.parametrize("runtime", ["local", pytest.param("compose", marks=pytest.mark.docker)])
def test_status_and_down_from_a_folder_with_another_spec_file(runtime, tmp_path, run_dir, cli, request):
    name = f"ck-record-{runtime}"
    started_in, elsewhere = tmp_path / "a", tmp_path / "b"
    started_in.mkdir()
    elsewhere.mkdir()
    (elsewhere / "clusterkit.yaml").write_text(HOSTILE_YAML)
    if runtime == "compose":
        request.getfixturevalue("cluster_names").append(name)
    up = cli(
        "up", "--runtime", runtime, "--name", name, "--workers", "1",
        "--scheduler-port", str(free_port()), "--dashboard-port", str(free_port()),
        env={"CWD": str(started_in)},
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    try:
        # The hostile file is user input for a new cluster: `up` from there names the unknown key.
        refused = cli("up", "--name", "other", env={"CWD": str(elsewhere)})
        assert refused.returncode == 2 and "workerz" in refused.stderr

        shown = cli("status", "--name", name, "--json", env={"CWD": str(elsewhere)})
        assert shown.returncode == 0, shown.stderr
        status = json.loads(shown.stdout)
        assert status["name"] == name and status["runtime"] == runtime
        assert len(status["workers"]) == 1
    finally:
        down = cli("down", "--name", name, env={"CWD": str(elsewhere)})
    assert down.returncode == 0, down.stderr
    gone = cli("status", "--name", name, env={"CWD": str(elsewhere)})
    assert gone.returncode == 2 and "no running cluster" in gone.stderr
    if runtime == "compose":
        assert leftovers(request.getfixturevalue("docker_client"), name) == []
