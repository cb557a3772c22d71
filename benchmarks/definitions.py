"""The start-up benchmarks: what each measures, its goal, and the rounds that measure it.

``make bench`` measures every row in one run; each figure is the median of the
run's repetitions (3 by default) and every ratio is taken between medians of the
same run, the two sides measured in the same, interleaved rounds (``benchmarks.rounds``).

- P1: ``cluster.up`` to 4 Dask workers registered (compose runtime) vs the container
  floor: 5 containers of the Dask node image (``docker run --rm IMAGE python -c
  "import distributed"``) started concurrently, from the first start until all have
  exited. Goal: compose <= 1.2x the floor; ``distributed.LocalCluster(n_workers=4,
  threads_per_worker=1, processes=True)`` (until ``client.wait_for_workers(4)``
  returns) and the clusterkit local runtime are measured beside it.
- P1b: the same compose ``up`` vs the dask-docker project's compose layout on the
  same node image (``benchmarks/dask_docker/docker-compose.yml``): ``<compose> up -d
  --scale worker=4``, then a plain ``distributed.Client`` that retries connecting
  until ``wait_for_workers(4)`` returns. Goal: clusterkit <= 0.6x dask-docker.
- P2: ``cluster.up`` to 2 ALIVE Spark workers: compose vs the same master and
  workers as bare ``spark-class`` processes (local runtime). Goal: <= 1.0x.
- P3: ``cluster.down`` of 4 Dask workers (compose). Goal: <= 2 s. Local runtime
  (and the Spark clusters of P2) for reference.
- P4: ready time for N = 1, 2, 4, 8, 16 Dask workers (compose, 1 core, 512m), and
  LocalCluster(N x 1) for the smallest and largest N. Goal: compose's growth
  (N=16 / N=1) <= 1.2x LocalCluster's own N=16 / N=1.
- P5: 10,000 tiny tasks (``client.map`` then ``gather``) on the compose cluster
  (4 workers x 1 thread) vs LocalCluster(4 x 1). Goal: throughput >= 0.9x.
- P6: the size of the Dask and Spark node images (the engine's ``Size``, in MB of
  10^6 bytes as ``docker images`` shows). Goals: <= 450 MB / <= 950 MB.
- P7c: a code-only change (one comment line of a copy of the clusterkit source):
  ``ensure_image("dask")`` rebuilds the node image's last layer; and back to the
  real source (a second sample). Goal: <= 8 s.
- P8: what the pytest session fixture does, 2 Dask workers up + down
  (``clusterkit.Cluster`` on the testcontainers runtime, a client connected and
  closed) vs ``LocalCluster(2)`` + ``Client`` + close. Goal: <= 3x.
- P8w: whole ``pytest`` runs of one trivial test on the ``dask_cluster`` fixture with
  ``--clusterkit-reuse`` (warm: the cluster kept by an untimed first run) vs the same
  test on a conftest ``LocalCluster(2)`` + ``Client`` fixture. Goal: <= 1.0x.
- P8s: whole ``pytest`` runs of one DataFrame test on ``spark_session`` (cold: the
  cluster started and removed in the run) vs the same test on a conftest ``local[2]``
  SparkSession; and on ``spark_connect_session`` with ``--clusterkit-reuse`` (warm).
  Goals: cold <= 2x, warm <= 0.6x.
- P9: ``cluster.up`` / ``cluster.down`` of 32 Dask workers (compose, 1 core and 512m
  each) vs ``LocalCluster(32)`` (1 thread each) up / close. Goals: up <= 2x, down <= 1.5x.
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

BENCHES = ("P1", "P1b", "P2", "P3", "P4", "P5", "P6", "P7c", "P8", "P8w", "P8s", "P9")
#: Measured by ``python -m benchmarks.fresh`` into ``benchmarks/fresh.json``: (what, goal in seconds).
FRESH_GOALS = {
    "P7a": ("fresh machine `make up` (Dask)", 240.0),
    "P7b": ("fresh machine `make up BACKEND=spark`", 420.0),
}
WORKERS = 4
SPARK_WORKERS = 2
FIXTURE_WORKERS = 2
#: P1's container floor: the scheduler and the workers of P1, one container each.
FLOOR_CONTAINERS = WORKERS + 1
#: P9: many workers, each 1 core and 512m.
MANY_WORKERS = 32
MANY_MEMORY = "512m"
#: P6: the largest node image sizes, MB of 10^6 bytes.
IMAGE_GOALS_MB = {"dask": 450.0, "spark": 950.0}
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
    #: (series key, name): the subject's ratio to that series, shown beside the goal's number (P1).
    beside: tuple[str, str] | None = None


@dataclass
class BenchDef:
    code: str
    title: str
    baseline: str  # series key the "ratio" column divides by ("": none, the goals are absolute)
    goal: Goal
    keys: list[str] = field(default_factory=list)
    #: Series whose "ratio" column divides by another series than ``baseline`` (P4's LocalCluster rows).
    row_baselines: dict[str, str] = field(default_factory=dict)
    #: Further goals of the same benchmark (P6, P8s, P9), each its own line of the summary.
    more_goals: list[Goal] = field(default_factory=list)

    def baseline_of(self, key: str) -> str:
        return self.row_baselines.get(key, self.baseline)

    @property
    def goals(self) -> list[Goal]:
        return [self.goal, *self.more_goals]

    def goal_of(self, key: str) -> Goal | None:
        """The goal whose subject the series ``key`` is, if any."""
        return next((g for g in self.goals if g.subject == key), None)


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


def _startup_meta(meta: dict[str, dict[str, Any]]) -> None:
    """P1, P1b, P2, P3, P5, P6, P7c."""
    n, s, lc = WORKERS, SPARK_WORKERS, "distributed.LocalCluster"
    meta.update(
        {
            "P1/compose": _meta("P1", f"up to {n} Dask workers registered", "compose"),
            "P1/floor": _meta(
                "P1",
                f"{FLOOR_CONTAINERS} containers `python -c 'import distributed'` at once, "
                "first start to last exit",
                "docker run (floor)",
            ),
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
        }
    )
    for backend in IMAGE_GOALS_MB:
        meta[f"P6/{backend}"] = _meta("P6", f"{backend} node image size", "image", unit="MB")


def _fixture_meta(meta: dict[str, dict[str, Any]]) -> None:
    """P8, P8w, P8s, P9."""
    f, m, lc = FIXTURE_WORKERS, MANY_WORKERS, "distributed.LocalCluster"
    run = "whole pytest run, 1 test"
    meta.update(
        {
            "P8/fixture": _meta("P8", f"Cluster(dask, {f} workers) + Client, up + down", "testcontainers"),
            "P8/localcluster": _meta("P8", f"LocalCluster({f}x1) + Client, up + down", lc),
            "P8w/fixture-warm": _meta(
                "P8w", f"{run} on dask_cluster, --clusterkit-reuse (warm)", "testcontainers, reused"
            ),
            "P8w/localcluster": _meta("P8w", f"{run} on a conftest LocalCluster({f}x1) + Client", lc),
            "P8s/fixture-cold": _meta("P8s", f"{run} on spark_session (cold: up + down)", "testcontainers"),
            "P8s/local": _meta("P8s", f"{run} on a conftest local[2] SparkSession", "pyspark local[2]"),
            "P8s/connect-warm": _meta(
                "P8s", f"{run} on spark_connect_session, --clusterkit-reuse (warm)", "testcontainers, reused"
            ),
            "P9/compose-up": _meta("P9", f"up to {m} Dask workers (1 core, {MANY_MEMORY})", "compose"),
            "P9/localcluster-up": _meta("P9", f"LocalCluster({m}x1) to wait_for_workers({m})", lc),
            "P9/compose-down": _meta("P9", f"down, {m} Dask workers", "compose"),
            "P9/localcluster-close": _meta("P9", f"LocalCluster({m}x1): Client and cluster closed", lc),
        }
    )


def _p4(counts: tuple[int, ...], meta: dict[str, dict[str, Any]]) -> BenchDef:
    for count in counts:
        meta[f"P4/N={count}"] = _meta("P4", f"up to {count} Dask workers (1 core, 512m)", "compose", n=count)
    lc_counts = p4_localcluster_counts(counts)
    for count in lc_counts:
        meta[f"P4/localcluster/N={count}"] = _meta(
            "P4", f"LocalCluster({count}x1) to wait_for_workers({count})", "distributed.LocalCluster", n=count
        )
    low, high = min(counts), max(counts)
    step = f"N={high}/N={low}"
    goal = Goal(
        text=f"compose {step} <= 1.2x LocalCluster's {step}"
        + ("" if (low, high) == (1, 16) else " (the goal's N=16/N=1 not run)"),
        subject=f"P4/N={high}",
        baseline=f"P4/N={low}",
        limit=1.2,
        ref_subject=f"P4/localcluster/N={high}",
        ref_baseline=f"P4/localcluster/N={low}",
    )
    return BenchDef(
        "P4",
        "P4: ready time against the worker count, compose vs LocalCluster",
        f"P4/N={low}",
        goal,
        [f"P4/N={c}" for c in counts] + [f"P4/localcluster/N={c}" for c in lc_counts],
        {f"P4/localcluster/N={c}": f"P4/localcluster/N={low}" for c in lc_counts},
    )


def _startup_benches() -> list[BenchDef]:
    n, s = WORKERS, SPARK_WORKERS
    return [
        BenchDef(
            "P1",
            f"P1: time to {n} Dask workers registered",
            "P1/floor",
            Goal(
                "compose <= 1.2x the container floor",
                "P1/compose",
                1.2,
                "P1/floor",
                beside=("P1/localcluster", f"LocalCluster({n})"),
            ),
            ["P1/compose", "P1/floor", "P1/localcluster", "P1/local"],
        ),
        BenchDef(
            "P1b",
            f"P1b: time to {n} Dask workers registered, clusterkit vs the dask-docker layout",
            "P1b/dask-docker",
            Goal("clusterkit compose <= 0.6x dask-docker", "P1/compose", 0.6, "P1b/dask-docker"),
            ["P1/compose", "P1b/dask-docker"],
        ),
        BenchDef(
            "P2",
            f"P2: time to {s} ALIVE Spark workers",
            "P2/local",
            Goal("compose <= 1.0x local spark-class", "P2/compose", 1.0, "P2/local"),
            ["P2/compose", "P2/local"],
        ),
        BenchDef(
            "P3",
            "P3: cluster.down",
            "P3/local",
            Goal("compose down <= 2 s", "P3/compose", 2.0),
            ["P3/compose", "P3/local", "P3/spark-compose", "P3/spark-local"],
        ),
    ]


def _other_benches() -> list[BenchDef]:
    images = [Goal(f"{b} image <= {mb:.0f} MB", f"P6/{b}", mb) for b, mb in IMAGE_GOALS_MB.items()]
    return [
        BenchDef(
            "P5",
            f"P5: throughput of {TASKS:,} tiny tasks",
            "P5/localcluster",
            Goal("compose >= 0.9x LocalCluster", "P5/compose", 0.9, "P5/localcluster", True),
            ["P5/compose", "P5/localcluster"],
        ),
        BenchDef(
            "P6",
            "P6: node image size",
            "",  # absolute goals: no ratio column
            images[0],
            [g.subject for g in images],
            more_goals=images[1:],
        ),
        BenchDef(
            "P7c",
            "P7c: code-only change, node image rebuilt",
            "P7c/rebuild",
            Goal("rebuild <= 8 s", "P7c/rebuild", 8.0),
            ["P7c/rebuild"],
        ),
    ]


def _fixture_benches() -> list[BenchDef]:
    f, m = FIXTURE_WORKERS, MANY_WORKERS
    return [
        BenchDef(
            "P8",
            f"P8: pytest session fixture, {f} Dask workers, up + down",
            "P8/localcluster",
            Goal("fixture <= 3x LocalCluster", "P8/fixture", 3.0, "P8/localcluster"),
            ["P8/fixture", "P8/localcluster"],
        ),
        BenchDef(
            "P8w",
            f"P8w: a pytest run on the Dask fixture, warm (--clusterkit-reuse), vs LocalCluster({f})",
            "P8w/localcluster",
            Goal("warm fixture run <= 1.0x LocalCluster run", "P8w/fixture-warm", 1.0, "P8w/localcluster"),
            ["P8w/fixture-warm", "P8w/localcluster"],
        ),
        BenchDef(
            "P8s",
            "P8s: a pytest run of a Spark DataFrame test, fixture vs local[2]",
            "P8s/local",
            Goal("cold spark_session run <= 2x local[2] run", "P8s/fixture-cold", 2.0, "P8s/local"),
            ["P8s/fixture-cold", "P8s/local", "P8s/connect-warm"],
            more_goals=[
                Goal(
                    "warm spark_connect_session run <= 0.6x local[2] run",
                    "P8s/connect-warm",
                    0.6,
                    "P8s/local",
                )
            ],
        ),
        BenchDef(
            "P9",
            f"P9: up and down of {m} Dask workers, compose vs LocalCluster({m})",
            "P9/localcluster-up",
            Goal("compose up <= 2x LocalCluster up", "P9/compose-up", 2.0, "P9/localcluster-up"),
            ["P9/compose-up", "P9/localcluster-up", "P9/compose-down", "P9/localcluster-close"],
            {k: "P9/localcluster-close" for k in ("P9/compose-down", "P9/localcluster-close")},
            [
                Goal(
                    "compose down <= 1.5x LocalCluster close", "P9/compose-down", 1.5, "P9/localcluster-close"
                )
            ],
        ),
    ]


def definitions(counts: tuple[int, ...]) -> tuple[dict[str, BenchDef], dict[str, dict[str, Any]]]:
    """Benchmarks (by code, in ``BENCHES`` order) and the metadata of every series they contain."""
    meta: dict[str, dict[str, Any]] = {}
    _startup_meta(meta)
    _fixture_meta(meta)
    found = [*_startup_benches(), _p4(counts, meta), *_other_benches(), *_fixture_benches()]
    by_code = {b.code: b for b in found}
    return {code: by_code[code] for code in BENCHES}, meta
