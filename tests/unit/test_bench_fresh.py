"""Pure parts of benchmarks.fresh (P7): image selection, `make up` output -> steps, results (no Docker)."""

from __future__ import annotations

import json
import signal

import pytest

from benchmarks import fresh
from benchmarks.fresh import Image

LABELS = {"clusterkit.project": "clusterkit"}

# What `make up` prints on a fresh clone (stdout and stderr together), with the seconds each line came.
DASK_OUTPUT = [
    (0.01, "test -x .venv/bin/python || python3.11 -m venv .venv"),
    (
        3.2,
        ".venv/bin/pip install --quiet --disable-pip-version-check --require-hashes "
        "-r images/requirements.lock -r images/requirements-dev.lock",
    ),
    (51.0, ".venv/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e ."),
    (55.5, "touch .venv/bin/.installed"),
    (
        57.0,
        "clusterkit: downloading 93 wheels for cp311/manylinux_2_36_x86_64 "
        "(log: /tmp/x/clusterkit-cache/logs/wheelhouse-0123456789abcdef.log)",
    ),
    (99.0, "clusterkit: built wheelhouse-0123456789abcdef in 42.0s"),
    (
        99.1,
        "clusterkit: building clusterkit/base:8aba5fea7c3e from Debian packages (mmdebstrap) "
        "(log: /tmp/x/clusterkit-cache/logs/clusterkit_base_8aba5fea7c3e.log)",
    ),
    (160.3, "clusterkit: built clusterkit/base:8aba5fea7c3e in 61.2s"),
    (
        160.4,
        "clusterkit: building clusterkit/dask:5a58316371d1 and its venv stage clusterkit/dask-env:5a58316371d1 "
        "(log: /tmp/x/clusterkit-cache/logs/clusterkit_dask_5a58316371d1.log)",
    ),
    (240.4, "clusterkit: built clusterkit/dask:5a58316371d1 in 80.0s"),
    (240.5, "clusterkit/dask:5a58316371d1"),
    (241.0, ".venv/bin/clusterkit up --backend dask --workers 2 --name ck-fresh-dask "),
    (242.0, "clusterkit: preparing dask cluster 'ck-fresh-dask' (compose)"),
    (242.1, "clusterkit: starting the dask scheduler and 2 workers"),
    (245.0, "clusterkit: waiting for 2 workers to register"),
    (248.0, "clusterkit: cluster 'ck-fresh-dask' is ready"),
    (248.1, "                 cluster 'ck-fresh-dask' (dask, compose): healthy"),
    (
        248.3,
        "clusterkit: supervising: a node that dies is started again (pid 4242; `clusterkit down` stops it)",
    ),
]


# --- image selection ---------------------------------------------------------------------------


def test_every_clusterkit_tag_goes_children_first():
    images = [
        Image("sha256:b", ("clusterkit/base:1",), LABELS),
        Image("sha256:e", ("clusterkit/dask-env:2",), LABELS),
        Image("sha256:d", ("clusterkit/dask:2",), LABELS),
        Image("sha256:n", ("clusterkit/dask-notebook:3",), {}),
        Image("sha256:j", ("clusterkit/base-jre:4",), LABELS),
        Image("sha256:s", ("clusterkit/spark:5", "clusterkit/spark:6"), LABELS),
    ]
    plan = fresh.plan_removal(images)
    assert plan.tags == [
        "clusterkit/dask-notebook:3",
        "clusterkit/dask:2",
        "clusterkit/spark:5",
        "clusterkit/spark:6",
        "clusterkit/dask-env:2",
        "clusterkit/base-jre:4",
        "clusterkit/base:1",
    ]
    assert plan.ids == []
    assert plan.kept == []


def test_untagged_labelled_images_go_by_id_and_other_images_stay():
    images = [
        Image("sha256:dangling", (), LABELS),
        Image("sha256:dangling", (), LABELS),  # listed twice: removed once
        Image("sha256:other-dangling", (), {"maintainer": "someone"}),
        Image("sha256:debian", ("debian:bookworm-slim",), {}),
        Image("sha256:postgres", ("postgres:16",), {"clusterkit.project": "something-else"}),
    ]
    plan = fresh.plan_removal(images)
    assert plan.tags == []
    assert plan.ids == ["sha256:dangling"]
    assert plan.kept == []
    assert fresh.removal_commands(plan) == [["docker", "image", "rm", "sha256:dangling"]]


def test_labelled_images_with_other_names_keep_those_names():
    derived = Image("sha256:mine", ("envexp:1",), LABELS)  # a user's image FROM a clusterkit image
    both = Image("sha256:both", ("clusterkit/dask:2", "myteam/dask:latest"), LABELS)
    plan = fresh.plan_removal([derived, both])
    assert plan.tags == ["clusterkit/dask:2"]  # by name: the other name and the image stay
    assert plan.ids == []
    assert plan.kept == [derived, both]
    commands = fresh.removal_commands(plan)
    assert commands == [["docker", "image", "rm", "--force", "clusterkit/dask:2"]]
    # force only ever goes with a clusterkit/ name, never with an ID or another name
    assert all(argv[-1].startswith("clusterkit/") for argv in commands if "--force" in argv)


def test_a_tag_elsewhere_named_clusterkit_is_not_ours():
    assert fresh.is_ours("clusterkit/dask:1")
    assert not fresh.is_ours("myregistry:5000/clusterkit/dask:1")
    assert not fresh.is_ours("clusterkit-tools:1")


def test_images_from_docker_inspect():
    data = [
        {"Id": "sha256:a", "RepoTags": ["clusterkit/dask:1"], "Config": {"Labels": LABELS}},
        {"Id": "sha256:b", "RepoTags": [], "Config": {"Labels": None}},
        {"Id": "sha256:c", "RepoTags": ["<none>:<none>"], "Config": {}},
        {"Id": "sha256:d", "RepoTags": None, "Config": None},
    ]
    found = fresh.images_from_inspect(data)
    assert found == [
        Image("sha256:a", ("clusterkit/dask:1",), LABELS),
        Image("sha256:b", (), {}),
        Image("sha256:c", (), {}),
        Image("sha256:d", (), {}),
    ]
    assert fresh.short_id("sha256:0123456789abcdef") == "0123456789ab"


# --- `make up` output -> steps -----------------------------------------------------------------


def test_steps_of_a_dask_run():
    steps = fresh.parse_steps(DASK_OUTPUT, 250.0, "dask")
    assert list(steps) == ["venv", "wheelhouse", "base image", "node image", "cluster up", "other"]
    assert steps["venv"] == 55.5
    assert steps["wheelhouse"] == 42.0
    assert steps["base image"] == 61.2
    assert steps["node image"] == 80.0
    assert steps["cluster up"] == 9.0  # from make starting `clusterkit up` (241.0) to the return
    assert steps["other"] == pytest.approx(250.0 - (55.5 + 42.0 + 61.2 + 80.0 + 9.0), abs=0.05)
    assert sum(steps.values()) == pytest.approx(250.0, abs=0.2)


def test_steps_of_a_spark_run_count_only_its_images():
    lines = [
        (40.0, "touch .venv/bin/.installed"),
        (90.0, "clusterkit: built wheelhouse-0123456789abcdef in 48.5s"),
        (200.0, "clusterkit: built clusterkit/base-jre:77aa in 109.9s"),
        (300.0, "clusterkit: built clusterkit/spark:abcd in 99.5s"),
        (300.5, "clusterkit: built clusterkit/spark-notebook:ef01 in 30.0s"),  # not part of `make up`
        (301.0, "clusterkit: built clusterkit/dask:abcd in 10.0s"),  # another backend's
        (302.0, ".venv/bin/clusterkit up --backend spark --workers 2 --name ck-fresh-spark "),
    ]
    steps = fresh.parse_steps(lines, 320.0, "spark")
    assert steps == {
        "venv": 40.0,
        "wheelhouse": 48.5,
        "base image": 109.9,
        "node image": 99.5,
        "cluster up": 18.0,
        "other": pytest.approx(320.0 - 40.0 - 48.5 - 109.9 - 99.5 - 18.0, abs=0.05),
    }


def test_steps_that_did_not_happen_are_left_out():
    lines = [
        (1.5, "clusterkit: nothing to build: clusterkit/dask:1 is current"),
        (2.0, "clusterkit: preparing dask cluster 'x' (compose)"),  # no make echo: its first event
    ]
    assert fresh.parse_steps(lines, 8.0, "dask") == {"cluster up": 6.0, "other": 2.0}
    assert fresh.parse_steps([], 3.0, "dask") == {"other": 3.0}


@pytest.mark.parametrize(
    ("upto", "step"),
    [
        (0, "venv"),
        (2, "venv"),
        (4, "checks (docker, mmdebstrap)"),
        (5, "wheelhouse"),
        (7, "base image"),
        (9, "node image"),
        (12, "cluster up"),
        (len(DASK_OUTPUT), "cluster up"),
    ],
)
def test_the_step_a_failed_run_was_in(upto, step):
    assert fresh.failing_step(DASK_OUTPUT[:upto], "dask") == step


def test_the_line_that_says_why_make_up_failed():
    lines = [
        *DASK_OUTPUT[:7],
        (100.0, "error: building clusterkit/base:8aba5fea7c3e with mmdebstrap failed"),
        (100.0, "E: cannot reach the mirror"),
        (100.1, "make: *** [Makefile:61: up] Error 1"),
    ]
    assert fresh.error_line(lines) == "error: building clusterkit/base:8aba5fea7c3e with mmdebstrap failed"
    assert fresh.error_line([(1.0, "x"), (2.0, "make: *** [Makefile:20: .venv/bin/.installed] Error 1")]) == (
        "make: *** [Makefile:20: .venv/bin/.installed] Error 1"
    )
    assert fresh.error_line([(1.0, "last words"), (1.1, "  ")]) == "last words"
    assert fresh.error_line([]) == "(no output)"


# --- environment, results, text ----------------------------------------------------------------


def test_the_timed_environment_is_a_new_users():
    environ = {
        "HOME": "/root",
        "PATH": "/work/main/.venv/bin:/usr/local/bin:/usr/bin",
        "VIRTUAL_ENV": "/work/main/.venv",
        "CLUSTERKIT_IMAGES_DIR": "/elsewhere/images",
        "CLUSTERKIT_RUN_DIR": "/my/state",
        "BASE_IMAGE": "debian:bookworm-slim",
        "MAKEFLAGS": "-j2",
        "PYTHONPATH": "/work/main",
        "PIP_DEFAULT_TIMEOUT": "180",
        "XDG_CACHE_HOME": "/root/.cache",
    }
    folders = {
        "PIP_CACHE_DIR": "/tmp/f/pip-cache",
        "CLUSTERKIT_CACHE_DIR": "/tmp/f/clusterkit-cache",
        "XDG_CACHE_HOME": "/tmp/f/xdg-cache",
        "CLUSTERKIT_RUN_DIR": "/tmp/f/state",
    }
    env = fresh.fresh_env(environ, folders, ["/work/main/.venv/bin/"])
    assert env["PATH"] == "/usr/local/bin:/usr/bin"
    for gone in ("VIRTUAL_ENV", "CLUSTERKIT_IMAGES_DIR", "BASE_IMAGE", "MAKEFLAGS", "PYTHONPATH"):
        assert gone not in env
    assert {k: env[k] for k in folders} == folders
    assert env["HOME"] == "/root" and env["PIP_DEFAULT_TIMEOUT"] == "180"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert environ["XDG_CACHE_HOME"] == "/root/.cache"  # this process's environment is not changed


def test_the_folders_of_a_run_are_new_and_apart(tmp_path):
    run = fresh.Run("spark", tmp_path / "t", tmp_path / "logs")
    assert (run.code, run.name) == ("P7b", "ck-fresh-spark")
    assert set(run.folders) == {
        "PIP_CACHE_DIR",
        "CLUSTERKIT_CACHE_DIR",
        "XDG_CACHE_HOME",
        "CLUSTERKIT_RUN_DIR",
    }
    assert len(set(run.folders.values())) == 4
    assert all(p.startswith(str(run.home)) for p in run.folders.values())
    assert not str(run.repo).startswith(tuple(run.folders.values()))
    assert run.up_argv() == ["make", "up", "BACKEND=spark", "NAME=ck-fresh-spark", "WORKERS=2"]
    assert run.down_argv()[:2] == ["make", "down"] and "NAME=ck-fresh-spark" in run.down_argv()


def run_record(backend: str, seconds: float, steps: dict[str, float]) -> dict:
    code, goal = fresh.GOALS[backend]
    return {
        "backend": backend,
        "command": f"make up BACKEND={backend} NAME=ck-fresh-{backend} WORKERS=2",
        "seconds": seconds,
        "goal_seconds": goal,
        "met": seconds <= goal,
        "steps": steps,
        "log": f"benchmarks/fresh-logs/{code}.log",
        "date": "2026-11-27T16:00:00+00:00",
        "commit": "43b26fd",
    }


def test_a_dask_only_run_keeps_the_earlier_spark_figure():
    old = {
        "date": "old",
        "runs": {"P7a": run_record("dask", 300.0, {}), "P7b": run_record("spark", 400.0, {})},
    }
    new = {"date": "new", "command": "c", "machine": "m", "runs": {"P7a": run_record("dask", 200.0, {})}}
    merged = fresh.merge_results(old, new)
    assert merged["date"] == "new"
    assert merged["runs"]["P7a"]["seconds"] == 200.0
    assert merged["runs"]["P7b"]["seconds"] == 400.0
    assert fresh.merge_results(None, new)["runs"] == new["runs"]


def test_the_table_and_the_results_section(tmp_path):
    dask = run_record("dask", 250.0, fresh.parse_steps(DASK_OUTPUT, 250.0, "dask"))
    spark = run_record("spark", 380.0, {"venv": 55.0, "node image": 200.0, "other": 125.0})
    table = fresh.table_lines("P7a", dask)
    assert table[0].startswith("P7a: `make up` (dask) on a fresh machine: 250.0 s (goal <= 240 s: no)")
    assert any(line.split() == ["wheelhouse", "42.0"] for line in table)
    assert table[-1].split()[-1] == "250.0"

    results = {"date": "d", "command": "cmd", "machine": "2 cores", "runs": {"P7b": spark, "P7a": dask}}
    text = fresh.section(results)
    assert text.startswith(fresh.MARKERS[0]) and text.endswith(fresh.MARKERS[1])
    assert "| P7a: <= 4 min |" in text and "| P7b: <= 7 min |" in text
    assert "| **NO** |" in text and "| yes |" in text
    assert "| step | P7a (dask) | P7b (spark) |" in text
    assert "| wheelhouse | 42.0 s |  |" in text
    assert "| **total** | **250.0 s** | **380.0 s** |" in text
    assert "mmdebstrap" in text

    # Into RESULTS.md between its markers, every other section kept; fresh.json merged.
    (tmp_path / "RESULTS.md").write_text(
        "# clusterkit benchmarks\n\n<!-- faults start -->\nF\n<!-- faults end -->\n"
    )
    (tmp_path / "fresh.json").write_text(json.dumps({"runs": {"P7b": spark}}))
    fresh.write_results({"date": "d", "command": "cmd", "machine": "m", "runs": {"P7a": dask}}, tmp_path)
    saved = json.loads((tmp_path / "fresh.json").read_text())
    assert set(saved["runs"]) == {"P7a", "P7b"}
    md = (tmp_path / "RESULTS.md").read_text()
    assert "<!-- faults start -->\nF\n<!-- faults end -->" in md
    assert md.count(fresh.MARKERS[0]) == 1 and "**380.0 s**" in md
    fresh.write_results({"date": "d2", "command": "cmd", "machine": "m", "runs": {"P7a": dask}}, tmp_path)
    md = (tmp_path / "RESULTS.md").read_text()
    assert md.count(fresh.MARKERS[0]) == 1 and "- Date: d2" in md


def test_exit_codes_of_interrupts():
    assert fresh.exit_code(KeyboardInterrupt()) == 130
    assert fresh.exit_code(KeyboardInterrupt("SIGTERM")) == 128 + signal.SIGTERM
    assert fresh.exit_code(KeyboardInterrupt("SIGHUP")) == 129


def test_the_failure_line_names_the_run_the_step_and_the_log(tmp_path):
    run = fresh.Run("dask", tmp_path / "t", tmp_path / "logs")
    run.logs.mkdir()
    run.log.write_text("...")
    run.phase, run.lines = "make up", DASK_OUTPUT[:8]
    line = fresh.failure_line(run, None, "interrupted (SIGINT)")
    assert line.startswith("error: P7a (dask) failed in step 'base image': interrupted (SIGINT); log: ")
    assert line.endswith(str(run.log))
    run.phase = "removing images"
    assert "step 'removing images'" in fresh.failure_line(run, None, "x")
    assert fresh.failure_line(None, None, "why") == "error: P7 failed: why"
