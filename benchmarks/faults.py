"""Recovery with no user action: a killed worker replaced, a killed scheduler back (both backends).

    .venv/bin/python -m benchmarks.faults [--repeat 3] [--workers 2] [--output benchmarks]

For each backend, one compose cluster held by a Python ``Cluster`` (its
supervisor thread is the only thing that repairs). Each round ``docker
kill`` s a worker and times until the scheduler counts every wanted worker
again; then kills the scheduler and times until it answers with every
worker registered. Polls every 0.1 s over the scheduler's own protocol.
Updates the faults section of ``--output``/RESULTS.md (between its markers;
the rest of the file is left alone). The tests in tests/faults assert the
behaviour; the durations are here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MARKERS = ("<!-- faults start -->", "<!-- faults end -->")
DEADLINE, POLL = 180.0, 0.1


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def count(backend: Any, spec: Any) -> int | None:
    from clusterkit.waiting import NotReady

    try:
        return backend.count_workers(spec.scheduler_host, spec.scheduler_port, spec.dashboard_port)
    except NotReady:
        return None


def until(predicate: Any, what: str) -> float:
    """Seconds until ``predicate()`` holds (polled every POLL s), or raise after DEADLINE."""
    started = time.monotonic()
    while time.monotonic() - started < DEADLINE:
        if predicate():
            return time.monotonic()
        time.sleep(POLL)  # a measurement's poll interval, not a readiness wait standing in for one
    raise TimeoutError(f"{what} did not happen within {DEADLINE:.0f}s")


def rounds(backend_name: str, workers: int, repeat: int) -> dict[str, list[float]]:
    import docker

    from clusterkit import Cluster
    from clusterkit.backends import get_backend
    from tests.conftest import free_port

    client = docker.from_env()
    backend = get_backend(backend_name)
    name = f"ck-bench-faults-{backend_name}"
    found: dict[str, list[float]] = {"worker": [], "scheduler": []}
    with Cluster(
        backend_name,
        workers=workers,
        runtime="compose",
        name=name,
        scheduler_port=free_port(),
        dashboard_port=free_port(),
        timeout=300,
    ) as cluster:
        spec = cluster.client_spec
        for role in ("worker", "scheduler"):
            for i in range(repeat):
                until(lambda: cluster.report().health == "healthy", "healthy before a kill")
                selector = {"label": [f"clusterkit.cluster={name}", f"clusterkit.role={role}"]}
                victim = client.containers.list(filters=selector)[0]
                killed = time.monotonic()
                victim.kill()
                until(lambda: count(backend, spec) != workers, "the kill to be seen")
                back = until(lambda: count(backend, spec) == workers, "every worker registered again")
                found[role].append(back - killed)
                say(
                    f"{backend_name}: killed {role} {i + 1}/{repeat}: all {workers} registered after {back - killed:.2f} s"
                )
    return found


def body(results: dict[str, dict[str, list[float]]], workers: int) -> list[str]:
    lines = [
        "",
        f"Each figure: from `docker kill` to the scheduler counting all {workers} workers again, "
        "with no user action (the supervisor of a Python `Cluster`; `clusterkit up` leaves the same "
        "one running detached). Median [min-max].",
        "",
        "| backend | killed | goal | median | min | max | runs |",
        "|---|---|---|---|---|---|---|",
    ]
    for backend, found in results.items():
        for role, goal in (
            ("worker", "replacement registered <= 15 s"),
            ("scheduler", "back, all registered <= 30 s"),
        ):
            values = found.get(role) or []
            if not values:
                continue
            lines.append(
                f"| {backend} | {role} | {goal} | {statistics.median(values):.1f} s | {min(values):.1f} s "
                f"| {max(values):.1f} s | {len(values)} |"
            )
    return lines


def write_section(text: str, path: Path) -> None:
    from benchmarks.report import write_marked_section

    write_marked_section(path, MARKERS, text)


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks.faults", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="kills per role and backend (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="workers per cluster (default 2)")
    parser.add_argument("--backends", default="dask,spark")
    parser.add_argument("--output", type=Path, default=HERE, help="folder of the RESULTS.md to update")
    args = parser.parse_args(raw)
    from benchmarks import machine
    from benchmarks.runner import quiet_logs
    from clusterkit.images import ensure_image

    quiet_logs()
    started = load()
    python = os.path.relpath(sys.executable, HERE.parent)
    results = {}
    for backend in args.backends.split(","):
        ensure_image(backend)
        results[backend] = rounds(backend, args.workers, args.repeat)
    m = machine.describe()
    head = [
        MARKERS[0],
        "## Faults: recovery with no user action",
        "",
        f"- Command: `cd {HERE.parent} && {python} -m benchmarks.faults {shlex.join(raw)}`".rstrip(),
        f"- Date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- Machine: {m['nproc']} cores, {m['memory']} memory; {m['docker']}",
        f"- Load average (1, 5, 15 min): start {started}; end {load()}",
    ]
    text = "\n".join([*head, *body(results, args.workers), MARKERS[1]])
    print(text)
    write_section(text, args.output / "RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
