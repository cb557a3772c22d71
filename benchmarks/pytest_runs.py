"""P8w and P8s: whole ``pytest`` runs of one test, as the user of the fixtures waits for them.

Each side is a project folder of its own under a temporary folder (a
``pytest.ini``, so it is the rootdir; a test file; the baseline's ``conftest.py``)
and each run is ``.venv/bin/python -m pytest -q -p no:cacheprovider FOLDER [...]``
in a fresh process, timed from its start to its exit (interpreter start-up,
plugins, collection, the fixture, the test, the fixture's tear-down), in an
environment without ``CI`` and with ``CLUSTERKIT_REQUIRE_DOCKER=1`` (a fixture that
cannot start fails the run instead of skipping the test). A run counts only when
it exits 0 with ``1 passed``.

Warm rows (``--clusterkit-reuse``): one untimed run first starts the cluster and
keeps it, then each timed run reuses it; afterwards ``clusterkit gc --reuse``
removes it (or ``clusterkit down --name`` when gc would remove kept clusters that
were there before: someone else's). The kept cluster would idle beside every other measurement, so the
warm runs come after the runs of their baseline (and of the cold rows), not
interleaved with them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.definitions import FIXTURE_WORKERS
from benchmarks.runner import _message

if TYPE_CHECKING:
    from benchmarks.runner import Runner

Meta = dict[str, dict[str, Any]]
REUSE = "--clusterkit-reuse"
RUN_TIMEOUT = 600
GC_TIMEOUT = 300
BIN = Path(sys.executable).parent

DASK_TEST = """\
def test_sum(dask_cluster):
    assert dask_cluster.client.submit(sum, [1, 2, 3]).result() == 6
"""
DASK_BASELINE_TEST = """\
def test_sum(client):
    assert client.submit(sum, [1, 2, 3]).result() == 6
"""
DASK_BASELINE_CONFTEST = f"""\
import pytest
from distributed import Client, LocalCluster


@pytest.fixture(scope="session")
def client():
    with LocalCluster(
        n_workers={FIXTURE_WORKERS}, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        with Client(cluster) as c:
            c.wait_for_workers({FIXTURE_WORKERS})
            yield c
"""
SPARK_TEST = """\
def test_dataframe({fixture}):
    df = {fixture}.createDataFrame([(i, i % 3) for i in range(100)], ["x", "k"])
    counts = {{row["k"]: row["count"] for row in df.groupBy("k").count().collect()}}
    assert counts == {{0: 34, 1: 33, 2: 33}}
"""
#: The plain local session a Spark project's conftest makes (2 shuffle partitions per core and UTC,
#: as the fixture's session has); it overrides the plugin's ``spark_session``.
SPARK_BASELINE_CONFTEST = """\
import pytest
from pyspark.sql import SparkSession


@pytest.fixture(scope="session")
def spark_session():
    session = (
        SparkSession.builder.master("local[2]")
        .appName("bench-p8s")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    yield session
    session.stop()
"""


@contextmanager
def project(files: dict[str, str], kind: str) -> Iterator[Path]:
    """A project folder with ``files`` (and a ``pytest.ini``: the folder is the rootdir)."""
    with tempfile.TemporaryDirectory(prefix=f"clusterkit-bench-{kind}-") as tmp:
        root = Path(tmp) / kind
        root.mkdir()
        (root / "pytest.ini").write_text("[pytest]\n")
        for name, text in files.items():
            (root / name).write_text(text)
        yield root


def pytest_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["CLUSTERKIT_REQUIRE_DOCKER"] = "1"
    return env


def pytest_run(folder: Path, extra: list[str]) -> tuple[float, float | None, list[str]]:
    """One whole run: (wall seconds, the session time pytest reported, the plugin's summary lines:
    whether a kept cluster was reused, or why not)."""
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder), *extra]
    t0 = time.perf_counter()
    done = subprocess.run(
        argv, cwd=folder, env=pytest_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    took = time.perf_counter() - t0
    out = (done.stdout + done.stderr).strip()
    if done.returncode != 0 or not re.search(r"\b1 passed\b", out):
        tail = "\n".join(out.splitlines()[-12:])
        raise RuntimeError(f"`pytest {' '.join(extra)}` exited {done.returncode}:\n{tail}")
    found = re.findall(r"passed[^\n]* in ([0-9.]+)s", out)
    notes = [line.strip() for line in out.splitlines() if line.startswith("clusterkit: ")]
    return took, float(found[-1]) if found else None, notes


def timed(
    runner: Runner, key: str, folder: Path, extra: list[str], meta: Meta, label: str, record: bool = True
) -> None:
    """One run of ``folder``, added to ``key`` (unless ``record`` is false: a warm-up)."""
    try:
        took, session, notes = pytest_run(folder, extra)
    except Exception as e:
        runner.say(f"[red]{label} failed: {_message(e).splitlines()[0]}")
        if record:
            runner.results.add(key, error=_message(e), **meta[key])
        return
    inside = f" (pytest's own time {session:.2f} s)" if session is not None else ""
    runner.say(f"{label}: {took:.2f} s{inside}" + "".join(f"\n  {n}" for n in notes))
    if not record:
        runner.results.warmups.append(f"{label}: {took:.2f} s{inside}")
        return
    runner.results.add(key, took, **meta[key])
    runner.results.extras.setdefault("pytest runs", {}).setdefault(key, []).append(
        {"seconds": took, "pytest session": session, "notes": notes}
    )


def reuse_args(runner: Runner) -> list[str]:
    """``--clusterkit-reuse``, unless the run was told to leave it out (``--without-reuse``)."""
    return [] if getattr(runner.args, "without_reuse", False) else [REUSE]


def _cli(args: list[str]) -> str:
    done = subprocess.run(
        [str(BIN / "clusterkit"), *args], env=pytest_env(), capture_output=True, text=True, timeout=GC_TIMEOUT
    )
    out = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        raise RuntimeError(f"`clusterkit {' '.join(args)}` exited {done.returncode}: {out[-300:]}")
    return out


def kept_clusters() -> set[str]:
    """What ``clusterkit gc --reuse`` would remove now (kept clusters, and dead sessions' leftovers)."""
    return {str(c["name"]) for c in json.loads(_cli(["gc", "--reuse", "--dry-run", "--json"]))}


def remove_kept(runner: Runner, before: set[str], key: str) -> None:
    """Remove the cluster the warm runs kept: ``clusterkit gc --reuse`` when it would remove nothing
    else (nothing was there before the warm-up); otherwise only what appeared since, by name
    (``clusterkit down --name N --runtime testcontainers``): another user's kept clusters stay."""
    try:
        mine = sorted(kept_clusters() - before)
        if not before:
            out = _cli(["gc", "--reuse"])
            done = f"`clusterkit gc --reuse`: {out.splitlines()[-1] if out else 'done'}"
            runner.say(done)
            runner.results.extras.setdefault("kept clusters removed", {}).setdefault(key, []).append(done)
            return
        for name in mine:
            _cli(["down", "--name", name, "--runtime", "testcontainers"])
            done = f"`clusterkit down --name {name}` (not `gc --reuse`: it would remove {sorted(before)} too)"
            runner.say(done)
            runner.results.extras.setdefault("kept clusters removed", {}).setdefault(key, []).append(done)
    except Exception as e:
        runner.say(f"[red]removing the kept cluster failed, it may be left: {_message(e)}")
        runner.results.extras.setdefault("gc --reuse failures", {}).setdefault(key, []).append(_message(e))


def warm_runs(runner: Runner, key: str, folder: Path, meta: Meta, label: str) -> None:
    """An untimed run that starts (and keeps) the cluster, then ``--repeat`` timed runs reusing it."""
    extra = reuse_args(runner)
    if not extra:
        runner.say(f"[yellow]{label}: without {REUSE} (--without-reuse): every run is cold")
    before: set[str] = set()
    try:
        before = kept_clusters() if extra else set()
        took, _, notes = pytest_run(folder, extra)
        what = "warm-up, starts and keeps the cluster" if extra else "warm-up"
        runner.say(f"{label} ({what}): {took:.2f} s" + "".join(f"\n  {n}" for n in notes))
        runner.results.warmups.append(f"{label} ({what}): {took:.2f} s")
        runner.results.extras.setdefault("pytest warm-ups", {})[key] = took
        for index in range(runner.args.repeat):
            timed(runner, key, folder, extra, meta, f"{label} #{index + 1}")
    except Exception as e:
        runner.say(f"[red]{label} (warm-up) failed: {_message(e).splitlines()[0]}")
        runner.results.add(key, error=_message(e), **meta[key])
    finally:
        if extra:
            remove_kept(runner, before, key)


def dask_runs(runner: Runner, meta: Meta) -> None:
    """P8w: the LocalCluster project's runs, then the fixture project's warm runs."""
    with (
        project({"test_sum.py": DASK_TEST}, "p8w-fixture") as fixture,
        project({"conftest.py": DASK_BASELINE_CONFTEST, "test_sum.py": DASK_BASELINE_TEST}, "p8w-lc") as base,
    ):
        # A first run reads distributed from the disk: discarded, as the fixture side's first run is.
        timed(runner, "P8w/localcluster", base, [], meta, "P8w LocalCluster run (warm-up)", record=False)
        for index in range(runner.args.repeat):
            timed(runner, "P8w/localcluster", base, [], meta, f"P8w LocalCluster run #{index + 1}")
        warm_runs(runner, "P8w/fixture-warm", fixture, meta, "P8w fixture run")


def spark_runs(runner: Runner, meta: Meta) -> None:
    """P8s: cold fixture and local[2] runs interleaved, then the Connect fixture's warm runs."""
    with (
        project({"test_df.py": SPARK_TEST.format(fixture="spark_session")}, "p8s-cold") as cold,
        project(
            {
                "conftest.py": SPARK_BASELINE_CONFTEST,
                "test_df.py": SPARK_TEST.format(fixture="spark_session"),
            },
            "p8s-local",
        ) as base,
        project({"test_df.py": SPARK_TEST.format(fixture="spark_connect_session")}, "p8s-connect") as warm,
    ):
        for index in range(runner.args.repeat):
            runner.say(f"[bold]P8s round {index + 1} of {runner.args.repeat}")
            timed(runner, "P8s/fixture-cold", cold, [], meta, f"P8s spark_session run (cold) #{index + 1}")
            timed(runner, "P8s/local", base, [], meta, f"P8s local[2] run #{index + 1}")
        warm_runs(runner, "P8s/connect-warm", warm, meta, "P8s spark_connect_session run")
