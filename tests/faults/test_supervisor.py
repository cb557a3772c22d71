"""The reconciler ``clusterkit up`` leaves running, and ``up --watch`` in the foreground."""

from __future__ import annotations

import signal
import subprocess
import sys

import psutil
import pytest

from clusterkit import cluster, records
from clusterkit.errors import ClusterNotFound
from clusterkit.waiting import NotReady, wait_for
from tests.conftest import ROOT, free_port
from tests.faults.conftest import leftovers, remove_cluster

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.faults]


def _healthy(name: str, timeout: float = 180):
    def check():
        try:
            found = cluster.status(name)
        except ClusterNotFound as e:  # `up --watch` has not made it yet
            raise NotReady(str(e)) from e
        if found.health != "healthy":
            raise NotReady(f"{found.health}: {'; '.join(found.problems)}")
        return found

    return wait_for(check, what=f"cluster {name} healthy", timeout=timeout, interval=0.5)


def _supervisors(name: str) -> list[int]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        line = " ".join(proc.info["cmdline"] or [])
        if "clusterkit.supervise " in line and f"--name {name}" in line:
            found.append(proc.pid)
    return found


def _ports() -> list[str]:
    return ["--scheduler-port", str(free_port()), "--dashboard-port", str(free_port())]


def test_up_leaves_a_supervisor_that_repairs_and_down_stops_it(cli, run_dir, docker_client, node_images):
    name = "ck-sup-detached"
    remove_cluster(docker_client, name)
    try:
        started = cli("up", "--name", name, "--workers", "2", *_ports())
        assert started.returncode == 0, started.stderr
        assert "supervising" in started.stderr
        pid = records.load(name)["supervisor"]["pid"]
        assert _supervisors(name) == [pid]
        selector = {"label": [f"clusterkit.cluster={name}", "clusterkit.role=worker"]}
        victim = docker_client.containers.list(filters=selector)[0]
        victim.kill()  # the engine's restart policy does not cover this; the supervisor does
        found = _healthy(name)
        assert [n.restarts for n in found.nodes if n.name == victim.name] == [1]
        assert cli("down", "--name", name).returncode == 0
        assert _supervisors(name) == [] and leftovers(docker_client, name) == []
    finally:
        remove_cluster(docker_client, name)


def test_up_watch_repairs_in_the_foreground_and_sigterm_takes_the_cluster_down(
    run_dir, docker_client, node_images
):
    name = "ck-sup-watch"
    remove_cluster(docker_client, name)
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "clusterkit",
                "up",
                "--watch",
                "--name",
                name,
                "--workers",
                "1",
                *_ports(),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _healthy(name)
        assert _supervisors(name) == [], "--watch repairs in its own process, nothing detached"
        selector = {"label": [f"clusterkit.cluster={name}", "clusterkit.role=worker"]}
        victim = docker_client.containers.list(filters=selector)[0]
        victim.kill()
        found = _healthy(name)
        assert [n.restarts for n in found.nodes if n.name == victim.name] == [1]
        assert proc.poll() is None, "--watch stays in the foreground"
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        assert "started it again" in stderr and f"cluster '{name}' is down" in stdout
        assert leftovers(docker_client, name) == []
    finally:
        remove_cluster(docker_client, name)
