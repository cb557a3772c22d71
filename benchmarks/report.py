"""The results as a table on the console and as ``RESULTS.md``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.analysis import analysis
from benchmarks.definitions import FRESH_GOALS, BenchDef, Goal, evaluate, ratio
from benchmarks.phases import has_events, phase_medians, profile_medians
from benchmarks.results import Results, Series

#: Everything below this line of RESULTS.md was measured by other commands (image builds) and is kept.
KEPT_MARKER = "<!-- kept by bench_cluster: measured by other commands -->"
#: The P8 section the separate ``bench_fixture`` script used to keep below the marker.
OLD_P8 = ("<!-- P8 start -->", "<!-- P8 end -->")
NO_PHASES = "phases not available: the runtime sent no progress events during `up`"


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "tasks/s":
        return f"{value:,.0f} tasks/s"
    if unit == "MB":
        return f"{value:.0f} MB"
    return f"{value:.2f} s"


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def fmt_met(met: bool | None) -> str:
    return {True: "yes", False: "**NO**", None: "n/a"}[met]


def bench_rows(bench: BenchDef, s: dict[str, Series]) -> list[tuple[Series, str, Goal | None]]:
    """(series, ratio text, the goal it is the subject of) for each series of ``bench`` that ran."""
    rows = []
    for key in bench.keys:
        x = s.get(key)
        if x is None:
            continue
        base = bench.baseline_of(key)
        text = "" if not base else "baseline" if key == base else fmt_ratio(ratio(s, key, base))
        rows.append((x, text, bench.goal_of(key)))
    return rows


def verdict(bench: BenchDef, s: dict[str, Series]) -> bool | None:
    """False if a goal of ``bench`` is missed, None if one could not be evaluated, else True."""
    mets = [evaluate(g, s)[1] for g in bench.goals]
    return False if False in mets else None if None in mets else True


def measured(goal: Goal, s: dict[str, Series]) -> str:
    """The goal's compared number as text; a ratio of ratios with both of its ratios."""
    value, _ = evaluate(goal, s)
    if goal.baseline is None:
        return fmt(value, s[goal.subject].unit if goal.subject in s else "s")
    if goal.beside is not None:
        key, name = goal.beside
        return f"{fmt_ratio(value)} (vs {name}: {fmt_ratio(ratio(s, goal.subject, key))})"
    if goal.ref_subject is None:
        return fmt_ratio(value)
    sides = [
        (s[k].runtime.replace("distributed.", "") if k in s else k.split("/")[1], ratio(s, k, b))
        for k, b in ((goal.subject, goal.baseline), (goal.ref_subject, goal.ref_baseline))
    ]
    return f"{fmt_ratio(value)} ({'; '.join(f'{name} {fmt_ratio(r)}' for name, r in sides)})"


def fresh_rows(fresh: dict[str, Any] | None) -> list[tuple[str, str, str, str, bool | None]]:
    """(code, title, goal text, measured text, met?) of P7a / P7b, from benchmarks/fresh.json."""
    runs = (fresh or {}).get("runs") or {}
    rows = []
    for code, (what, limit) in FRESH_GOALS.items():
        run = runs.get(code)
        seconds = run.get("seconds") if isinstance(run, dict) else None
        goal = f"<= {limit:.0f} s ({limit / 60:.0f} min)"
        if isinstance(seconds, int | float):
            minutes, rest = divmod(round(seconds), 60)
            date = str(run.get("date") or (fresh or {}).get("date") or "?")[:19]
            text = f"{seconds:.0f} s ({minutes} min {rest} s), from `python -m benchmarks.fresh` on {date}"
            rows.append((code, f"{code}: {what}", goal, text, bool(seconds <= limit)))
        else:
            rows.append(
                (code, f"{code}: {what}", goal, "not measured in this run: see benchmarks.fresh", None)
            )
    return rows


FRESH_NOTE = (
    "P7a / P7b are not measured by this command: `python -m benchmarks.fresh` times `make up` on a "
    "fresh machine (an empty engine and caches) and stores the figures, step by step, in "
    "benchmarks/fresh.json (and in its own section of benchmarks/RESULTS.md)."
)


def runs_text(x: Series) -> str:
    return f"{len(x.values)}" + (f" ({len(x.errors)} failed)" if x.errors else "")


def phase_rows(results: Results, keys: list[str]) -> list[list[str]]:
    """[series, runtime, phase cells...] for each key whose ``up`` runs reported progress events."""
    from benchmarks.phases import PHASES

    rows = []
    for key in keys:
        marks = results.phases.get(key, [])
        if not has_events(marks):
            continue
        found = phase_medians(marks)
        x = results.series.get(key)
        cells = [f"{found[label][0]:.2f} s" if label in found else "" for label, _, _ in PHASES]
        rows.append([x.what if x else key, x.runtime if x else "", *cells])
    return rows


def phase_section(results: Results, bench: BenchDef) -> list[str]:
    from benchmarks.phases import PHASES

    up_keys = [k for k in bench.keys if k in results.phases]
    if not up_keys:
        return []
    rows = phase_rows(results, up_keys)
    if not rows:
        return ["", f"Phases of `up`: {NO_PHASES}."]
    lines = [
        "",
        "Phases of `up` (from its progress events: a phase lasts from its event to the next; medians):",
        "",
        "| what | runtime | " + " | ".join(label for label, _, _ in PHASES) + " |",
        "|---|---|" + "---|" * len(PHASES),
    ]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def header(results: Results, only: list[str], counts: tuple[int, ...]) -> list[str]:
    run, machine = results.run, results.machine
    took = f" (run took {run['elapsed_s'] / 60:.1f} min)" if "elapsed_s" in run else ""
    lines = [
        "# clusterkit benchmarks",
        "",
        "```",
        run.get("command", ""),
        "```",
        "",
        f"- Date: {run.get('date', '?')}{took}",
        f"- Machine: nproc {machine.get('nproc')}, memory {machine.get('memory')}, kernel {machine.get('kernel')}",
        f"- Docker: {machine.get('docker')}; compose tool: {machine.get('compose')}",
        f"- Host: Python {machine.get('python')}, distributed {machine.get('distributed')}, "
        f"pyspark {machine.get('pyspark')}, {machine.get('java')}",
        f"- clusterkit: {machine.get('clusterkit')}",
    ]
    for backend, info in results.images.items():
        stale = "" if info["ref"] == info["current tag"] else f" (current tag would be {info['current tag']})"
        lines.append(
            f"- Image {backend}: `{info['ref']}` id {info['id']}, {info['size']}, created "
            f"{info['created']}, source-hash {info['source-hash']}{stale}"
        )
    if run.get("loads"):
        start, end = run["loads"]
        lines.append(
            f"- Load average (1, 5, 15 min) at start {', '.join(f'{x:.2f}' for x in start)}, "
            f"at end {', '.join(f'{x:.2f}' for x in end)}"
        )
    warmup = run.get("warmup", bool(results.warmups))
    lines += [
        "",
        f"The machine has {machine.get('nproc')} cores: "
        + (f"N={max(counts)} worker containers (P4), " if "P4" in only else "")
        + "the node processes of every cluster and anything else running at the same time (another engineer's "
        "test suite, image builds) contend for the same CPU, so absolute times are noisy; the "
        "baselines run in the same rounds, interleaved, to keep ratios fair. Each figure is the "
        "median of the runs, with the spread as min-max. Images were present before timing "
        "(`cluster.up` is given the image ref, so no build happens inside a measurement; P8's `Cluster` "
        "checks the image itself, as the fixture does)"
        + ("; P7c times the rebuild of the dask image, after every other round" if "P7c" in only else "")
        + (
            "; one warm-up round of P1/P1b/P2/P3/P5 was run first and discarded."
            if warmup
            else "; no warm-up round."
        )
        + (
            " P8w / P8s time whole `pytest` runs (a fresh process each); their warm rows run after "
            "their baselines, with the kept cluster up, then removed by `clusterkit gc --reuse`."
            if {"P8w", "P8s"} & set(only)
            else ""
        ),
    ]
    return lines


def summary(results: Results, benches: dict[str, BenchDef], only: list[str], fresh: Any) -> list[str]:
    s = results.series
    lines = ["", "## Summary", "", "| benchmark | goal | measured (medians) | met? |", "|---|---|---|---|"]
    for code in only:
        bench = benches[code]
        for goal in bench.goals:
            met = evaluate(goal, s)[1]
            lines.append(f"| {bench.title} | {goal.text} | {measured(goal, s)} | {fmt_met(met)} |")
    for _, title, goal_text, text, met in fresh_rows(fresh):
        lines.append(f"| {title} | {goal_text} | {text} | {fmt_met(met)} |")
    return [*lines, "", FRESH_NOTE]


def bench_section(results: Results, bench: BenchDef, benches: dict[str, BenchDef]) -> list[str]:
    """The table of one benchmark, its notes (or analysis), its phases and profile."""
    s = results.series
    lines = [
        "",
        f"## {bench.title}",
        "",
        "| what | runtime | median | min | max | runs | ratio vs baseline | goal | met? |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for x, ratio_text, goal in bench_rows(bench, s):
        met = fmt_met(evaluate(goal, s)[1]) if goal else ""
        lines.append(
            f"| {x.what} | {x.runtime} | {fmt(x.median, x.unit)} | {fmt(x.low, x.unit)} | "
            f"{fmt(x.high, x.unit)} | {runs_text(x)} | {ratio_text} | {goal.text if goal else ''} | {met} |"
        )
    why = analysis(bench.code, results, benches)
    met_all = verdict(bench, s)
    lines.append("")
    if met_all is False:
        lines.append("Analysis: " + (why or "(no profile data)"))
    elif met_all is None:
        lines.append("Analysis: the goal could not be evaluated (see the failed runs below). " + why)
    elif why:
        lines.append("Notes: " + why)
    lines += phase_section(results, bench)
    if bench.code in ("P1", "P2"):
        lines += profile_section(results, "dask" if bench.code == "P1" else "spark")
    return lines


def report(
    results: Results,
    benches: dict[str, BenchDef],
    only: list[str],
    counts: tuple[int, ...],
    fresh: dict[str, Any] | None = None,
) -> str:
    """RESULTS.md as text; ``fresh``: what ``python -m benchmarks.fresh`` stored (P7a / P7b)."""
    s = results.series
    lines = header(results, only, counts) + summary(results, benches, only, fresh)
    for code in only:
        lines += bench_section(results, benches[code], benches)
    ones = results.extras.get("one-offs")
    if ones:
        lines += ["", "## One-off costs (median of 3)", "", "| what | time |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in ones.items()]
    if results.warmups:
        lines += ["", "## Warm-up runs (discarded)", ""] + [f"- {w}" for w in results.warmups]
    failed = [x for x in s.values() if x.errors]
    if failed:
        lines += ["", "## Failed runs", ""]
        for x in failed:
            for error in x.errors:
                text = error.strip().replace("\n", "\n    ")
                lines.append(f"- {x.key} ({x.runtime}):\n\n    {text}\n")
    lines += ["", "Plot: [results.png](results.png); raw values: [results.json](results.json).", ""]
    return "\n".join(lines)


def profile_section(results: Results, backend: str) -> list[str]:
    profiles = results.profiles.get(backend, [])
    rows = profile_medians(profiles)
    if not rows:
        return []
    source = "its progress events and " if has_events(profiles) else ""
    return [
        "",
        f"Where the compose `up` time goes ({backend}; seconds after `cluster.up` was called, median "
        f"[min-max] of {len(profiles)} runs; from {source}the engine's container events):",
        "",
        "| step | at (median) | min | max |",
        "|---|---|---|---|",
        *[f"| {label} | {m:.2f} s | {lo:.2f} s | {hi:.2f} s |" for label, m, lo, hi in rows],
    ]


def write_results(text: str, path: Path, kept_from: Path | None = None, reported_p8: bool = False) -> None:
    """Write RESULTS.md, keeping what other commands recorded below ``KEPT_MARKER`` in ``kept_from``."""
    source = kept_from or path
    old = source.read_text() if source.exists() else ""
    if KEPT_MARKER in old:
        kept = old.split(KEPT_MARKER, 1)[1]
        start, end = OLD_P8
        if reported_p8 and start in kept and end in kept:
            kept = kept.split(start, 1)[0].rstrip() + "\n" + kept.split(end, 1)[1]
        text = text.rstrip() + "\n\n" + KEPT_MARKER + kept.rstrip() + "\n"
    path.write_text(text)


def print_table(
    console: Any,
    results: Results,
    benches: dict[str, BenchDef],
    only: list[str],
    fresh: dict[str, Any] | None = None,
) -> None:
    from rich.table import Table

    from benchmarks.phases import PHASES

    table = Table(title="clusterkit benchmarks (medians; spread min-max)", show_lines=False)
    for column in ("bench", "what", "runtime", "median", "min", "max", "runs", "ratio", "goal", "met?"):
        table.add_column(column, justify="right" if column in ("median", "min", "max", "runs") else "left")
    up_keys: list[str] = []
    for code in only:
        bench = benches[code]
        up_keys += [k for k in bench.keys if k in results.phases]
        for x, ratio_text, goal in bench_rows(bench, results.series):
            met = evaluate(goal, results.series)[1] if goal else None
            met_text = {True: "[green]yes", False: "[red]NO", None: "[yellow]n/a"}[met] if goal else ""
            table.add_row(
                code,
                x.what,
                x.runtime,
                fmt(x.median, x.unit),
                fmt(x.low, x.unit),
                fmt(x.high, x.unit),
                runs_text(x),
                ratio_text,
                goal.text if goal else "",
                met_text,
            )
    for code, title, goal_text, text, fresh_met in fresh_rows(fresh):
        met_text = {True: "[green]yes", False: "[red]NO", None: "[yellow]n/a"}[fresh_met]
        table.add_row(
            code, title.split(": ", 1)[1], "benchmarks.fresh", text, "", "", "", "", goal_text, met_text
        )
    console.print(table)
    if not up_keys:
        return
    rows = phase_rows(results, up_keys)
    if not rows:
        console.print(f"[yellow]{NO_PHASES}")
        return
    phases = Table(title="phases of cluster.up (medians, from the progress events)")
    for column in ("what", "runtime", *(label for label, _, _ in PHASES)):
        phases.add_column(column)
    for row in rows:
        phases.add_row(*row)
    console.print(phases)


def write_marked_section(path: Path, markers: tuple[str, str], text: str) -> None:
    """Put ``text`` (which starts and ends with ``markers``) into RESULTS.md in place of the old
    section, or at the end; every other section stays as it is."""
    old = path.read_text() if path.exists() else ""
    if markers[0] in old and markers[1] in old:
        path.write_text(old.split(markers[0], 1)[0] + text + old.split(markers[1], 1)[1])
    else:
        path.write_text(old.rstrip() + ("\n\n" if old.strip() else "") + text + "\n")
