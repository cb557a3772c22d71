"""Health verdicts, records of ownership, escaping, signals: what needs no engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from rich.console import Console

from clusterkit import health, records
from clusterkit.health import EXITED, MISSING, RESTARTING, RUNNING, NodeState, verdict, with_missing
from clusterkit.status import ClusterStatus, WorkerStatus

SCHEDULER = NodeState("scheduler", "s", RUNNING)


def workers(*states: str) -> list[NodeState]:
    return [
        NodeState("worker", f"w{i}", s, exit_code=137 if s == EXITED else None) for i, s in enumerate(states)
    ]


@pytest.mark.parametrize(
    ("nodes", "wanted", "registered", "answers", "expected"),
    [
        ([SCHEDULER, *workers(RUNNING, RUNNING)], 2, 2, True, "healthy"),
        ([SCHEDULER, *workers(RUNNING, RUNNING)], 2, 1, True, "degraded"),  # a worker not registered
        ([SCHEDULER, *workers(RUNNING, EXITED)], 2, 1, True, "degraded"),  # killed
        ([SCHEDULER, *workers(RUNNING, RESTARTING)], 2, 1, True, "degraded"),  # crash loop
        ([SCHEDULER, *workers(RUNNING, RUNNING)], 3, 2, True, "degraded"),  # the spec wants 3
        ([SCHEDULER, *workers(RUNNING, RUNNING)], 2, 3, True, "degraded"),  # more than wanted
        ([SCHEDULER], 3, 0, True, "degraded"),  # half-started: "0 of 0" was called healthy
        ([SCHEDULER, *workers(RUNNING)], 1, 0, False, "down"),  # the scheduler does not answer
        ([NodeState("scheduler", "s", EXITED, 137), *workers(RUNNING)], 1, 0, False, "down"),
        (workers(RUNNING), 1, 1, True, "down"),  # no scheduler node at all
    ],
)
def test_verdict(nodes, wanted, registered, answers, expected):
    found, problems = verdict(
        with_missing(nodes, wanted), wanted=wanted, registered=registered, scheduler_answers=answers
    )
    assert found == expected
    assert (problems == []) == (expected == "healthy")


def test_missing_workers_are_listed_and_named_in_the_problems():
    listed = with_missing([SCHEDULER], 3)
    assert [n.state for n in listed] == [RUNNING, MISSING, MISSING, MISSING]
    _, problems = verdict(listed, wanted=3, registered=0, scheduler_answers=True)
    assert "worker (worker 1 of 3) missing" in problems
    assert "0 of 3 wanted workers registered with the scheduler" in problems


def test_a_runtime_without_nodes_is_graded_by_the_scheduler_alone():
    assert verdict(None, wanted=2, registered=2, scheduler_answers=True) == ("healthy", [])
    assert verdict(None, wanted=2, registered=1, scheduler_answers=True)[0] == "degraded"


def test_describe():
    node = NodeState("worker", "ck-w-2", EXITED, exit_code=137, restarts=1, detail="OOMKilled")
    assert node.describe() == "worker ck-w-2 exited (code 137, 1 restart, OOMKilled)"


def status(health_: str | None) -> ClusterStatus:
    return ClusterStatus(
        backend="dask",
        scheduler_address="127.0.0.1:8786",
        state="RUNNING",
        dashboard_url=None,
        workers=(WorkerStatus("w1", "tcp://10.0.0.2:1", 1, 2**30, "RUNNING"),),
        health=health_,
        wanted=3,
        nodes=(SCHEDULER, *workers(RUNNING, EXITED), NodeState("worker", "(worker 3 of 3)", MISSING)),
        problems=("worker w1 exited (code 137)",),
        repairs=("worker w1 exited (code 137): started it again",),
    )


@pytest.mark.parametrize(("health_", "code"), [("healthy", 0), ("degraded", 3), ("down", 4), (None, 0)])
def test_exit_codes(health_, code):
    assert status(health_).exit_code == code == health.EXIT_CODES.get(health_ or "healthy")


def test_table_and_json_say_wanted_nodes_problems_and_repairs():
    console = Console(record=True, width=160)
    status("degraded").render(console)
    text = console.export_text()
    assert "health degraded" in text and "1 of 3 workers alive" in text
    assert "missing" in text and "137" in text
    assert "problem: worker w1 exited" in text and "repaired: worker w1" in text
    data = json.loads(status("degraded").to_json())
    assert data["health"] == "degraded" and data["wanted"] == 3
    assert data["nodes"][2] == {
        "role": "worker",
        "name": "w1",
        "state": "exited",
        "exit_code": 137,
        "restarts": 0,
        "where": "",
        "detail": "",
    }


def test_not_connected():
    found = ClusterStatus.not_connected("spark", "call connect_to_scheduler first")
    assert found.state == "NOT CONNECTED" and found.exit_code == 4 and found.workers == ()


# -- records and ownership ------------------------------------------------------------


def test_records_update_merge_count_and_forget(run_dir):
    records.update("c1", wanted=3, ready=False)
    records.update("c1", ready=True)
    records.count_restart("c1", "w1")
    with records.locked("c1"):
        records.count_restart("c1", "w1")  # re-entrant: a repair records what it did
    assert records.load("c1") == {"wanted": 3, "ready": True, "restarts": {"w1": 2}}
    records.forget("c1")
    assert records.load("c1") == {}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize(
    ("record", "held_label", "orphan"),
    [
        ({"ready": False}, False, True),  # `up` was killed before it was done
        ({"ready": True}, False, False),  # `up` finished: the user's cluster
        ({"ready": True, "held": True}, False, True),  # held by a process that is gone
        ({}, False, False),  # no record here (another run dir): never removed
        ({}, True, True),  # a test session's: gone with its owner
    ],
)
def test_orphaned(run_dir, record, held_label, orphan):
    if record:
        records.update("c2", **record)
    labels = records.owner_labels(_dead_pid())
    if held_label:
        labels[records.HELD] = "1"
    assert records.orphaned("c2", labels) is orphan
    assert records.orphaned("c2", {**labels, **records.owner_labels()}) is False  # the owner is alive


def test_a_recycled_pid_is_not_the_owner():
    labels = records.owner_labels()
    labels[records.OWNER_STARTED] = "12.000"  # this PID, but a process that started long ago
    labels[records.OWNER_TICKS] = "1200"
    assert records.owner_alive(labels) is False
    del labels[records.OWNER_TICKS]  # labels of a clusterkit that wrote no ticks: the start time decides
    assert records.owner_alive(labels) is False


# -- the compose file carries values verbatim --------------------------------------------


def test_env_values_are_escaped_for_compose():
    from clusterkit.render.compose import render
    from clusterkit.spec import resolve_spec

    values = {
        "A": "abc$def",
        "B": "x$$y",
        "C": 'it\'s "quoted" and  spaced',
        "D": "line1\nline2",
        "E": "${HOME}",
    }
    spec = resolve_spec(overrides={"env": values}, environ={})
    doc = render(spec, "clusterkit/dask:abc")
    env = doc["services"]["worker"]["environment"]
    assert env["A"] == "abc$$def" and env["B"] == "x$$$$y" and env["E"] == "$${HOME}"
    assert env["C"] == values["C"] and env["D"] == values["D"]
    label = json.loads(doc["services"]["scheduler"]["labels"]["clusterkit.spec"].replace("$$", "$"))
    assert label["env"] == values


def test_ipv6_binds_are_bracketed_and_polled_where_published():
    from clusterkit.render.compose import render
    from clusterkit.spec import resolve_spec

    spec = resolve_spec(overrides={"bind_address": "::"}, environ={})
    assert render(spec, "x")["services"]["scheduler"]["ports"][0] == "[::]:8786:8786"
    assert spec.scheduler_host == "::1" and spec.scheduler_address == "[::1]:8786"
    wildcard = resolve_spec(overrides={"bind_address": "0.0.0.0"}, environ={})
    assert wildcard.scheduler_address == "127.0.0.1:8786"


def test_exposure_warning():
    from clusterkit.runtimes.base import exposure
    from clusterkit.spec import resolve_spec

    assert exposure(resolve_spec(environ={})) == ""
    assert exposure(resolve_spec(overrides={"bind_address": "::1"}, environ={})) == ""
    assert "without authentication" in exposure(
        resolve_spec(overrides={"bind_address": "0.0.0.0"}, environ={})
    )


# -- signals ----------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signals_raise_interrupted_and_the_block_cleans_up(sig):
    from clusterkit.interrupts import SIGNALS, Interrupted, signals_raise

    before = {s: signal.getsignal(s) for s in SIGNALS}
    during = {}
    cleaned = []
    with pytest.raises(Interrupted) as caught:
        with signals_raise():
            try:
                during.update({s: signal.getsignal(s) for s in SIGNALS})
                os.kill(os.getpid(), sig)
                signal.sigtimedwait([], 0) if hasattr(signal, "sigtimedwait") else None
            finally:
                cleaned.append(True)
    assert cleaned == [True] and caught.value.exit_code == 128 + sig
    assert isinstance(caught.value, KeyboardInterrupt)
    # Inside the block, signals_raise's own handler owned every signal ...
    for s in SIGNALS:
        assert callable(during[s]) and during[s] is not before[s], signal.Signals(s).name
        assert during[s].__qualname__ == "signals_raise.<locals>.handler", signal.Signals(s).name
    # ... and after it, exactly the handlers that were there before are back.
    assert {s: signal.getsignal(s) for s in SIGNALS} == before


def test_the_drift_line_replaces_distributeds_table():
    from clusterkit import drift

    found = drift.compare(
        {"client": {"python": "3.11.7", "dask": "1"}, "scheduler": {"python": "3.12.2", "dask": "1"}},
        backend="dask",
    )
    line = drift.summarize(found)
    assert line.count("\n") == 0 and "python 3.12.2 on the scheduler (client 3.11.7, error)" in line
    assert drift.summarize([]) == ""


def test_log_excerpt_keeps_the_cause_of_a_crash():
    from clusterkit.runtimes.containers import log_excerpt

    log = "start\nValueError: unknown address scheme 'x'\n" + "\n".join(f"  frame {i}" for i in range(20))
    assert log_excerpt(log)[0] == "ValueError: unknown address scheme 'x'"
