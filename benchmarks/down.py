"""``clusterkit down`` as a user runs it: the CLI's wall time, supervised and not, compose and swarm.

    .venv/bin/python -m benchmarks.down [--repeat 5] [--workers 4] [--swarm-workers 2] [--output benchmarks]

Times ``.venv/bin/clusterkit down --name X`` subprocesses after ``clusterkit up --name X --workers 4
--scheduler-port P --dashboard-port Q`` (which leaves a detached supervisor), after the same with
``--no-supervise`` (the baseline) and after ``up --runtime swarm --workers 2`` (on a one-node swarm
made for it and left after; an engine already in a swarm is not touched: no swarm rows). A warm-up
round, then ``--repeat`` rounds, compose kinds interleaved; after each ``down``, anything labelled
with the cluster, or its supervisor, still there is "left behind". Then one ``down`` of each kind
with a timer on each step. Prints the table, rewrites the down section of ``--output``/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.report import fmt_ratio, write_marked_section
from benchmarks.runner import free_ports
from benchmarks.swarm import load, say, sh, swarm_manager

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CLI = ROOT / ".venv" / "bin" / "clusterkit"
MARKERS = ("<!-- down start -->", "<!-- down end -->")
#: Where the section goes the first time: after the notes paragraph of this section of RESULTS.md.
AFTER_SECTION = "## P3: cluster.down"
MAIN = "in the CLI's main (after imports)"
TRACED = "from benchmarks.down import traced_main; traced_main()"
UP_TIMEOUT, DOWN_TIMEOUT = 400, 120
GOAL = {"supervised": 1.0, "swarm": 3.0}
#: (kind, row label, runtime); the ``up`` arguments of each kind are in ``up_argv``.
KINDS = (
    ("supervised", "down, {w} Dask workers, default `up` (detached supervisor)", "compose"),
    ("unsupervised", "down, {w} Dask workers, `up --no-supervise`", "compose"),
    ("swarm", "down, {s} Dask workers, `up --runtime swarm` (supervisor)", "swarm"),
)


@dataclass
class Bench:
    args: argparse.Namespace
    count: int = 0
    times: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k, _, _ in KINDS})
    left: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k, _, _ in KINDS})
    supervisors: dict[str, int] = field(default_factory=lambda: {k: 0 for k, _, _ in KINDS})
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    live: set[str] = field(default_factory=set)
    steps: dict[str, dict[str, float]] = field(default_factory=dict)

    def fail(self, what: str, text: str) -> None:
        self.errors.append(f"{what}: {text}")
        say(f"{what} failed: {text}")


def cli(*argv: str, timeout: float, traced: bool = False) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Wall time and result of one ``clusterkit`` subprocess (``traced``: with timers on ``down``'s steps)."""
    head = [sys.executable, "-c", TRACED] if traced else [str(CLI)]
    t0 = time.perf_counter()
    result = subprocess.run([*head, *argv], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    return time.perf_counter() - t0, result


def first_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
    return f"exit {result.returncode}: {lines[-1] if lines else ''}"


def up_argv(b: Bench, kind: str, name: str) -> list[str]:
    port, dashboard = free_ports(2)
    workers = b.args.swarm_workers if kind == "swarm" else b.args.workers
    argv = ["up", "--name", name, "--workers", str(workers)]
    argv += ["--scheduler-port", str(port), "--dashboard-port", str(dashboard)]
    if kind == "unsupervised":
        argv.append("--no-supervise")
    if kind == "swarm":
        argv += ["--runtime", "swarm"]
    return argv


def supervisor_of(name: str) -> dict[str, Any]:
    """The detached supervisor of ``name`` as recorded (pid, started), if it runs."""
    from clusterkit import records

    found = records.load(name).get("supervisor") or {}
    return found if found.get("pid") and records.alive(int(found["pid"]), found.get("started")) else {}


#: What of a cluster the engine may hold: kind -> (how to list it, how to remove it).
OBJECTS = {
    "service": (("service", "ls", "-q"), ("service", "rm")),
    "container": (("ps", "-aq"), ("rm", "-f")),
    "network": (("network", "ls", "-q"), ("network", "rm")),
    "secret": (("secret", "ls", "-q"), ("secret", "rm")),
}


def engine_objects(name: str) -> dict[str, list[str]]:
    """The ids of everything labelled with cluster ``name`` (services and secrets on a swarm manager)."""
    manager = sh("docker", "info", "--format", "{{.Swarm.ControlAvailable}}", check=False) == "true"
    label = f"label=clusterkit.cluster={name}"
    return {
        kind: sh("docker", *ls, "--filter", label, check=False).split()
        for kind, (ls, _) in OBJECTS.items()
        if manager or kind in ("container", "network")
    }


def leftovers(name: str, supervisor: dict[str, Any]) -> list[str]:
    """What of cluster ``name`` is still there: engine objects by label, the supervisor process."""
    from clusterkit import records

    found = engine_objects(name)
    text = [f"{len(ids)} {what}{'s' * (len(ids) > 1)}" for what, ids in found.items() if ids]
    if supervisor and records.alive(int(supervisor["pid"]), supervisor.get("started")):
        text.append(f"supervisor pid {supervisor['pid']}")
    return text


def clean(name: str) -> None:
    """Remove whatever ``down`` left of ``name`` (so one bad round does not spoil the next)."""
    for kind, ids in engine_objects(name).items():
        if ids:
            sh("docker", *OBJECTS[kind][1], *ids, check=False)


def down_round(b: Bench, kind: str, warmup: bool, traced: bool = False) -> None:
    """``up`` of one cluster (untimed), then the timed ``down``, then the check for leftovers."""
    b.count += 1
    name = f"bench-down-{kind[:3]}-{os.getpid()}-{b.count}"
    label = kind + " (warm-up)" * warmup + " (traced)" * traced
    b.live.add(name)
    _, result = cli(*up_argv(b, kind, name), timeout=UP_TIMEOUT)
    if result.returncode != 0:
        b.fail(f"up of {label} {name}", first_line(result))
        cli("down", "--name", name, timeout=DOWN_TIMEOUT)
        return clean(name)
    supervisor = supervisor_of(name)
    seconds, result = cli("down", "--name", name, timeout=DOWN_TIMEOUT, traced=traced)
    left = leftovers(name, supervisor)
    say(f"{label}: down {seconds:.2f} s" + (f", left behind: {', '.join(left)}" if left else ""))
    if result.returncode != 0:
        b.fail(f"down of {label} {name}", first_line(result))
    if left:
        b.fail(f"down of {label} {name}", "left behind " + ", ".join(left))
        clean(name)
    b.live.discard(name)
    if traced:
        return steps_of(b, kind, seconds, result)
    if not warmup and result.returncode == 0:
        b.times[kind].append(seconds)
        b.left[kind].append(", ".join(left))
        b.supervisors[kind] += bool(supervisor)


def compose_rounds(b: Bench) -> None:
    for i in range(-1, b.args.repeat):  # round -1: the warm-up, discarded
        for kind in ("supervised", "unsupervised") if i % 2 else ("unsupervised", "supervised"):
            down_round(b, kind, warmup=i < 0)
    for kind in ("supervised", "unsupervised") if b.args.steps else ():
        down_round(b, kind, warmup=False, traced=True)


def swarm_rounds(b: Bench) -> None:
    state = sh("docker", "info", "--format", "{{.Swarm.LocalNodeState}}")
    if state != "inactive":
        b.notes.append(f"swarm rows skipped: the engine is already in a swarm ({state!r}), not ours to touch")
        return say(b.notes[-1])
    with swarm_manager():
        for i in range(-1, b.args.repeat):
            down_round(b, "swarm", warmup=i < 0)
        if b.args.steps:
            down_round(b, "swarm", warmup=False, traced=True)


def traced_main() -> None:
    """``clusterkit`` with a timer on each step of ``down``; the seconds go to stderr as one JSON line."""
    import atexit
    import re

    from docker.models.containers import Container
    from docker.models.services import Service

    from clusterkit import records, supervisor, waiting
    from clusterkit.cli import main as cli
    from clusterkit.runtimes import base, containers, swarm

    spans: dict[str, list[tuple[float, float]]] = {}

    def timer(owner: Any, attr: str, label: str | None = None) -> None:
        f = getattr(owner, attr, None)

        def timed(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                what = label or "wait: " + re.sub(r"'[^']*'", "X", str(k.get("what", "?")))
                what += (
                    f" ({a[0].labels.get('clusterkit.role')})" if a and isinstance(a[0], Container) else ""
                )
                spans.setdefault(what, []).append((t, time.perf_counter()))

        if f is not None:
            setattr(owner, attr, timed)

    for owner, attr, label in (
        (base.Runtime, "remove_all", "remove_all (all below)"),
        (records, "update", "record: mark stopping"),
        (supervisor, "stop_detached", "supervisor: SIGTERM"),
        (containers.ContainerRuntime, "_teardown", "teardown"),
        (swarm.SwarmRuntime, "_teardown", "teardown"),
        (Container, "kill", "containers: SIGTERM, parallel"),
        (Container, "wait", "containers: wait for their exit, parallel"),
        (Container, "stop", "containers: stop, parallel"),
        (Container, "remove", "containers: remove, parallel"),
        (Service, "remove", "services: remove"),
    ):
        timer(owner, attr, label)
    for module in (waiting, containers, swarm):
        timer(module, "wait_for")
    begin = time.perf_counter()

    def report() -> None:
        found = {MAIN: time.perf_counter() - begin}
        for label, pairs in sorted(spans.items(), key=lambda item: min(item[1])):  # by start
            total, end = 0.0, 0.0
            for t0, t1 in sorted(pairs):  # the union of the intervals: parallel calls count once
                total += max(0.0, t1 - max(t0, end))
                end = max(end, t1)
            found[label] = total
        print("STEPS " + json.dumps(found), file=sys.stderr, flush=True)

    atexit.register(report)
    cli()


def steps_of(b: Bench, kind: str, wall: float, result: subprocess.CompletedProcess[str]) -> None:
    """The step timings a traced ``down`` printed, with its wall time and what came before its main."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("STEPS ")]
    if result.returncode != 0 or not lines:
        return b.fail(f"traced down of {kind}", first_line(result))
    found = json.loads(lines[-1][len("STEPS ") :])
    b.steps[kind] = {"wall (subprocess)": wall, "python start + imports": wall - found[MAIN], **found}
    say(f"{kind} (steps): " + ", ".join(f"{k} {v:.2f}" for k, v in b.steps[kind].items()))


def spread(values: list[float]) -> tuple[float, float, float] | None:
    return (statistics.median(values), min(values), max(values)) if values else None


def left_text(b: Bench, kind: str) -> str:
    runs = b.left[kind]
    bad = [f"run {i + 1}: {text}" for i, text in enumerate(runs) if text]
    return "; ".join(bad) if bad else ("nothing" if runs else "n/a")


def body(b: Bench) -> list[str]:
    """The table, failures and notes, as markdown."""
    base = spread(b.times["unsupervised"])
    lines = [
        "| what | runtime | median | min | max | runs | ratio vs baseline | goal | met? | left behind |",
        "|---" * 10 + "|",
    ]
    for kind, what, runtime in KINDS:
        found = spread(b.times[kind])
        cells = [f"{v:.2f} s" for v in found] if found else ["n/a"] * 3
        ratio = fmt_ratio(found[0] / base[0] if found and base else None)
        ratio = "baseline" if kind == "unsupervised" else ratio
        goal = f"median <= {GOAL[kind]:.1f} s" if kind in GOAL else ""
        met = "" if not goal else "n/a" if not found else "yes" if found[0] <= GOAL[kind] else "**NO**"
        label = what.format(w=b.args.workers, s=b.args.swarm_workers)
        row = [label, runtime, *cells, str(len(b.times[kind])), ratio, goal, met, left_text(b, kind)]
        lines.append("| " + " | ".join(row) + " |")
    each = "; ".join(f"{k}: " + ", ".join(f"{v:.2f}" for v in b.times[k]) for k in b.times if b.times[k])
    sup = ", ".join(f"{k} {b.supervisors[k]}/{len(b.times[k])}" for k in b.times)
    lines += ["", f"Each run, in order (s): {each}.", "", f"Supervisor running before `down`: {sup} runs."]
    lines += steps_table(b)
    lines += ["", "Failures:", *[f"- {e}" for e in b.errors]] if b.errors else []
    return lines + [line for n in b.notes for line in ("", f"Note: {n}")]


def steps_table(b: Bench) -> list[str]:
    if not b.steps:
        return []
    kinds = list(b.steps)
    labels = list(dict.fromkeys(label for kind in kinds for label in b.steps[kind]))
    lines = [
        "",
        "Where one `down`'s time goes: one more `up` and `down` of each kind, the `down` with a timer on "
        "each step (`traced_main`); seconds, parallel calls counted once, steps nested in those above them:",
        "",
        "| step | " + " | ".join(kinds) + " |",
        "|---" * (len(kinds) + 1) + "|",
    ]
    for label in labels:
        cells = [f"{b.steps[k][label]:.2f}" if label in b.steps[k] else "" for k in kinds]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def section(b: Bench, run: dict[str, Any]) -> str:
    m = run["machine"]
    head = [
        MARKERS[0],
        "## P3b: `clusterkit down` from the CLI, supervised and not, compose and swarm",
        "",
        f"- Command: `{run['command']}`",
        f"- Date: {run['date']} (took {run['elapsed'] / 60:.1f} min)",
        f"- Machine: {m['nproc']} cores, {m['memory']} memory; {m['docker']}; compose {m['compose']}; "
        f"clusterkit {m['clusterkit']}",
        f"- Load average (1, 5, 15 min): start {run['loads'][0]}; end {run['loads'][1]} "
        "(a shared machine: other suites ran on the engine meanwhile)",
        "",
        "Each figure: the wall time of one `.venv/bin/clusterkit down --name X` subprocess, start to exit, "
        f"after a `clusterkit up` subprocess (not timed); median [min-max] of {b.args.repeat} runs, one "
        "warm-up round discarded, the compose kinds interleaved. After each `down` the engine was asked "
        "for containers, networks (and on swarm services, secrets) labelled `clusterkit.cluster=X`, and "
        'whether the cluster\'s supervisor process still ran ("left behind").',
        "",
    ]
    return "\n".join([*head, *body(b), MARKERS[1]])


def place_markers(path: Path) -> None:
    """The first time: an empty section at the end of ``AFTER_SECTION`` (before the next heading)."""
    text = path.read_text() if path.exists() else ""
    at = text.find("\n## ", text.find(AFTER_SECTION) + 1) if AFTER_SECTION in text else -1
    if MARKERS[0] not in text and at >= 0:  # else write_marked_section appends it at the end
        path.write_text(text[: at + 1] + f"{MARKERS[0]}\n{MARKERS[1]}\n" + text[at:])


def measure(b: Bench) -> None:
    try:
        compose_rounds(b)
        if not b.args.no_swarm:
            swarm_rounds(b)
    except KeyboardInterrupt:
        say("interrupted; reporting what was measured")
    finally:
        for name in sorted(b.live):
            cli("down", "--name", name, timeout=DOWN_TIMEOUT)
            clean(name)


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks.down", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="measured rounds (default 5)")
    parser.add_argument("--workers", type=int, default=4, help="Dask workers on compose (default 4)")
    parser.add_argument("--swarm-workers", type=int, default=2, help="Dask workers on swarm (default 2)")
    parser.add_argument("--no-swarm", action="store_true", help="skip the swarm rows")
    parser.add_argument("--no-steps", dest="steps", action="store_false", help="no traced down")
    parser.add_argument("--output", type=Path, default=HERE, help="folder of the RESULTS.md to update")
    args = parser.parse_args(raw)
    signal.signal(
        signal.SIGTERM, signal.default_int_handler
    )  # a killed run still leaves the swarm and removes its clusters
    from benchmarks import machine

    python = os.path.relpath(sys.executable, ROOT)
    t0 = time.monotonic()
    run: dict[str, Any] = {
        "command": f"cd {ROOT} && {python} -m benchmarks.down {shlex.join(raw)}".rstrip(),
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "loads": [load()],
        "machine": machine.describe(),
    }
    say(f"load average at start: {run['loads'][0]}; {args.repeat} rounds")
    bench = Bench(args)
    measure(bench)
    run["loads"].append(load())
    run["elapsed"] = time.monotonic() - t0
    say(f"load average at end: {run['loads'][1]}")
    text = section(bench, run)
    print(text)
    path = args.output / "RESULTS.md"
    place_markers(path)
    write_marked_section(path, MARKERS, text)
    say(f"wrote the down section of {path}")
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
