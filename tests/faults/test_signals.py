"""Every way ``clusterkit up`` can be interrupted leaves nothing, or what ``clusterkit gc`` removes.

SIGINT, SIGTERM and SIGHUP (the terminal closing: the whole process group)
make ``up`` remove what it started before it exits; SIGKILL cannot be
caught, so what it leaves carries its PID and ``gc`` removes it. Each case
sends the signal the moment ``up`` reports a step (preparing the image,
starting the nodes while their containers are created, waiting for the workers to
register), not after a delay: a delay lands in another step, or after
``up`` is done, once ``up`` gets faster. Then it checks that nothing of the
cluster is left: containers, network, volumes, a supervisor.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import ROOT, free_port
from tests.faults.conftest import leftovers, processes_of, remove_cluster

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.faults]

#: What ``up`` prints (stderr) as it enters a step: the signal goes out on that line.
STEPS = {
    "image": "clusterkit: preparing",
    "start": "clusterkit: starting the",
    "wait": "clusterkit: waiting for",
}
CASES = [
    (signal.SIGTERM, "image"),
    (signal.SIGTERM, "start"),
    (signal.SIGTERM, "wait"),
    (signal.SIGKILL, "image"),
    (signal.SIGKILL, "start"),
    (signal.SIGKILL, "wait"),
    (signal.SIGINT, "start"),
    (signal.SIGHUP, "wait"),
]


@pytest.mark.parametrize(("sig", "step"), CASES, ids=[f"{s.name}-at-{step}" for s, step in CASES])
def test_interrupted_up_leaves_nothing_after_gc(sig, step, docker_client, node_images, run_dir):
    name = f"ck-sig-{sig.name.lower()}-{step}"
    remove_cluster(docker_client, name)
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "clusterkit",
                "up",
                "--runtime",
                "compose",
                "--name",
                name,
                "--workers",
                "2",
                "--scheduler-port",
                str(free_port()),
                "--dashboard-port",
                str(free_port()),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: SIGHUP goes to it all, as a terminal's does
        )
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # stderr is line-buffered: each step's line comes as it starts
            seen.append(line)
            if line.startswith(STEPS[step]):
                break
        else:
            pytest.fail(f"`up` ended before its {step!r} step:\n{''.join(seen)}")
        if sig == signal.SIGHUP:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        _, rest = proc.communicate(timeout=120)
        stderr = "".join(seen) + rest
        if sig != signal.SIGKILL:
            assert proc.returncode == 128 + sig, stderr
            assert "Traceback" not in stderr, stderr
            assert leftovers(docker_client, name) == [], "a caught signal removes everything at once"
        gc = subprocess.run(
            [sys.executable, "-m", "clusterkit", "gc"], cwd=ROOT, capture_output=True, text=True, timeout=180
        )
        assert gc.returncode == 0, gc.stderr
        assert leftovers(docker_client, name) == []
        assert processes_of(name) == []
    finally:
        remove_cluster(docker_client, name)


def test_gc_leaves_a_cluster_that_up_finished(docker_client, node_images, run_dir, cli):
    """``up`` returned (its process is gone): the cluster is the user's, ``gc`` must not touch it."""
    name = "ck-sig-finished"
    remove_cluster(docker_client, name)
    try:
        started = cli(
            "up",
            "--runtime",
            "compose",
            "--name",
            name,
            "--workers",
            "1",
            "--no-supervise",
            "--scheduler-port",
            str(free_port()),
            "--dashboard-port",
            str(free_port()),
        )
        assert started.returncode == 0, started.stderr
        gc = cli("gc")
        assert gc.returncode == 0 and name not in gc.stdout, gc.stdout
        shown = cli("status", "--name", name)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert cli("down", "--name", name).returncode == 0
        assert leftovers(docker_client, name) == []
    finally:
        remove_cluster(docker_client, name)
