"""``--clusterkit-reuse``: a test cluster kept across pytest runs, run the way a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from clusterkit.runtimes import kept, leases
from tests.integration.conftest import leftovers

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SUITE = """
import json, os, pathlib

def test_records_its_cluster(dask_cluster):
    workers = sorted(dask_cluster.client.scheduler_info()["workers"])
    assert dask_cluster.client.submit(sum, [1, 2]).result() == 3
    out = pathlib.Path(os.environ["CK_RECORD"])
    out.write_text(json.dumps({"name": dask_cluster.spec.name, "workers": workers}))
"""


def run(pytester, record, *args, ci: str | None = None):
    """One whole pytest run of the suite; ``CI`` only as given (CI sets it for the outer run)."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["CK_RECORD"] = str(record)
    if ci is not None:
        env["CI"] = ci
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=pytester.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "1 passed" in result.stdout, result.stdout + result.stderr
    return json.loads(record.read_text()), result.stdout


@pytest.fixture
def kept_here(docker_client):
    """The kept clusters this test made, removed afterwards whatever happened (others are left)."""
    before = {k.name for k in kept.kept(docker_client)}
    made: set[str] = set()
    yield made
    from clusterkit.runtimes.testcontainers import TestcontainersRuntime

    runtime = TestcontainersRuntime(session=kept.SESSION)
    for name in ({k.name for k in kept.kept(docker_client)} - before) | made:
        runtime.remove_all(name)


def test_the_second_run_takes_the_kept_cluster_and_down_all_removes_it(
    pytester, docker_client, tmp_path, cli, kept_here
):
    pytester.makepyfile(test_sample=SUITE)
    first, said = run(pytester, tmp_path / "a.json", "--clusterkit-reuse")
    kept_here.add(first["name"])
    assert f"started {first['name']} and kept it" in said
    assert leftovers(docker_client, first["name"]), "kept after the run"
    assert leases.idle(docker_client, first["name"])

    swept = cli("gc")  # a sweep leaves a kept cluster while it is fresh
    assert swept.returncode == 0, swept.stderr
    assert leftovers(docker_client, first["name"])

    second, said = run(pytester, tmp_path / "b.json", "--clusterkit-reuse")
    assert second == first, "the same cluster, with the same worker processes"
    assert f"reused kept cluster {first['name']}" in said

    third, said = run(
        pytester, tmp_path / "c.json", "--clusterkit-reuse", "-o", "clusterkit_reuse_restart=true"
    )
    assert third["name"] == first["name"]
    assert not set(third["workers"]) & set(first["workers"]), "restarted workers register anew"
    assert "(workers restarted)" in said

    removed = cli("down", "--all", "--runtime", "testcontainers")
    assert removed.returncode == 0, removed.stderr
    assert leftovers(docker_client, first["name"]) == []


def test_a_changed_spec_replaces_the_kept_cluster(pytester, docker_client, tmp_path, kept_here):
    pytester.makepyfile(test_sample=SUITE)
    first, _ = run(pytester, tmp_path / "a.json", "--clusterkit-reuse")
    kept_here.add(first["name"])
    second, said = run(pytester, tmp_path / "b.json", "--clusterkit-reuse", "--clusterkit-workers", "3")
    kept_here.add(second["name"])
    assert second["name"] != first["name"] and len(second["workers"]) == 3
    assert f"removed kept cluster {first['name']}: its spec or image changed" in said
    assert leftovers(docker_client, first["name"]) == []
    assert leftovers(docker_client, second["name"])


def test_never_under_ci(pytester, docker_client, tmp_path, kept_here):
    pytester.makepyfile(test_sample=SUITE)
    found, said = run(pytester, tmp_path / "a.json", "--clusterkit-reuse", ci="true")
    assert "--clusterkit-reuse is off: CI is set" in said
    assert not found["name"].startswith("reuse-")
    assert leftovers(docker_client, found["name"]) == []
    assert not kept_here and not {k.name for k in kept.kept(docker_client)} & {found["name"]}
