"""Owner liveness survives a wall-clock step (the clock of a VM is stepped; a live owner looked dead)."""

import os
import subprocess
import sys

from clusterkit import records


def test_a_stepped_clock_does_not_make_a_live_owner_dead():
    me = records.owner()
    assert me["ticks"] == records.start_ticks(os.getpid())
    stepped = me["started"] + 120  # what create_time reads after the clock moved two minutes
    assert records.alive(os.getpid(), stepped, me["ticks"])
    assert records.owner_alive(
        {
            "clusterkit.session-pid": str(os.getpid()),
            records.OWNER_STARTED: f"{stepped:.3f}",
            records.OWNER_TICKS: str(me["ticks"]),
        }
    )


def test_another_process_on_the_same_pid_is_not_the_owner():
    me = records.owner()
    assert not records.alive(os.getpid(), me["started"], me["ticks"] + 1)


def test_a_process_that_ended_is_not_alive():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    found = records.owner(child.pid)
    child.wait()
    assert not records.alive(child.pid, found["started"], found["ticks"])


def test_without_ticks_the_start_time_decides():
    me = records.owner()
    assert records.alive(os.getpid(), me["started"])
    assert not records.alive(os.getpid(), me["started"] + 120)
