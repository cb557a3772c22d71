"""Start-up, tear-down, task throughput and rebuild time of clusterkit clusters against their baselines.

    .venv/bin/python -m benchmarks [--repeat N] [--quick] [--only P1 P6 | P1,P6] [--output DIR]
    .venv/bin/python -m benchmarks --report-only [results.json] --output DIR

A trial of a few rows that leaves the stored results alone:
``--only P1 P6 P9 --repeat 1 --p9-repeat 1 --no-warmup --output /tmp/bench-trial``.

All in one run on this machine, each figure the median of several runs (3 by
default) with its spread (min-max), every ratio between medians of the same run;
the benchmarks and their goals are in ``benchmarks.definitions``, their rounds in
``benchmarks.rounds``. P7a / P7b (a
fresh machine's ``make up``) are measured by ``python -m benchmarks.fresh``; the
report shows the figures it stored in ``benchmarks/fresh.json``.
Writes ``RESULTS.md``, ``results.png`` and ``results.json`` (raw values, the phases
of every ``up`` and the compose start-up profile) to ``--output`` (default: this
folder). ``--report-only`` writes RESULTS.md and results.png again from a stored
results.json, measuring nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.definitions import BENCHES, MANY_WORKERS, P4_COUNTS, P4_COUNTS_QUICK, BenchDef, definitions
from benchmarks.results import Results, load_fresh

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: Where ``python -m benchmarks.fresh`` stores P7a / P7b.
FRESH_JSON = HERE / "fresh.json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeat", type=int, default=None, help="runs per measurement (default 3; --quick: 1)"
    )
    parser.add_argument(
        "--p4-repeat", type=int, default=None, help="runs per N in P4 (default 3; --quick: 1)"
    )
    parser.add_argument(
        "--p4-counts", default=None, help="worker counts of P4 (default 1,2,4,8,16; --quick: 1,4)"
    )
    parser.add_argument(
        "--p9-repeat",
        type=int,
        default=None,
        help=f"runs of P9 ({MANY_WORKERS} workers; default 2; --quick: 1)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repeat, fewer N, no warm-up")
    parser.add_argument(
        "--only",
        nargs="+",
        default=None,
        metavar="CODE",
        help=f"a subset of {' '.join(BENCHES)}, e.g. --only P1 P6 (or P1,P6)",
    )
    parser.add_argument(
        "--without-reuse",
        action="store_true",
        help="P8w / P8s warm: leave out --clusterkit-reuse (to try the code path where pytest lacks it; "
        "every run is then cold)",
    )
    parser.add_argument(
        "--output", type=Path, default=HERE, help="folder for RESULTS.md, results.png, results.json"
    )
    parser.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="BACKEND=REF",
        help="use this node image instead of the current one (no build), e.g. dask=clusterkit/dask:abc",
    )
    parser.add_argument("--no-warmup", dest="warmup", action="store_false", default=None)
    parser.add_argument("--no-profile", action="store_true", help="skip the one-off cost measurements")
    parser.add_argument(
        "--report-only",
        nargs="?",
        type=Path,
        const=HERE / "results.json",
        default=None,
        metavar="RESULTS_JSON",
        help="measure nothing: write RESULTS.md and results.png from a stored results.json "
        "(default: benchmarks/results.json) to --output",
    )
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = _parser()
    args = parser.parse_args(argv)
    codes = {c.upper(): c for c in BENCHES}  # --only p1b,p7c works too
    given = [c.strip() for c in ",".join(args.only or BENCHES).split(",") if c.strip()]
    wanted = [codes.get(c.upper(), c) for c in given]
    bad = [c for c in wanted if c not in BENCHES]
    if bad:
        parser.error(f"--only: unknown {', '.join(bad)}; expected some of {', '.join(BENCHES)}")
    args.only_list = [c for c in BENCHES if c in wanted]
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.p4_repeat = args.p4_repeat or (1 if args.quick else 3)
    args.p9_repeat = args.p9_repeat or (1 if args.quick else 2)
    if args.p4_counts:
        args.counts = tuple(sorted({int(c) for c in args.p4_counts.split(",")}))
    else:
        args.counts = P4_COUNTS_QUICK if args.quick else P4_COUNTS
    if args.warmup is None:
        args.warmup = not args.quick
    args.images = {}
    for item in args.image:
        backend, _, ref = item.partition("=")
        if backend not in ("dask", "spark") or not ref:
            parser.error(f"--image: {item!r} is not BACKEND=REF")
        args.images[backend] = ref
    return args


def command_line(argv: list[str]) -> str:
    python = Path(sys.executable)
    try:
        python = python.relative_to(Path.cwd())
    except ValueError:
        pass
    return f"cd {ROOT} && {python} -m benchmarks {shlex.join(argv)}".rstrip()


@contextmanager
def run_dir() -> Iterator[Path]:
    """A private CLUSTERKIT_RUN_DIR for the local runtime's state files."""
    previous = os.environ.get("CLUSTERKIT_RUN_DIR")
    with tempfile.TemporaryDirectory(prefix="clusterkit-bench-") as tmp:
        os.environ["CLUSTERKIT_RUN_DIR"] = tmp
        try:
            yield Path(tmp)
        finally:
            if previous is None:
                os.environ.pop("CLUSTERKIT_RUN_DIR", None)
            else:
                os.environ["CLUSTERKIT_RUN_DIR"] = previous


def write_outputs(
    console: Any,
    results: Results,
    only: list[str],
    counts: tuple[int, ...],
    output: Path,
    *,
    kept_from: Path | None = None,
    with_json: bool = True,
) -> None:
    """The console table, RESULTS.md, results.json (unless ``with_json`` is false) and results.png."""
    from benchmarks.plot import plot
    from benchmarks.report import print_table, report, write_results

    benches: dict[str, BenchDef] = definitions(counts)[0]
    fresh = load_fresh(FRESH_JSON)
    print_table(console, results, benches, only, fresh)
    text = report(results, benches, only, counts, fresh)
    reported_p8 = "P8" in only and any(k.startswith("P8/") for k in results.series)
    write_results(text, output / "RESULTS.md", kept_from, reported_p8)
    if with_json:
        results.write(output / "results.json")
    try:
        plot(results, benches, only, output / "results.png")
    except Exception as e:
        console.log(f"[red]plot failed: {e}")
    console.log(f"wrote {output / 'RESULTS.md'}, results.png" + (", results.json" if with_json else ""))


def report_only(args: argparse.Namespace, console: Any) -> int:
    results = Results.load(args.report_only)
    present = {x.bench for x in results.series.values()}
    only = [c for c in args.only_list if c in present]
    counts = (
        tuple(sorted({x.n for k, x in results.series.items() if k.startswith("P4/N=") and x.n}))
        or args.counts
    )
    output = args.output
    kept_from = output / "RESULTS.md"
    if not kept_from.exists():
        kept_from = args.report_only.parent / "RESULTS.md"
    write_outputs(console, results, only, counts, output, kept_from=kept_from, with_json=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    raw = sys.argv[1:] if argv is None else argv
    args = parse_args(raw)
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
    args.output.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        return report_only(args, console)

    from benchmarks import machine
    from benchmarks.rounds import run_all
    from benchmarks.runner import Runner, quiet_logs

    started = dt.datetime.now().astimezone()
    results = Results()
    results.run = {
        "command": command_line(raw),
        "date": started.isoformat(timespec="seconds"),
        "only": args.only_list,
        "counts": list(args.counts),
        "repeat": args.repeat,
        "p4_repeat": args.p4_repeat,
        "p9_repeat": args.p9_repeat,
        "without_reuse": args.without_reuse,
        "warmup": args.warmup,
    }
    t0 = time.perf_counter()
    load_start = os.getloadavg()
    runner = Runner(args, console, results)
    with run_dir():
        import distributed  # imported before any timing
        import distributed.deploy.local  # noqa: F401

        quiet_logs()
        results.extras["machine"] = machine.describe()
        console.log(f"machine: {results.machine}")
        try:
            run_all(runner, args.only_list, args.counts)
        except KeyboardInterrupt:
            console.log("[yellow]interrupted; reporting what was measured")
        finally:
            runner.clean_up()
    results.run["elapsed_s"] = time.perf_counter() - t0
    results.run["loads"] = [list(load_start), list(os.getloadavg())]
    if runner.untyped_progress:
        console.log("[yellow]cluster.up reported progress as text, not events: phases not available")
    write_outputs(console, results, args.only_list, args.counts, args.output)
    console.log(f"run took {results.run['elapsed_s'] / 60:.1f} min")
    return 1 if any(x.errors for x in results.series.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
