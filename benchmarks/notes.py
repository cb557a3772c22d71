"""The notes under P6, P7c, P8, P8w, P8s, P9 and P1's container floor: what is timed, from when to
when, and the figures of the run that explain it."""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.definitions import (
    FIXTURE_WORKERS,
    FLOOR_CONTAINERS,
    MANY_MEMORY,
    MANY_WORKERS,
    WORKERS,
    ratio,
)
from benchmarks.phases import has_events, span
from benchmarks.results import Results


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _runs(results: Results, key: str) -> list[dict[str, Any]]:
    return list(results.extras.get("pytest runs", {}).get(key, []))


def _ratio_text(results: Results, subject: str, baseline: str) -> str:
    value = ratio(results.series, subject, baseline)
    return "n/a" if value is None else f"{value:.2f}x"


def floor(results: Results) -> str:
    """P1's container floor."""
    runs = results.extras.get("floor runs", [])
    image = results.images.get("dask", {}).get("ref", "the dask node image")
    text = (
        f"The floor: {FLOOR_CONTAINERS} containers of `{image}` (one per node of P1's cluster), each "
        "`docker run --rm IMAGE python -c 'import distributed'` with the image's entry point as it is "
        f"(tini), on the default bridge network, started at once from {FLOOR_CONTAINERS} threads and timed "
        "from the first start until the last `docker run` returned (its container exited and removed): "
        "what any container cluster of a scheduler and 4 workers pays on this engine (creating and "
        "starting the containers, one Python start-up importing distributed in each) before any Dask work."
    )
    if runs:
        each = [x for r in runs for x in r.get("each", [])]
        text += (
            f" Median {_median([r['seconds'] for r in runs]):.2f} s; one container alone took "
            f"{min(each):.2f}-{max(each):.2f} s of it."
        )
    s = results.series
    if "P1/floor" in s and s["P1/floor"].median:
        text += (
            f" Compose `up` is {_ratio_text(results, 'P1/compose', 'P1/floor')} the floor, LocalCluster({WORKERS}) "
            f"{_ratio_text(results, 'P1/localcluster', 'P1/floor')} (no containers: its processes import "
            f"distributed from the host's disk), so compose `up` is "
            f"{_ratio_text(results, 'P1/compose', 'P1/localcluster')} LocalCluster({WORKERS})."
        )
    return text


def image_sizes(results: Results) -> str:
    """P6: the images measured."""
    parts = [
        "The engine's `Size` of each pinned node image (`docker image inspect`, in MB of 10^6 bytes as "
        "`docker images` shows it): every layer, the base image's included, counted once per image."
    ]
    for backend, info in results.images.items():
        key = f"P6/{backend}"
        if key in results.series and results.series[key].median is not None:
            size = results.series[key].median
            part = results.extras.get("image parts", {}).get(backend, {})
            base = (
                f": its base image `{part['base']}` {part['base MB']:.0f} MB, the venv and the source on it "
                f"{size - part['base MB']:.0f} MB"
                if part.get("base MB") is not None
                else ""
            )
            parts.append(
                f"{backend}: `{info['ref']}` (id {info['id']}, created {info['created']}) {size:.0f} MB{base}."
            )
    return " ".join(parts)


def rebuild(results: Results) -> str:
    """P7c: what a code-only rebuild does, and each sample."""
    samples = results.extras.get("P7c samples", [])
    parts = [
        'A code-only change: `ensure_image("dask")` hashes the clusterkit source, finds that the '
        "image's `clusterkit.source-hash` label differs and makes the same tag again on its tagged "
        "venv image (`clusterkit.images.commit`): a container of the venv image gets the source "
        "(about 1 MB, .pyc compiled on the host) and is committed with the image's settings and "
        "labels; no `docker build`, no build context. Timed from the call to its return (the source "
        "hash, the wheelhouse and base checks, copying and compiling the source, the commit). "
        "Samples: one from a copy of the source with one comment line changed, one back to the real "
        "source, in each repetition."
    ]
    if samples:
        by_source: dict[str, list[float]] = {}
        for sample in samples:
            by_source.setdefault(str(sample.get("source")), []).append(float(sample["seconds"]))
        parts.append(
            "Medians: "
            + "; ".join(
                f"{src} {statistics.median(v):.2f} s ({len(v)} run{'s' if len(v) != 1 else ''})"
                for src, v in by_source.items()
            )
            + "."
        )
        whole = sum(1 for x in samples if x.get("venv stage rebuilt too"))
        if whole:
            parts.append(f"{whole} sample(s) rebuilt the venv stage too: not a code-only rebuild.")
    return " ".join(parts)


def fixture(results: Results) -> str:
    """P8: what the fixture's cluster does that LocalCluster does not."""
    nums = results.extras.get("one-off numbers", {})
    worker, host = nums.get("container import worker"), nums.get("host import worker")
    f = FIXTURE_WORKERS
    parts = [
        f"LocalCluster({f}) is {f} spawned worker processes importing distributed from the host's disk, "
        "with the nannies in the client process; closing it stops processes. "
        '`Cluster("dask", runtime="testcontainers")`, what the session fixture starts, checks the node '
        "image (`ensure_image`, inside the timing, as the fixture does when no image is configured), "
        "creates a network and starts the scheduler and worker containers concurrently: the workers do "
        "not wait for the scheduler's health and these containers have no healthcheck, but the `start` "
        "step lasts until the scheduler's HTTP health endpoint answers (testcontainers' wait strategy). "
        "Then it waits until every worker is registered. On exit it removes the containers as compose "
        "`down` does (SIGTERM to the workers, then stop and remove in parallel), then the network: engine "
        "work that does not shrink with fewer workers."
    ]
    if worker is not None and host is not None:
        parts.append(
            f"Each container imports distributed once (a worker's entry point imports it while the "
            f"scheduler starts, runs the nanny in place, and the nanny forks the worker process): "
            f"{worker:.2f} s in a container against {host:.2f} s on the host (P1's one-off costs), "
            "three times (scheduler, 2 workers) on 2 cores, plus the scheduler's dashboard (Bokeh)."
        )
    parts.append(
        "The cost is paid once per session: the fixture is shared by every test of the session "
        "(and by xdist workers), so it is amortised, not per test."
    )
    return " ".join(parts)


def _pytest_parts(results: Results, keys: list[tuple[str, str]]) -> str:
    """Median wall time against pytest's own reported time, per side."""
    parts = []
    for key, name in keys:
        runs = _runs(results, key)
        walls = [r["seconds"] for r in runs]
        inside = [r["pytest session"] for r in runs if r.get("pytest session") is not None]
        if walls and inside:
            wall, own = _median(walls), _median(inside)
            parts.append(f"{name} {wall:.2f} s, of which pytest reported {own:.2f} s")  # type: ignore[str-format]
    if not parts:
        return ""
    return (
        "Medians, the whole run against the time pytest reports (collection, fixtures, the test; not the "
        "interpreter's start-up, imports and plugin loading): " + "; ".join(parts) + "."
    )


def _warm(results: Results, key: str) -> str:
    if results.run.get("without_reuse"):
        return (
            " This run left out `--clusterkit-reuse` (`--without-reuse`): the 'warm' runs were cold, "
            "each starting and removing its cluster."
        )
    took = results.extras.get("pytest warm-ups", {}).get(key)
    if took is None:
        return (
            " The untimed first run, which starts the cluster and keeps it (`--clusterkit-reuse`), failed: "
            "no warm runs (see the failed runs below)."
        )
    failed = results.extras.get("gc --reuse failures", {}).get(key)
    removed = results.extras.get("kept clusters removed", {}).get(key)
    how = "; ".join(removed) if removed else "nothing of it was left to remove"
    return (
        f" The untimed first run ({took:.2f} s) started the cluster and kept it (`--clusterkit-reuse`); each "
        "timed run then found it, connected and ran the test, and left it up. The warm runs came after their "
        "baseline's runs (the kept cluster, idling, would load the cores beside them); afterwards the kept "
        f"cluster was removed ({how})" + (f"; removing it failed: {failed[-1]}" if failed else "") + "."
    )


def _builds(results: Results, keys: list[str]) -> str:
    """Timed runs whose fixture built a node image (the source changed during the run)."""
    built = [
        key
        for key in keys
        for run in _runs(results, key)
        if any(" built " in f" {n} " or "building" in n for n in run.get("notes") or [])
    ]
    if not built:
        return ""
    return (
        f" {len(built)} timed run(s) ({', '.join(sorted(set(built)))}) built a node image inside the timing "
        "(the fixture checks the image as it does for a user; the clusterkit source had changed)."
    )


WHOLE_RUN = (
    "Each run is a whole `.venv/bin/python -m pytest -q -p no:cacheprovider FOLDER` in a fresh process "
    "(a project folder of its own: a `pytest.ini`, one test file, the baseline's `conftest.py`), timed from "
    "its start to its exit: interpreter start-up, plugins (clusterkit's plugin loads on both sides), "
    "collection, the session fixture, the test, the fixture's tear-down; without `CI` in the environment. "
    "clusterkit's fixture checks its node image in every run, as it does for a user (the image is current: "
    "a hash of the source and a look-up)."
)


def dask_runs(results: Results) -> str:
    """P8w."""
    f = FIXTURE_WORKERS
    text = (
        f"{WHOLE_RUN} The test: `submit(sum, [1, 2, 3]).result() == 6`. Fixture side: `dask_cluster` "
        f"({f} workers, testcontainers runtime; the autouse fixture ships the test module to the workers). "
        f"Baseline: a conftest fixture `LocalCluster({f}, threads_per_worker=1)` + `Client`, started and "
        "closed in every run (its first run discarded)."
    )
    text += _warm(results, "P8w/fixture-warm") + _builds(results, ["P8w/fixture-warm"])
    extra = _pytest_parts(
        results, [("P8w/fixture-warm", "fixture (warm)"), ("P8w/localcluster", "LocalCluster")]
    )
    return f"{text} {extra}".strip()


def spark_runs(results: Results) -> str:
    """P8s."""
    text = (
        f"{WHOLE_RUN} The test: a 100-row DataFrame grouped and counted. Cold: `spark_session` without "
        "reuse: the run starts the Spark cluster (a master and 2 workers, testcontainers runtime), starts "
        "the driver JVM in the pytest process, runs the test, removes the cluster. Baseline: a conftest "
        "`spark_session` (it overrides the plugin's) of `SparkSession.builder.master('local[2]')` (4 shuffle "
        "partitions, UTC, as the fixture's session), a driver JVM in the pytest process. Cold and baseline "
        "runs alternate. Warm: `spark_connect_session` (Spark Connect: the driver runs in the cluster, "
        "the pytest process starts no JVM)."
    )
    text += _warm(results, "P8s/connect-warm") + _builds(results, ["P8s/fixture-cold", "P8s/connect-warm"])
    extra = _pytest_parts(
        results,
        [
            ("P8s/fixture-cold", "spark_session (cold)"),
            ("P8s/local", "local[2]"),
            ("P8s/connect-warm", "spark_connect_session (warm)"),
        ],
    )
    return f"{text} {extra}".strip()


def many_workers(results: Results) -> str:
    """P9."""
    m = MANY_WORKERS
    runs = len(results.series["P9/compose-up"].values) if "P9/compose-up" in results.series else 0
    text = (
        f"Compose: `cluster.up` of {m} workers (1 core, {MANY_MEMORY} each) from the call until the "
        f"scheduler lists all {m}, then `cluster.down` from the call to its return (every container and "
        f"the network removed). LocalCluster({m}, threads_per_worker=1, memory_limit=512MiB): from the "
        f"constructor until `wait_for_workers({m})` returns, then `client.close()` + `cluster.close()`. "
        f"Compose and LocalCluster alternate; {runs} run{'s' if runs != 1 else ''} each (fewer than the "
        f"other rows, `--p9-repeat`: a round takes about a minute here). Both sides start {m} worker "
        "processes importing distributed on the same cores; compose adds per worker a container, a veth "
        "pair and a nanny process of its own (LocalCluster's nannies live in the client process). "
        "Compose `down` sends SIGTERM to every worker at once, waits briefly until the scheduler lists "
        "none, then stops and removes the containers in parallel, then the network; LocalCluster's "
        "close has its nannies end their worker processes."
    )
    marks = results.phases.get("P9/compose-up", [])
    if has_events(marks):
        start, wait = span(marks, "start event", "wait event"), span(marks, "wait event", "ready event")
        if start is not None and wait is not None:
            text += (
                f" Compose phases (medians): start {start:.2f} s, wait (workers registering) {wait:.2f} s."
            )
    return text
