"""The rounds of one run: what each chosen benchmark measures, in which order.

The two sides of a ratio run in the same, interleaved rounds, so drift in the
machine's load hits both alike. Rounds that leave something running beside
them (a kept cluster: P8w, P8s warm) come after every other round but P7c,
which rebuilds the node image the others use and so comes last.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from benchmarks.definitions import (
    FIXTURE_WORKERS,
    FLOOR_CONTAINERS,
    MANY_MEMORY,
    MANY_WORKERS,
    SPARK_WORKERS,
    WORKERS,
    definitions,
    p4_localcluster_counts,
)

if TYPE_CHECKING:
    from benchmarks.runner import Runner

Meta = dict[str, dict[str, Any]]
#: The benchmarks that need the pinned node image of each backend (present before any timing).
NEEDS_IMAGE = {
    "dask": {"P1", "P1b", "P3", "P4", "P5", "P6", "P7c", "P8", "P8w", "P9"},
    "spark": {"P2", "P6", "P8s"},
}


def run_all(runner: Runner, only: list[str], counts: tuple[int, ...]) -> None:
    """The rounds the chosen benchmarks need."""
    from benchmarks import pytest_runs, startup

    args = runner.args
    _, meta = definitions(counts)
    wants = set(only)
    runner.resolve_images([b for b, codes in NEEDS_IMAGE.items() if wants & codes])
    if "P6" in wants:
        startup.image_sizes(runner, meta)
    if "P1" in wants and not args.no_profile:
        runner.one_offs()
    _startup_rounds(runner, wants, meta)
    if "P4" in wants:
        _p4_rounds(runner, counts, meta)
    if "P9" in wants:
        repeat = getattr(args, "p9_repeat", 2)
        for index in range(repeat):
            runner.say(f"[bold]P9 round {index + 1} of {repeat}")
            runner.cluster_round(
                "dask",
                "compose",
                MANY_WORKERS,
                MANY_MEMORY,
                up_key="P9/compose-up",
                down_key="P9/compose-down",
                meta=meta,
            )
            startup.localcluster_up_close(
                runner, MANY_WORKERS, "P9/localcluster-up", "P9/localcluster-close", meta
            )
    if "P8" in wants:
        # Alternating, as the session fixture and LocalCluster(2) would be used.
        for index in range(args.repeat):
            runner.say(f"[bold]P8 round {index + 1} of {args.repeat}")
            runner.fixture_round(index, FIXTURE_WORKERS, "P8/fixture", meta)
            runner.localcluster_up_down(FIXTURE_WORKERS, "P8/localcluster", meta)
    if "P8w" in wants:
        pytest_runs.dask_runs(runner, meta)
    if "P8s" in wants:
        pytest_runs.spark_runs(runner, meta)
    if "P7c" in wants:
        # Last: it rebuilds the node image the other rounds use (and puts the real source back).
        for index in range(args.repeat):
            runner.say(f"[bold]P7c round {index + 1} of {args.repeat}")
            runner.rebuild_round(index, "P7c/rebuild", meta)


def _startup_rounds(runner: Runner, wants: set[str], meta: Meta) -> None:
    """P1, P1b, P2, P3, P5: a warm-up round (discarded), then ``--repeat`` rounds."""
    if not wants & {"P1", "P1b", "P2", "P3", "P5"}:
        return
    if runner.args.warmup:
        runner.say("[bold]warm-up round (discarded)")
        _dask_round(runner, wants, meta, True)
        _spark_round(runner, wants, meta, True)
    for index in range(runner.args.repeat):
        runner.say(f"[bold]round {index + 1} of {runner.args.repeat}")
        _dask_round(runner, wants, meta, False)
        _spark_round(runner, wants, meta, False)


def _dask_round(runner: Runner, wants: set[str], meta: Meta, warmup: bool) -> None:
    from benchmarks import startup

    def key(codes: set[str], name: str) -> str | None:
        return name if codes & wants else None

    if wants & {"P1", "P1b", "P3", "P5"}:
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
    if "P1" in wants:
        startup.floor_round(runner, FLOOR_CONTAINERS, "P1/floor", meta, warmup)
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


def _spark_round(runner: Runner, wants: set[str], meta: Meta, warmup: bool) -> None:
    if "P2" not in wants:
        return
    for runtime in ("compose", "local"):
        runner.cluster_round(
            "spark",
            runtime,
            SPARK_WORKERS,
            "1g",
            up_key=f"P2/{runtime}",
            down_key=f"P3/spark-{runtime}" if "P3" in wants else None,
            meta=meta,
            warmup=warmup,
            profile=True,
        )


def _p4_rounds(runner: Runner, counts: tuple[int, ...], meta: Meta) -> None:
    """Interleaved (1, 2, 4, ..., 1, 2, 4, ...) so drift in the machine's load hits every N alike;
    LocalCluster(N) right after compose N for the smallest and largest N."""
    lc_counts = p4_localcluster_counts(counts)
    repeat = runner.args.p4_repeat
    for index in range(repeat):
        runner.say(f"[bold]P4 round {index + 1} of {repeat}")
        for count in counts:
            runner.cluster_round(
                "dask", "compose", count, "512m", up_key=f"P4/N={count}", down_key=None, meta=meta
            )
            if count in lc_counts:
                runner.localcluster_round(
                    count, f"P4/localcluster/N={count}", None, meta, False, memory="512MiB"
                )
