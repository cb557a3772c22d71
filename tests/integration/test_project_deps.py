"""A project's own dependencies on every node: locked beside the project, a layer on the node image.

``humanize`` stands for a dependency clusterkit's lock lacks (the test checks it
does). Locking asks the package index, as ``make lock`` does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from clusterkit.images import project, read_lock
from clusterkit.images.locks import lock_path
from tests.conftest import free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow]

EXTRA = "humanize"


def clusterkit(folder, *args, timeout=600, env=None):
    return subprocess.run(
        [sys.executable, "-m", "clusterkit", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def user_project(tmp_path):
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "pyproject.toml").write_text(
        f'[project]\nname = "proj"\nversion = "0.1"\ndependencies = ["{EXTRA}", "docker", "rich"]\n'
    )
    return folder


@pytest.fixture
def project_images(docker_client):
    """Project images a test made: removed afterwards (they are per project, not shared)."""
    made: list[str] = []
    yield made
    for ref in made:
        try:
            docker_client.images.remove(ref, force=True)
        except Exception:
            pass


def test_the_projects_dependency_is_on_every_node(
    user_project, run_dir, cluster_names, project_images, docker_client, tmp_path
):
    assert EXTRA not in read_lock(lock_path("dask")), "the test needs a package the node lock lacks"
    name = f"projdeps-{free_port()}"
    cluster_names.append(name)
    port, dash = free_port(), free_port()
    up = clusterkit(
        user_project,
        "up",
        "--runtime",
        "compose",
        "--name",
        name,
        "--workers",
        "2",
        "--scheduler-port",
        str(port),
        "--dashboard-port",
        str(dash),
        "--no-supervise",
    )
    assert up.returncode == 0, up.stderr
    try:
        lock = user_project / project.LOCK_NAME
        assert lock.is_file() and f"{EXTRA}==" in lock.read_text()
        assert "docker==" not in lock.read_text() and "rich==" not in lock.read_text()  # host-only
        images = {
            c.image.tags[0]
            for c in docker_client.containers.list(filters={"label": f"clusterkit.cluster={name}"})
        }
        assert len(images) == 1 and images.pop().startswith("clusterkit/dask-project:")
        project_images.extend(
            {
                c.image.tags[0]
                for c in docker_client.containers.list(filters={"label": f"clusterkit.cluster={name}"})
            }
        )
        from distributed import Client

        with Client(f"tcp://127.0.0.1:{port}", timeout=60) as client:
            found = client.run(lambda: __import__(EXTRA).__version__)
        assert len(found) == 2 and len(set(found.values())) == 1
        assert next(iter(found.values())) in lock.read_text()
        doctor_sees_the_projects_dependency(user_project, name, next(iter(found.values())), tmp_path)
    finally:
        down = clusterkit(user_project, "down", "--name", name)
        assert down.returncode == 0, down.stderr


def doctor_sees_the_projects_dependency(folder, name, node_version, scratch):
    """`doctor` compares the project's own dependency: absent here, it says nothing of it; at
    another version here (an installed distribution's metadata on the path), it is an error."""
    same = clusterkit(folder, "doctor", "--name", name, "--json")
    assert same.returncode == 0, same.stdout + same.stderr
    report = json.loads(same.stdout)
    assert all(v.get(EXTRA) == node_version for n, v in report["versions"].items() if n != "client")
    assert EXTRA not in {d["package"] for d in report["differences"]}
    other = scratch / "elsewhere"
    (other / f"{EXTRA}-0.1.dist-info").mkdir(parents=True)
    (other / f"{EXTRA}-0.1.dist-info" / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {EXTRA}\nVersion: 0.1\n"
    )
    differs = clusterkit(folder, "doctor", "--name", name, "--json", env={"PYTHONPATH": str(other)})
    assert differs.returncode == 1, differs.stdout + differs.stderr
    found = [d for d in json.loads(differs.stdout)["differences"] if d["package"] == EXTRA]
    assert found and {(d["expected"], d["found"], d["severity"]) for d in found} == {
        ("0.1", node_version, "error")
    }


def test_the_lock_is_remade_only_when_the_declared_list_changes(user_project):
    first = project.ensure_lock(user_project / "pyproject.toml", "dask")
    assert first is not None
    stamp = first.stat().st_mtime_ns
    again = project.ensure_lock(user_project / "pyproject.toml", "dask")
    assert again == first and first.stat().st_mtime_ns == stamp
    text = (user_project / "pyproject.toml").read_text().replace('"rich"', '"rich", "tabulate"')
    (user_project / "pyproject.toml").write_text(text)
    project.ensure_lock(user_project / "pyproject.toml", "dask")
    assert "tabulate==" in first.read_text()


def test_a_conflict_with_the_node_lock_is_one_clear_line_and_starts_nothing(
    user_project, run_dir, docker_client
):
    node = read_lock(lock_path("dask"))["distributed"].version
    (user_project / "pyproject.toml").write_text(
        '[project]\nname = "proj"\nversion = "0.1"\ndependencies = ["distributed==2024.1.0"]\n'
    )
    name = f"projconflict-{free_port()}"
    done = clusterkit(user_project, "up", "--runtime", "compose", "--name", name, "--workers", "1")
    assert done.returncode == 2
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "distributed==2024.1.0" in error[0] and node in error[0]
    assert not docker_client.containers.list(all=True, filters={"label": f"clusterkit.cluster={name}"})
