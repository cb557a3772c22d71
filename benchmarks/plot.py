"""``results.png``: one panel per benchmark, and where the compose ``up`` time of P1 goes."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from benchmarks.definitions import WORKERS, BenchDef, Goal, evaluate, ratio
from benchmarks.phases import profile_medians
from benchmarks.report import fmt
from benchmarks.results import Results, Series

CONTAINERS = ("compose", "testcontainers", "testcontainers, reused", "dask-docker layout", "image")
#: Benchmarks whose bars are named by their series key (``P9/compose-up`` -> "compose\nup").
BY_KEY = ("P6", "P8w", "P8s", "P9")


def _p4(ax: Any, bench: BenchDef, present: list[Series], s: dict[str, Series]) -> None:
    goal = bench.goal
    ticks: set[int] = set()
    for runtime, color in (("compose", "tab:blue"), ("distributed.LocalCluster", "tab:gray")):
        line = sorted((x for x in present if x.runtime == runtime and x.n), key=lambda x: x.n or 0)
        if not line:
            continue
        xs = [x.n for x in line]
        ticks.update(n for n in xs if n)
        name = runtime.replace("distributed.", "")
        ax.plot(xs, [x.median for x in line], "o-", color=color, label=f"{name} median")
        ax.fill_between(xs, [x.low for x in line], [x.high for x in line], color=color, alpha=0.2)
    base, lc_growth = s.get(goal.baseline or ""), ratio(s, goal.ref_subject, goal.ref_baseline)
    if base is not None and base.median and lc_growth:
        # The compose ready time at the largest N that meets the goal.
        top = s[goal.subject].n if goal.subject in s else None
        ax.axhline(
            goal.limit * lc_growth * base.median,
            color="tab:red",
            ls="--",
            lw=1,
            label=f"goal at N={top}: {goal.limit}x LocalCluster's growth",
        )
    ax.set_xscale("log", base=2)
    xs = sorted(ticks)
    ax.set_xticks(xs, [str(n) for n in xs])
    ax.set_xlabel("workers (N)")
    ax.set_ylabel("ready time [s]")
    ax.legend(fontsize=8)


def _bars(ax: Any, code: str, bench: BenchDef, present: list[Series], s: dict[str, Series]) -> None:
    unit = present[0].unit
    if code == "P3":
        labels = [
            f"{x.runtime.replace(' (spark-class)', '')}\n{'spark' if 'Spark' in x.what else 'dask'}"
            for x in present
        ]
    elif code == "P1b":
        labels = ["clusterkit\ncompose" if x.runtime == "compose" else x.runtime for x in present]
    elif code in BY_KEY:
        labels = [x.key.split("/", 1)[1].replace("-", "\n", 1) for x in present]
    else:
        labels = [
            x.runtime.replace("distributed.", "")
            .replace(" (spark-class)", "\n(spark-class)")
            .replace(" (floor)", "\n(floor)")
            for x in present
        ]
    meds = [x.median or 0.0 for x in present]
    err = [
        [m - (x.low or m) for m, x in zip(meds, present, strict=True)],
        [(x.high or m) - m for m, x in zip(meds, present, strict=True)],
    ]
    colors = ["tab:orange" if x.runtime in CONTAINERS else "tab:gray" for x in present]
    ax.bar(range(len(present)), meds, yerr=err, capsize=4, color=colors)
    ax.set_xticks(range(len(present)), labels, fontsize=8)
    ax.set_ylabel({"tasks/s": "tasks/s", "MB": "MB (10^6 bytes)"}.get(unit, "seconds"))
    for i, m in enumerate(meds):
        ax.annotate(
            fmt(m, unit).replace(" tasks/s", ""),
            (i, m),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 3),
            textcoords="offset points",
        )
    styles = ("--", ":", "-.")
    for index, goal in enumerate(bench.goals):
        style = styles[index % len(styles)]
        name = f" ({goal.subject.split('/', 1)[1]})" if len(bench.goals) > 1 else ""
        if goal.baseline is None:
            ax.axhline(
                goal.limit, color="tab:red", ls=style, lw=1, label=f"goal{name} {fmt(goal.limit, unit)}"
            )
        elif goal.baseline in s and s[goal.baseline].median:
            ax.axhline(
                goal.limit * s[goal.baseline].median,  # type: ignore[operator]
                color="tab:red",
                ls=style,
                lw=1,
                label=f"goal{name} {goal.limit}x {goal.baseline.split('/', 1)[1]}",
            )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def _profile(ax: Any, profiles: list[dict[str, float]]) -> None:
    rows = profile_medians(profiles)
    ax.barh(range(len(rows)), [r[1] for r in rows], color="tab:orange")
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds after cluster.up was called (median)")
    ax.set_title(f"P1: where compose up time goes (dask, N={WORKERS})", fontsize=9)


def _verdict(goal: Goal, s: dict[str, Series]) -> str:
    return {True: "met", False: "MISSED", None: "n/a"}[evaluate(goal, s)[1]]


def plot(results: Results, benches: dict[str, BenchDef], only: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = results.series
    panels = [c for c in only if any(k in s for k in benches[c].keys)]
    profile = bool(results.profiles.get("dask")) and "P1" in only
    count = len(panels) + (1 if profile else 0)
    if count == 0:
        return
    cols = min(3, count)
    rows = (count + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.0 * rows), squeeze=False)
    flat = list(axes.flat)
    for ax, code in zip(flat, panels, strict=False):
        bench = benches[code]
        present = [s[k] for k in bench.keys if k in s and s[k].values]
        goals = "; ".join(f"{g.text} ({_verdict(g, s)})" for g in bench.goals)
        title = f"{bench.title}\ngoal: {goals}"
        ax.set_title("\n".join(textwrap.fill(line, 62) for line in title.splitlines()), fontsize=9)
        if not present:
            ax.text(0.5, 0.5, "no successful runs", ha="center", va="center", transform=ax.transAxes)
        elif code == "P4":
            _p4(ax, bench, present, s)
        else:
            _bars(ax, code, bench, present, s)
    if profile:
        _profile(flat[len(panels)], results.profiles["dask"])
    for ax in flat[count:]:
        ax.axis("off")
    fig.suptitle(
        f"clusterkit benchmarks, {str(results.run.get('date', ''))[:16].replace('T', ' ')}", fontsize=11
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
