"""The "why" under each benchmark: figures from the run, facts about the nodes from clusterkit's code.

Facts about how the nodes start (healthchecks, the start-up gate, the restart
policy, the node and probe commands) are read from the compose file
``clusterkit.runtimes.compose.render`` writes today, not written down here,
so the text follows the code. Every figure comes from the run.
"""

from __future__ import annotations

import ast
import importlib
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import notes
from benchmarks.definitions import WORKERS, BenchDef, ratio
from benchmarks.phases import has_events, mark_median, span
from benchmarks.results import Results


def _render(spec: Any) -> dict[str, Any]:
    try:
        from clusterkit.render.compose import render
    except ImportError:  # before the render package
        from clusterkit.runtimes.compose import render  # type: ignore[attr-defined,no-redef]
    return render(spec, "image")


def _stop_grace() -> int | None:
    for module in ("clusterkit.runtimes.containers", "clusterkit.runtimes.compose"):
        try:
            return int(getattr(importlib.import_module(module), "STOP_TIMEOUT"))  # noqa: B009
        except (ImportError, AttributeError, TypeError, ValueError):
            continue
    return None


def compose_facts(backend: str) -> dict[str, Any]:
    """How the compose nodes of ``backend`` start, from the compose file clusterkit renders."""
    try:
        from clusterkit.spec import resolve_spec

        doc = _render(resolve_spec(overrides={"backend": backend}, environ={}))
        scheduler, worker = doc["services"]["scheduler"], doc["services"]["worker"]
    except Exception:
        return {}
    check, worker_check = scheduler.get("healthcheck") or {}, worker.get("healthcheck") or {}

    def seconds(text: Any) -> str:
        return str(text).removesuffix("s") + " s" if str(text).rstrip("s").isdigit() else str(text)

    depends = worker.get("depends_on") or {}  # a list (start order only) or conditions by service
    gate = (depends.get("scheduler") or {}).get("condition") if isinstance(depends, dict) else None
    return {
        "gate": gate,
        "node": " ".join(scheduler["command"][:3]),
        "probe": " ".join(check.get("test", [])[1:4]),
        "interval": seconds(check.get("interval")),
        "worker interval": seconds(worker_check.get("interval")),
        "restart": scheduler.get("restart"),
        "stop": _stop_grace(),
        "worker command": " ".join(str(x) for x in worker.get("command", [])),
        "worker environment": dict(worker.get("environment") or {}),
    }


def probe_is_stdlib() -> bool:
    """Does ``clusterkit.probe`` import only the standard library (checked in its source)?"""
    try:
        import clusterkit.probe as probe

        tree = ast.parse(Path(probe.__file__).read_text())
    except Exception:
        return False
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    # clusterkit's own modules it imports are standard-library-only too (the backends' data
    # table, the errors, the readiness loop, which imports tenacity only when it waits).
    light = {"clusterkit.facts", "clusterkit.errors", "clusterkit.waiting"}
    own = {m for m in modules if m.split(".")[0] == "clusterkit"}
    return own <= light and names - {"clusterkit"} <= set(sys.stdlib_module_names) | {"__future__"}


def how_nodes_start(backend: str) -> str:
    f = compose_facts(backend)
    if not f:
        return ""
    program = (
        "the Dask scheduler, or `dask worker` with its nanny"
        if backend == "dask"
        else "`spark-class` with the Spark master or worker"
    )
    parts = [
        f"Each node container runs tini, which starts `{f['node']} ROLE` (the node entry point, without the "
        f"CLI's imports); it execs the backend's program ({program}), so signals reach that program"
        + (
            "; a Dask worker's entry point first imports `dask worker` (while the scheduler starts), "
            "waits for the scheduler's port (polled every 0.25 s at most), then runs it in the same process."
            if backend == "dask"
            else "; a Spark worker's entry point waits for the master's port first (a Spark worker that "
            "misses its master backs off 5-15 s before it tries again)."
        )
    ]
    probe = f"`{f['probe']} scheduler`" + (", standard library only" if probe_is_stdlib() else "")
    if f["gate"] == "service_healthy":
        parts.append(
            "The worker service depends on the scheduler with `condition: service_healthy`: the Compose "
            f"tool starts the workers once the scheduler's healthcheck ({probe}, every {f['interval']}; "
            f"the engine runs the first one {f['interval']} after the container starts) has passed."
        )
    else:
        parts.append(
            f"The scheduler's healthcheck is {probe}, every {f['interval']}; no service waits on it."
        )
    parts.append(
        f"Workers have a healthcheck too (every {f['worker interval']}), but nothing waits on it: "
        "`cluster.up` polls the scheduler until it lists every worker."
    )
    if f["restart"]:
        parts.append(f"Both services have `restart: {f['restart']}`: the engine restarts a node that exits.")
    return " ".join(parts)


def _s(value: float | None) -> str | None:
    return None if value is None else f"{value:.2f} s"


def _clauses(pairs: list[tuple[str, float | None]]) -> str:
    return "; ".join(f"{text} {_s(v)}" for text, v in pairs if v is not None)


def _event_clauses(marks: list[dict[str, float]]) -> list[tuple[str, float | None]]:
    """Where the compose ``up`` went, from its progress events and the engine's container events."""
    first = "image event" if any("image event" in m for m in marks) else "start event"
    return [
        (
            f"before the `{first.split()[0]}` event"
            + (" (the name checked against every runtime)" if first == "image event" else ""),
            mark_median(marks, first),
        ),
        ("`image` to `start` event (image check, ports free)", span(marks, "image event", "start event")),
        ("`start` event to the scheduler container created", span(marks, "start event", "scheduler create")),
        ("created to started", span(marks, "scheduler create", "scheduler start")),
        (
            "scheduler started to the first worker started",
            span(marks, "scheduler start", "worker start (first)"),
        ),
        ("first to last worker started", span(marks, "worker start (first)", "worker start (last)")),
        ("last worker started to the `wait` event", span(marks, "worker start (last)", "wait event")),
        ("`wait` to `ready` (every worker registered)", span(marks, "wait event", "ready event")),
        ("`ready` to `up` returned", span(marks, "ready event", "up returned")),
    ]


def _engine_clauses(marks: list[dict[str, float]]) -> list[tuple[str, float | None]]:
    """Where the compose ``up`` went, from the engine's container events alone."""
    return [
        ("scheduler container created at", mark_median(marks, "scheduler create")),
        (
            "scheduler started to the first worker started",
            span(marks, "scheduler start", "worker start (first)"),
        ),
        ("last worker started to `up` returned", span(marks, "worker start (last)", "up returned")),
    ]


def startup(backend: str, results: Results) -> str:
    """P1 / P2: where the compose ``up`` time goes, and (Dask) what each worker container costs."""
    marks = results.profiles.get(backend, [])
    total = mark_median(marks, "up returned")
    if total is None:
        return how_nodes_start(backend)
    if has_events(marks):
        parts = [f"Median compose `up` {total:.2f} s: " + _clauses(_event_clauses(marks)) + "."]
    else:
        parts = [
            f"Median compose `up` {total:.2f} s (phases not available: the runtime sent no progress "
            "events); from the engine's events: " + _clauses(_engine_clauses(marks)) + "."
        ]
    parts.append(how_nodes_start(backend))
    if backend == "dask":
        parts.append(worker_costs(results))
    return " ".join(p for p in parts if p)


def worker_costs(results: Results) -> str:
    """What one Dask worker container costs in CPU, from the one-off measurements."""
    ones, nums = results.extras.get("one-offs", {}), results.extras.get("one-off numbers", {})
    cores = int(results.machine.get("nproc") or 1)
    parts = []
    if ones:
        parts.append("One-off costs: " + "; ".join(f"{k}: {v}" for k, v in ones.items()) + ".")
    worker = nums.get("container import worker")
    if worker is not None:
        node = nums.get("container import node")
        env = (compose_facts("dask") or {}).get("worker environment") or {}
        forks = env.get("DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD") == "fork"
        per = (node or 0.0) + (1 if forks else 2) * worker
        entry = f" ({node:.2f} s of imports)" if node is not None else " (not measured in this run)"
        how = (
            "forks the worker process, which inherits those imports (`multiprocessing-method: fork`)"
            if forks
            else "spawns the worker process, which imports it again"
        )
        parts.append(
            f"Each worker container runs the node entry point{entry}, which execs the nanny; the nanny "
            f"imports distributed ({worker:.2f} s) and {how}: ~{per:.1f} CPU-s per worker, "
            f"~{WORKERS * per:.1f} CPU-s for {WORKERS} workers on {cores} cores, i.e. >= "
            f"{WORKERS * per / cores:.1f} s after the workers start, plus the scheduler's own start."
        )
    host = nums.get("host import worker")
    if host is not None:
        parts.append(
            f"LocalCluster keeps its nannies in the client process and spawns {WORKERS} worker processes "
            f"that import distributed from the host's disk ({host:.2f} s each, ~{WORKERS * host / cores:.1f} s "
            f"on {cores} cores), with no health gate."
        )
    if worker is not None and host:
        fuse = "fuse-overlayfs" in results.machine.get("docker", "")
        parts.append(
            (
                "The engine's storage driver is fuse-overlayfs (every file a container reads goes through FUSE): "
                if fuse
                else ""
            )
            + f"the same import takes {worker / host:.1f}x as long in a container as on the host."
        )
    return " ".join(parts)


def analysis(code: str, results: Results, benches: dict[str, BenchDef]) -> str:
    """A data-driven "why" for a benchmark (always for a missed goal)."""
    if code == "P1":
        return " ".join(p for p in (startup("dask", results), notes.floor(results)) if p)
    if code == "P2":
        return startup("spark", results)
    texts: dict[str, Callable[[Results], str]] = {
        "P1b": dask_docker,
        "P3": _p3,
        "P4": _p4,
        "P5": _p5,
        "P6": notes.image_sizes,
        "P7c": notes.rebuild,
        "P8": notes.fixture,
        "P8w": notes.dask_runs,
        "P8s": notes.spark_runs,
        "P9": notes.many_workers,
    }
    return texts[code](results) if code in texts else ""


def _p3(results: Results) -> str:
    f = compose_facts("dask")
    grace = f" with a {f['stop']} s grace period" if f.get("stop") else ""
    return (
        "Compose `down` does not run the Compose tool: it finds the cluster's containers by label, "
        "sends SIGTERM to every worker at once, waits briefly until the scheduler lists no worker, then "
        f"stops every container in parallel{grace} and removes them, then the network. tini hands "
        "SIGTERM to the node program (the node entry point exec'd it)."
    )


def _p4(results: Results) -> str:
    s = results.series
    cores = results.machine.get("nproc", "?")

    def med(key: str) -> float | None:
        return s[key].median if key in s else None

    counts = sorted(x.n for k, x in s.items() if k.startswith("P4/N=") and x.n and x.median is not None)
    if len(counts) < 2:
        return ""
    steps = ", ".join(f"N={c}: {med(f'P4/N={c}'):.2f} s" for c in counts)
    first, last = counts[0], counts[-1]
    per = (med(f"P4/N={last}") - med(f"P4/N={first}")) / (last - first)  # type: ignore[operator]
    text = f"{steps}; about {per:.2f} s per extra worker."
    growth = ratio(s, f"P4/N={last}", f"P4/N={first}")
    lc_growth = ratio(s, f"P4/localcluster/N={last}", f"P4/localcluster/N={first}")
    if growth is not None and lc_growth is not None:
        text += (
            f" From N={first} to N={last} compose's ready time grows {growth:.2f}x, LocalCluster's "
            f"{lc_growth:.2f}x ({med(f'P4/localcluster/N={first}'):.2f} s to "
            f"{med(f'P4/localcluster/N={last}'):.2f} s, measured right after compose at the same N): "
            f"{growth / lc_growth:.2f}x LocalCluster's growth. Both start N worker processes that "
            f"import distributed on {cores} cores; what compose adds per worker is the container."
        )
    phases = [
        f"N={c}: "
        + _clauses(
            [
                ("start", span(p, "start event", "wait event")),
                ("wait", span(p, "wait event", "ready event")),
            ]
        )
        for c in (first, last)
        if has_events(p := results.phases.get(f"P4/N={c}", []))
    ]
    if phases:
        text += " Phases (medians): " + "; ".join(phases) + "."
    f = compose_facts("dask")
    gate = " once the scheduler is healthy" if f.get("gate") == "service_healthy" else ""
    return text + (
        f" The Compose tool starts all worker containers{gate}; the engine creates one container and one "
        "veth pair per worker; each worker then runs the node entry point, the nanny and the worker "
        f"process, each importing Python modules (CPU-bound), and with {cores} cores these start-ups "
        f"queue for the CPU, next to each worker's healthcheck (a Python start-up every "
        f"{f.get('worker interval', '?')})."
    )


def _p5(results: Results) -> str:
    cores = results.machine.get("nproc", "?")
    f = compose_facts("dask")
    return (
        "Tasks go client -> scheduler -> worker and results back; on compose the client reaches the "
        "scheduler through the port the engine publishes on the host, and the workers sit on the "
        f"cluster's bridge network; the healthchecks (a Python start-up of `{f.get('probe', '?')}`, every "
        f"{f.get('interval', '?')} on the scheduler and {f.get('worker interval', '?')} on each worker) "
        f"compete with the workers for the {cores} cores."
    )


def dask_docker(results: Results) -> str:
    """P1b: what the dask-docker layout does, and how long its client had to retry."""
    runs = results.extras.get("dask-docker runs", [])
    parts = [
        "The dask-docker layout (`benchmarks/dask_docker/docker-compose.yml`, on the same node image): "
        f"`<compose> up -d --scale worker={WORKERS}` creates and starts the scheduler and every worker "
        "container at once (no healthcheck, no start-up gate, no restart policy, no resource limits), "
        "each running `dask scheduler` / `dask worker tcp://scheduler:8786` (a worker tries the "
        "scheduler again until it answers; its defaults: threads = the container's CPUs, the machine's "
        "memory, the `spawn` start method). The user's side is a plain `distributed.Client` tried "
        "again every 0.1-0.5 s (each attempt up to 1 s, distributed retrying inside it) until it "
        f"connects, then `wait_for_workers({WORKERS})`; the timing runs from the Compose tool's start "
        "to that call's return."
    ]
    if runs:

        def median(field: str) -> float:
            return statistics.median(float(r[field]) for r in runs)

        failed = [int(r["failed connection attempts"]) for r in runs]
        parts.append(
            f"Medians of {len(runs)} run{'s' if len(runs) != 1 else ''}: the Compose tool returned after {median('compose up returned'):.2f} s, "
            f"the client connected at {median('client connected'):.2f} s; connection attempts that failed "
            f"before it connected: {', '.join(str(n) for n in failed)} (by run)."
        )
    f = compose_facts("dask")
    if f:
        gate = (
            "its workers start once the scheduler's healthcheck passed"
            if f.get("gate") == "service_healthy"
            else "no service waits on a healthcheck"
        )
        env = f.get("worker environment") or {}
        method = env.get("DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD")
        parts.append(
            f"clusterkit's compose file differs: the nodes run `{f['node']} ROLE` under tini, {gate}, "
            f"the workers run `{f['worker command']}`"
            + (f" with the `{method}` start method" if method else "")
            + (f", and both services have `restart: {f['restart']}`" if f.get("restart") else "")
            + "; `cluster.up` itself polls the scheduler until every worker is registered (P1's phases)."
        )
    return " ".join(parts)
