"""The start-up benchmarks: what each measures, its goal, and the rounds that measure it.

``make bench`` measures every row in one run; each figure is the median of the
run's repetitions (3 by default) and every ratio is taken between medians of the
same run, the two sides measured in the same, interleaved rounds.

- P1: ``cluster.up`` to 4 Dask workers registered: compose runtime vs
  ``distributed.LocalCluster(n_workers=4, threads_per_worker=1, processes=True)``
  (until ``client.wait_for_workers(4)`` returns), and the clusterkit local runtime.
  Goal: compose <= 2.5x LocalCluster.
- P1b: the same compose ``up`` vs the dask-docker project's compose layout on the
  same node image (``benchmarks/dask_docker/docker-compose.yml``): ``<compose> up -d
  --scale worker=4``, then a plain ``distributed.Client`` that retries connecting
  until ``wait_for_workers(4)`` returns. Goal: clusterkit <= 0.8x dask-docker.
- P2: ``cluster.up`` to 2 ALIVE Spark workers: compose vs the same master and
  workers as bare ``spark-class`` processes (local runtime). Goal: <= 1.0x.
- P3: ``cluster.down`` of 4 Dask workers (compose). Goal: <= 2 s. Local runtime
  (and the Spark clusters of P2) for reference.
- P4: ready time for N = 1, 2, 4, 8, 16 Dask workers (compose, 1 core, 512m), and
  LocalCluster(N x 1) for the smallest and largest N. Goal: compose's growth
  (N=16 / N=1) <= 1.2x LocalCluster's own N=16 / N=1.
- P5: 10,000 tiny tasks (``client.map`` then ``gather``) on the compose cluster
  (4 workers x 1 thread) vs LocalCluster(4 x 1). Goal: throughput >= 0.9x.
- P7c: a code-only change (one comment line of a copy of the clusterkit source):
  ``ensure_image("dask")`` rebuilds the node image's last layer; and back to the
  real source (a second sample). Goal: <= 8 s.
- P8: what the pytest session fixture does, 2 Dask workers up + down
  (``clusterkit.Cluster`` on the testcontainers runtime, a client connected and
  closed) vs ``LocalCluster(2)`` + ``Client`` + close. Goal: <= 2.5x.
- P7a / P7b: a fresh machine's ``make up`` (Dask) / ``make up BACKEND=spark``,
  <= 4 min / <= 7 min. Not measured here (it needs an empty engine and cache):
  ``python -m benchmarks.fresh`` measures them into ``benchmarks/fresh.json``,
  and the report shows that file's figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from benchmarks.workload import TASKS

if TYPE_CHECKING:
    from benchmarks.results import Series
    from benchmarks.runner import Runner

BENCHES = ("P1", "P1b", "P2", "P3", "P4", "P5", "P7c", "P8")
#: Measured by ``python -m benchmarks.fresh`` into ``benchmarks/fresh.json``: (what, goal in seconds).
FRESH_GOALS = {
    "P7a": ("fresh machine `make up` (Dask)", 240.0),
    "P7b": ("fresh machine `make up BACKEND=spark`", 420.0),
}
WORKERS = 4
SPARK_WORKERS = 2
FIXTURE_WORKERS = 2
P4_COUNTS = (1, 2, 4, 8, 16)
P4_COUNTS_QUICK = (1, 4)


@dataclass
class Goal:
    """``subject`` against ``limit``: absolute, a ratio to ``baseline``, or a ratio of ratios.

    With ``ref_subject`` and ``ref_baseline`` the compared number is
    ``(subject / baseline) / (ref_subject / ref_baseline)``: how much faster the
    subject grows than a reference grows over the same step (P4).
    """

    text: str
    subject: str  # series key
    limit: float
    baseline: str | None = None  # series key; None: an absolute limit in the subject's unit
    higher_is_better: bool = False
    ref_subject: str | None = None  # series keys of the reference ratio (needs ``baseline``)
    ref_baseline: str | None = None


@dataclass
class BenchDef:
    code: str
    title: str
    baseline: str  # series key the "ratio" column divides by
    goal: Goal
    keys: list[str] = field(default_factory=list)
    #: Series whose "ratio" column divides by another series than ``baseline`` (P4's LocalCluster rows).
    row_baselines: dict[str, str] = field(default_factory=dict)

    def baseline_of(self, key: str) -> str:
        return self.row_baselines.get(key, self.baseline)


def ratio(series: dict[str, Series], subject: str | None, baseline: str | None) -> float | None:
    """median(subject) / median(baseline), ``None`` where a side has no runs."""
    top, bottom = series.get(subject or ""), series.get(baseline or "")
    if top is None or bottom is None or top.median is None or not bottom.median:
        return None
    return top.median / bottom.median


def evaluate(goal: Goal, series: dict[str, Series]) -> tuple[float | None, bool | None]:
    """(the compared number, met?) from medians; ``None`` where a side has no runs."""
    subject = series.get(goal.subject)
    if subject is None or subject.median is None:
        return None, None
    if goal.baseline is None:
        value: float | None = subject.median
    else:
        value = ratio(series, goal.subject, goal.baseline)
        if value is not None and goal.ref_subject:
            ref = ratio(series, goal.ref_subject, goal.ref_baseline)
            value = value / ref if ref else None
    if value is None:
        return None, None
    met = value >= goal.limit if goal.higher_is_better else value <= goal.limit
    return value, met


def _meta(bench: str, what: str, runtime: str, **more: Any) -> dict[str, Any]:
    return {"bench": bench, "what": what, "runtime": runtime, **more}


def p4_localcluster_counts(counts: tuple[int, ...]) -> tuple[int, ...]:
    """The N that P4 also runs LocalCluster for: the smallest and the largest."""
    return tuple(sorted({min(counts), max(counts)}))


def definitions(counts: tuple[int, ...]) -> tuple[dict[str, BenchDef], dict[str, dict[str, Any]]]:
    """Benchmarks and the metadata of every series they contain."""
    n, s, f = WORKERS, SPARK_WORKERS, FIXTURE_WORKERS
    lc = "distributed.LocalCluster"
    meta: dict[str, dict[str, Any]] = {
        "P1/compose": _meta("P1", f"up to {n} Dask workers registered", "compose"),
        "P1/localcluster": _meta("P1", f"LocalCluster({n}x1) to wait_for_workers({n})", lc),
        "P1/local": _meta("P1", f"up to {n} Dask workers registered", "local"),
        "P1b/dask-docker": _meta(
            "P1b",
            f"compose up -d --scale worker={n}, a retrying Client to wait_for_workers({n})",
            "dask-docker layout",
        ),
        "P2/compose": _meta("P2", f"up to {s} Spark workers ALIVE", "compose"),
        "P2/local": _meta("P2", f"up to {s} Spark workers ALIVE", "local (spark-class)"),
        "P3/compose": _meta("P3", f"down, {n} Dask workers", "compose"),
        "P3/local": _meta("P3", f"down, {n} Dask workers", "local"),
        "P3/spark-compose": _meta("P3", f"down, {s} Spark workers (ref.)", "compose"),
        "P3/spark-local": _meta("P3", f"down, {s} Spark workers (ref.)", "local (spark-class)"),
        "P5/compose": _meta("P5", f"{TASKS:,} tiny tasks, {n}x1 threads", "compose", unit="tasks/s"),
        "P5/localcluster": _meta("P5", f"{TASKS:,} tiny tasks, {n}x1 threads", lc, unit="tasks/s"),
        "P7c/rebuild": _meta(
            "P7c", "code-only change: ensure_image(dask) rebuilds the last layer", "image build"
        ),
        "P8/fixture": _meta("P8", f"Cluster(dask, {f} workers) + Client, up + down", "testcontainers"),
        "P8/localcluster": _meta("P8", f"LocalCluster({f}x1) + Client, up + down", lc),
    }
    for count in counts:
        meta[f"P4/N={count}"] = _meta("P4", f"up to {count} Dask workers (1 core, 512m)", "compose", n=count)
    lc_counts = p4_localcluster_counts(counts)
    for count in lc_counts:
        meta[f"P4/localcluster/N={count}"] = _meta(
            "P4", f"LocalCluster({count}x1) to wait_for_workers({count})", lc, n=count
        )
    low, high = min(counts), max(counts)
    step = f"N={high}/N={low}"
    p4_goal = Goal(
        text=f"compose {step} <= 1.2x LocalCluster's {step}"
        + ("" if (low, high) == (1, 16) else " (the goal's N=16/N=1 not run)"),
        subject=f"P4/N={high}",
        baseline=f"P4/N={low}",
        limit=1.2,
        ref_subject=f"P4/localcluster/N={high}",
        ref_baseline=f"P4/localcluster/N={low}",
    )
    benches = {
        "P1": BenchDef(
            "P1",
            f"P1: time to {n} Dask workers registered",
            "P1/localcluster",
            Goal("compose <= 2.5x LocalCluster", "P1/compose", 2.5, "P1/localcluster"),
            ["P1/compose", "P1/localcluster", "P1/local"],
        ),
        "P1b": BenchDef(
            "P1b",
            f"P1b: time to {n} Dask workers registered, clusterkit vs the dask-docker layout",
            "P1b/dask-docker",
            Goal("clusterkit compose <= 0.8x dask-docker", "P1/compose", 0.8, "P1b/dask-docker"),
            ["P1/compose", "P1b/dask-docker"],
        ),
        "P2": BenchDef(
            "P2",
            f"P2: time to {s} ALIVE Spark workers",
            "P2/local",
            Goal("compose <= 1.0x local spark-class", "P2/compose", 1.0, "P2/local"),
            ["P2/compose", "P2/local"],
        ),
        "P3": BenchDef(
            "P3",
            "P3: cluster.down",
            "P3/local",
            Goal("compose down <= 2 s", "P3/compose", 2.0),
            ["P3/compose", "P3/local", "P3/spark-compose", "P3/spark-local"],
        ),
        "P4": BenchDef(
            "P4",
            "P4: ready time against the worker count, compose vs LocalCluster",
            f"P4/N={low}",
            p4_goal,
            [f"P4/N={c}" for c in counts] + [f"P4/localcluster/N={c}" for c in lc_counts],
            {f"P4/localcluster/N={c}": f"P4/localcluster/N={low}" for c in lc_counts},
        ),
        "P5": BenchDef(
            "P5",
            f"P5: throughput of {TASKS:,} tiny tasks",
            "P5/localcluster",
            Goal("compose >= 0.9x LocalCluster", "P5/compose", 0.9, "P5/localcluster", True),
            ["P5/compose", "P5/localcluster"],
        ),
        "P7c": BenchDef(
            "P7c",
            "P7c: code-only change, node image rebuilt",
            "P7c/rebuild",
            Goal("rebuild <= 8 s", "P7c/rebuild", 8.0),
            ["P7c/rebuild"],
        ),
        "P8": BenchDef(
            "P8",
            f"P8: pytest session fixture, {f} Dask workers, up + down",
            "P8/localcluster",
            Goal("fixture <= 2.5x LocalCluster", "P8/fixture", 2.5, "P8/localcluster"),
            ["P8/fixture", "P8/localcluster"],
        ),
    }
    return benches, meta


def run_all(runner: Runner, only: list[str], counts: tuple[int, ...]) -> None:
    """The rounds the chosen benchmarks need, interleaved so machine drift hits every side alike."""
    args = runner.args
    _, meta = definitions(counts)
    wants = set(only)
    dask_round = wants & {"P1", "P1b", "P3", "P5"}
    backends = ["dask"] if wants & {"P1", "P1b", "P3", "P4", "P5", "P7c", "P8"} else []
    runner.resolve_images(backends + (["spark"] if "P2" in wants else []))
    if "P1" in wants and not args.no_profile:
        runner.one_offs()

    def rounds(warmup: bool) -> None:
        def key(codes: set[str], name: str) -> str | None:
            return name if codes & wants else None

        if dask_round:
            runner.cluster_round(
                "dask",
                "compose",
                WORKERS,
                "1g",
                up_key=key({"P1", "P1b"}, "P1/compose"),
                down_key=key({"P3"}, "P3/compose"),
                tasks_key=key({"P5"}, "P5/compose"),
                meta=meta,
                warmup=warmup,
                profile="P1" in wants,
            )
        if "P1b" in wants:
            runner.dask_docker_round(WORKERS, "P1b/dask-docker", meta, warmup)
        if wants & {"P1", "P5"}:
            runner.localcluster_round(
                WORKERS, key({"P1"}, "P1/localcluster"), key({"P5"}, "P5/localcluster"), meta, warmup
            )
        if wants & {"P1", "P3"}:
            runner.cluster_round(
                "dask",
                "local",
                WORKERS,
                "1g",
                up_key=key({"P1"}, "P1/local"),
                down_key=key({"P3"}, "P3/local"),
                meta=meta,
                warmup=warmup,
            )
        if "P2" in wants:
            for runtime in ("compose", "local"):
                runner.cluster_round(
                    "spark",
                    runtime,
                    SPARK_WORKERS,
                    "1g",
                    up_key=f"P2/{runtime}",
                    down_key=key({"P3"}, f"P3/spark-{runtime}"),
                    meta=meta,
                    warmup=warmup,
                    profile=True,
                )

    if args.warmup and (dask_round or "P2" in wants):
        runner.say("[bold]warm-up round (discarded)")
        rounds(True)
    for index in range(args.repeat):
        if dask_round or "P2" in wants:
            runner.say(f"[bold]round {index + 1} of {args.repeat}")
            rounds(False)
    if "P4" in wants:
        # Interleaved (1, 2, 4, ..., 1, 2, 4, ...) so drift in the machine's load hits every N alike;
        # LocalCluster(N) right after compose N for the smallest and largest N.
        lc_counts = p4_localcluster_counts(counts)
        for index in range(args.p4_repeat):
            runner.say(f"[bold]P4 round {index + 1} of {args.p4_repeat}")
            for count in counts:
                runner.cluster_round(
                    "dask", "compose", count, "512m", up_key=f"P4/N={count}", down_key=None, meta=meta
                )
                if count in lc_counts:
                    runner.localcluster_round(
                        count, f"P4/localcluster/N={count}", None, meta, False, memory="512MiB"
                    )
    if "P8" in wants:
        # Alternating, as the session fixture and LocalCluster(2) would be used.
        for index in range(args.repeat):
            runner.say(f"[bold]P8 round {index + 1} of {args.repeat}")
            runner.fixture_round(index, FIXTURE_WORKERS, "P8/fixture", meta)
            runner.localcluster_up_down(FIXTURE_WORKERS, "P8/localcluster", meta)
    if "P7c" in wants:
        # Last: it rebuilds the node image the other rounds use (and puts the real source back).
        for index in range(args.repeat):
            runner.say(f"[bold]P7c round {index + 1} of {args.repeat}")
            runner.rebuild_round(index, "P7c/rebuild", meta)
