"""The benchmarks P1..P5 and P8: what each measures, its goal, and the rounds that measure it.

- P1: ``cluster.up`` to 4 Dask workers registered: compose runtime vs
  ``distributed.LocalCluster(n_workers=4, threads_per_worker=1, processes=True)``
  (until ``client.wait_for_workers(4)`` returns), and the clusterkit local runtime.
  Goal: compose <= 1.5x LocalCluster.
- P2: ``cluster.up`` to 2 ALIVE Spark workers: compose vs the same master and
  workers as bare ``spark-class`` processes (local runtime). Goal: <= 1.2x.
- P3: ``cluster.down`` of 4 Dask workers (compose). Goal: <= 2 s. Local runtime
  (and the Spark clusters of P2) for reference.
- P4: ready time for N = 1, 2, 4, 8, 16 Dask workers (compose, 1 core, 512m).
  Goal: N=16 <= 2x N=1.
- P5: 10,000 tiny tasks (``client.map`` then ``gather``) on the compose cluster
  (4 workers x 1 thread) vs LocalCluster(4 x 1). Goal: throughput >= 0.9x.
- P8: what the pytest session fixture does, 2 Dask workers up + down
  (``clusterkit.Cluster`` on the testcontainers runtime, a client connected and
  closed) vs ``LocalCluster(2)`` + ``Client`` + close. Goal: <= 1.5x.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.results import Series
    from benchmarks.runner import Runner

BENCHES = ("P1", "P2", "P3", "P4", "P5", "P8")
WORKERS = 4
SPARK_WORKERS = 2
FIXTURE_WORKERS = 2
TASKS = 10_000
P4_COUNTS = (1, 2, 4, 8, 16)
P4_COUNTS_QUICK = (1, 4)


@dataclass
class Goal:
    text: str
    subject: str  # series key
    limit: float
    baseline: str | None = None  # series key; None: an absolute limit in the subject's unit
    higher_is_better: bool = False


@dataclass
class BenchDef:
    code: str
    title: str
    baseline: str  # series key the "ratio" column divides by
    goal: Goal
    keys: list[str] = field(default_factory=list)


def evaluate(goal: Goal, series: dict[str, Series]) -> tuple[float | None, bool | None]:
    """(the compared number, met?) from medians; ``None`` where a side has no runs."""
    subject = series.get(goal.subject)
    if subject is None or subject.median is None:
        return None, None
    if goal.baseline is None:
        value = subject.median
    else:
        base = series.get(goal.baseline)
        if base is None or not base.median:
            return None, None
        value = subject.median / base.median
    met = value >= goal.limit if goal.higher_is_better else value <= goal.limit
    return value, met


def _meta(bench: str, what: str, runtime: str, **more: Any) -> dict[str, Any]:
    return {"bench": bench, "what": what, "runtime": runtime, **more}


def definitions(counts: tuple[int, ...]) -> tuple[dict[str, BenchDef], dict[str, dict[str, Any]]]:
    """Benchmarks and the metadata of every series they contain."""
    n, s, f = WORKERS, SPARK_WORKERS, FIXTURE_WORKERS
    lc = "distributed.LocalCluster"
    meta: dict[str, dict[str, Any]] = {
        "P1/compose": _meta("P1", f"up to {n} Dask workers registered", "compose"),
        "P1/localcluster": _meta("P1", f"LocalCluster({n}x1) to wait_for_workers({n})", lc),
        "P1/local": _meta("P1", f"up to {n} Dask workers registered", "local"),
        "P2/compose": _meta("P2", f"up to {s} Spark workers ALIVE", "compose"),
        "P2/local": _meta("P2", f"up to {s} Spark workers ALIVE", "local (spark-class)"),
        "P3/compose": _meta("P3", f"down, {n} Dask workers", "compose"),
        "P3/local": _meta("P3", f"down, {n} Dask workers", "local"),
        "P3/spark-compose": _meta("P3", f"down, {s} Spark workers (ref.)", "compose"),
        "P3/spark-local": _meta("P3", f"down, {s} Spark workers (ref.)", "local (spark-class)"),
        "P5/compose": _meta("P5", f"{TASKS:,} tiny tasks, {n}x1 threads", "compose", unit="tasks/s"),
        "P5/localcluster": _meta("P5", f"{TASKS:,} tiny tasks, {n}x1 threads", lc, unit="tasks/s"),
        "P8/fixture": _meta("P8", f"Cluster(dask, {f} workers) + Client, up + down", "testcontainers"),
        "P8/localcluster": _meta("P8", f"LocalCluster({f}x1) + Client, up + down", lc),
    }
    for count in counts:
        meta[f"P4/N={count}"] = _meta("P4", f"up to {count} Dask workers (1 core, 512m)", "compose", n=count)
    biggest = max(counts)
    p4_goal = Goal(
        text="N=16 <= 2x N=1" + ("" if 16 in counts else f" (N=16 not run; N={biggest} shown)"),
        subject=f"P4/N={16 if 16 in counts else biggest}",
        baseline=f"P4/N={min(counts)}",
        limit=2.0,
    )
    benches = {
        "P1": BenchDef(
            "P1",
            f"P1: time to {n} Dask workers registered",
            "P1/localcluster",
            Goal("compose <= 1.5x LocalCluster", "P1/compose", 1.5, "P1/localcluster"),
            ["P1/compose", "P1/localcluster", "P1/local"],
        ),
        "P2": BenchDef(
            "P2",
            f"P2: time to {s} ALIVE Spark workers",
            "P2/local",
            Goal("compose <= 1.2x local spark-class", "P2/compose", 1.2, "P2/local"),
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
            "P4: compose ready time against the worker count",
            f"P4/N={min(counts)}",
            p4_goal,
            [f"P4/N={c}" for c in counts],
        ),
        "P5": BenchDef(
            "P5",
            f"P5: throughput of {TASKS:,} tiny tasks",
            "P5/localcluster",
            Goal("compose >= 0.9x LocalCluster", "P5/compose", 0.9, "P5/localcluster", True),
            ["P5/compose", "P5/localcluster"],
        ),
        "P8": BenchDef(
            "P8",
            f"P8: pytest session fixture, {f} Dask workers, up + down",
            "P8/localcluster",
            Goal("fixture <= 1.5x LocalCluster", "P8/fixture", 1.5, "P8/localcluster"),
            ["P8/fixture", "P8/localcluster"],
        ),
    }
    return benches, meta


def run_all(runner: Runner, only: list[str], counts: tuple[int, ...]) -> None:
    """The rounds the chosen benchmarks need, interleaved so machine drift hits every side alike."""
    args = runner.args
    _, meta = definitions(counts)
    wants = set(only)
    dask_round = wants & {"P1", "P3", "P5"}
    backends = ["dask"] if wants & {"P1", "P3", "P4", "P5", "P8"} else []
    runner.resolve_images(backends + (["spark"] if "P2" in wants else []))
    if "P1" in wants and not args.no_profile:
        runner.one_offs()

    def rounds(warmup: bool) -> None:
        def key(code: str, name: str) -> str | None:
            return name if code in wants else None

        if dask_round:
            runner.cluster_round(
                "dask",
                "compose",
                WORKERS,
                "1g",
                up_key=key("P1", "P1/compose"),
                down_key=key("P3", "P3/compose"),
                tasks_key=key("P5", "P5/compose"),
                meta=meta,
                warmup=warmup,
                profile="P1" in wants,
            )
        if wants & {"P1", "P5"}:
            runner.localcluster_round(
                WORKERS, key("P1", "P1/localcluster"), key("P5", "P5/localcluster"), meta, warmup
            )
        if wants & {"P1", "P3"}:
            runner.cluster_round(
                "dask",
                "local",
                WORKERS,
                "1g",
                up_key=key("P1", "P1/local"),
                down_key=key("P3", "P3/local"),
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
                    down_key=key("P3", f"P3/spark-{runtime}"),
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
        # Interleaved (1, 2, 4, ..., 1, 2, 4, ...) so drift in the machine's load hits every N alike.
        for index in range(args.p4_repeat):
            runner.say(f"[bold]P4 round {index + 1} of {args.p4_repeat}")
            for count in counts:
                runner.cluster_round(
                    "dask", "compose", count, "512m", up_key=f"P4/N={count}", down_key=None, meta=meta
                )
    if "P8" in wants:
        # Alternating, as the session fixture and LocalCluster(2) would be used.
        for index in range(args.repeat):
            runner.say(f"[bold]P8 round {index + 1} of {args.repeat}")
            runner.fixture_round(index, FIXTURE_WORKERS, "P8/fixture", meta)
            runner.localcluster_up_down(FIXTURE_WORKERS, "P8/localcluster", meta)
