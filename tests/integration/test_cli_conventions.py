"""The CLI as people already know them, on real local clusters: ``ls``, ``down`` of nothing and
``--all``, name resolution from the spec file, and ``status`` that only looks unless ``--repair``."""

from __future__ import annotations

import json
import os
import signal

import pytest

from clusterkit.net import free_ports
from clusterkit.waiting import NotReady, wait_for
from tests.conftest import free_port

pytestmark = pytest.mark.slow


def _two_ports() -> list[str]:
    scheduler, dashboard = free_ports("127.0.0.1", 2)  # two distinct ports
    return ["--scheduler-port", str(scheduler), "--dashboard-port", str(dashboard)]


def _up(cli, name: str | None, *extra: str, env: dict | None = None):
    """``up --runtime local`` of one small worker; no ``--name`` for ``None`` (the spec file's)."""
    result = cli(
        "up",
        "--runtime",
        "local",
        *(["--name", name] if name else []),
        "--workers",
        "1",
        "--memory",
        "512m",
        "--no-supervise",
        *_two_ports(),
        *extra,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_ls_lists_every_cluster_and_down_all_removes_them(cli, teardown):
    teardown += ["ck-ls-a", "ck-ls-b"]
    started = _up(cli, "ck-ls-a")
    assert "clusterkit: 1 of 1 workers registered" in started.stderr  # the wait says how far it got
    _up(cli, "ck-ls-b")

    shown = cli("ls", "--json")  # every runtime: other clusters on this engine may be listed too
    assert shown.returncode == 0, shown.stderr
    rows = {r["name"]: r for r in json.loads(shown.stdout) if r["name"] in ("ck-ls-a", "ck-ls-b")}
    assert sorted(rows) == ["ck-ls-a", "ck-ls-b"]
    for row in rows.values():
        assert set(row) == {"name", "backend", "runtime", "wanted", "registered", "health", "created"}
        assert (row["runtime"], row["wanted"], row["registered"], row["health"]) == ("local", 1, 1, "healthy")
        assert row["created"].endswith("+00:00")
    table = cli("ls", "--runtime", "local")
    assert table.returncode == 0
    assert [line.split()[0] for line in table.stdout.splitlines()] == ["name", "ck-ls-a", "ck-ls-b"]
    assert "healthy" in table.stdout

    removed = cli("down", "--all", "--runtime", "local", "--json")
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout) == {
        "removed": [{"name": "ck-ls-a", "runtime": "local"}, {"name": "ck-ls-b", "runtime": "local"}],
        "kept": [],
    }
    assert json.loads(cli("ls", "--runtime", "local", "--json").stdout) == []
    again = cli("down", "--all", "--runtime", "local")
    assert again.returncode == 0 and again.stdout.strip() == "nothing to remove: no cluster is running"


def test_down_all_keeps_a_cluster_a_live_process_holds(cli, teardown):
    """A Python ``Cluster`` (as a test session's fixture) holds its cluster; ``down --all`` keeps it."""
    from clusterkit import Cluster

    teardown += ["ck-held", "ck-free"]
    _up(cli, "ck-free")
    held = Cluster(
        name="ck-held", runtime="local", workers=1, memory="512m", scheduler_port=free_port(),
        dashboard_port=free_port(), supervise=False,
    )  # fmt: skip
    with held:
        result = cli("down", "--all", "--runtime", "local")
        assert result.returncode == 0, result.stderr
        lines = result.stdout.strip().splitlines()
        assert lines[0] == "cluster 'ck-free' is down"
        assert lines[1].startswith("kept ck-held (local): held by a live test session or process")
        assert len(lines) == 2
        assert [r["name"] for r in json.loads(cli("ls", "--runtime", "local", "--json").stdout)] == [
            "ck-held"
        ]


def test_commands_find_the_cluster_by_the_spec_file_above(cli, teardown, tmp_path):
    teardown += ["ck-named", "ck-other"]
    project = tmp_path / "project"
    (project / "src" / "pkg").mkdir(parents=True)
    (project / "clusterkit.yaml").write_text("name: ck-named\nworkers: 1\nmemory: 512m\n")
    inside = {"CWD": str(project / "src" / "pkg")}
    _up(cli, "ck-other")  # two running: without a name from somewhere, `status` could not choose
    started = _up(cli, None, env=inside)  # `up` reads the file above too
    assert "ck-named" in started.stdout

    shown = cli("status", "--json", env=inside)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["name"] == "ck-named"
    chosen = cli("status", "--json", env={**inside, "CLUSTERKIT_NAME": "ck-other"})
    assert json.loads(chosen.stdout)["name"] == "ck-other", "$CLUSTERKIT_NAME before the file"
    given = cli("status", "--json", "--name", "ck-other", env={**inside, "CLUSTERKIT_NAME": "nope"})
    assert json.loads(given.stdout)["name"] == "ck-other", "--name before $CLUSTERKIT_NAME"
    ambiguous = cli("status")
    assert ambiguous.returncode == 2 and "several clusters are running" in ambiguous.stderr

    down = cli("down", env=inside)
    assert down.returncode == 0 and down.stdout.strip() == "cluster 'ck-named' is down"
    gone = cli("down", env=inside)
    assert gone.returncode == 0 and gone.stdout.strip() == "nothing to remove: no cluster named 'ck-named'"
    other = cli("down", "--name", "ck-other", "--json")
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout) == {"removed": [{"name": "ck-other", "runtime": "local"}], "kept": []}


def _worker_pid(shown: dict) -> int:
    worker = next(n for n in shown["nodes"] if n["role"] == "worker")
    return int(worker["where"].split()[1])  # "pid N"


def test_status_only_looks_and_repair_heals_once(cli, teardown):
    teardown.append("ck-look")
    _up(cli, "ck-look")
    healthy = cli("status", "--name", "ck-look", "--json")
    assert healthy.returncode == 0, healthy.stderr
    pid = _worker_pid(json.loads(healthy.stdout))
    os.killpg(pid, signal.SIGKILL)  # the worker's whole process group (its nanny and the worker)

    def exited() -> dict:
        result = cli("status", "--name", "ck-look", "--json")
        shown = json.loads(result.stdout)
        if result.returncode != 3:
            raise NotReady(f"exit {result.returncode}: {shown['problems']}")
        return shown

    looked = wait_for(exited, what="the killed worker to show", timeout=60, interval=0.5)
    assert looked["health"] == "degraded" and looked["repairs"] == []
    again = json.loads(cli("status", "--name", "ck-look", "--json").stdout)
    assert [n["state"] for n in again["nodes"] if n["role"] == "worker"] == ["exited"], (
        "looking repairs nothing"
    )
    assert again["repairs"] == []

    repaired = cli("status", "--name", "ck-look", "--repair", "--json")
    assert repaired.returncode == 3, "the verdict is what was found before repairing"
    assert any("started it again" in r for r in json.loads(repaired.stdout)["repairs"])

    def healthy_again() -> dict:
        result = cli("status", "--name", "ck-look", "--json")
        if result.returncode != 0:
            raise NotReady(f"exit {result.returncode}")
        return json.loads(result.stdout)

    back = wait_for(healthy_again, what="the restarted worker to register", timeout=120, interval=0.5)
    assert [n["restarts"] for n in back["nodes"] if n["role"] == "worker"] == [1]
    assert back["repairs"] == [], "status without --repair never repairs"


@pytest.mark.docker
def test_status_after_docker_kill_leaves_the_container_exited(cli, docker_client, cluster_names):
    """The issue's check on containers: `status` is `compose ps`, `status --repair` starts it again."""
    name = "ck-look-compose"
    cluster_names.append(name)
    started = cli(
        *("up", "--runtime", "compose", "--name", name, "--workers", "1", "--no-supervise"),
        *("--scheduler-port", str(free_port()), "--dashboard-port", str(free_port())),
    )
    assert started.returncode == 0, started.stderr
    selector = {"label": [f"clusterkit.cluster={name}", "clusterkit.role=worker"]}
    (worker,) = docker_client.containers.list(filters=selector)
    worker.kill()  # the engine's restart policy leaves a killed container alone

    looked = cli("status", "--name", name, "--json")
    assert looked.returncode == 3, looked.stdout + looked.stderr
    assert json.loads(looked.stdout)["repairs"] == []
    worker.reload()
    assert worker.status == "exited", "looking repairs nothing"

    repaired = cli("status", "--name", name, "--repair", "--json")
    assert repaired.returncode == 3 and json.loads(repaired.stdout)["repairs"], repaired.stdout
    worker.reload()
    assert worker.status == "running", "status --repair started the same container again"
    assert cli("down", "--name", name).returncode == 0
