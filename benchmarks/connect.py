"""Spark Connect against the classic session, and P2 (issue 18), on this machine.

    python -m benchmarks.connect [--rounds N]

Each round (interleaved; the order alternates per round):

1. One compose Spark cluster, 2 workers (``Cluster("spark", workers=2, runtime="compose")``),
   its ``up`` timed from the constructor's call to its return (P2's subject). Inside it, two
   fresh Python processes, one after the other: ``Cluster.from_name(name).session()`` (the
   classic driver JVM in the client) and ``.session(connect=True)`` (Spark Connect: the driver
   in the cluster), each then running the same first and second job. A fresh process pays its
   own start-up, as a user's script does.
2. One local Spark cluster, 2 workers (``runtime="local"``: ``spark-class`` processes on this
   host), its start timed the same way (P2's baseline).

With ``--swarm``, then the same sessions on a one-node swarm cluster (``runtime="swarm"``:
secured, so the classic driver authenticates and Connect needs the token), in a swarm
made for the run and left after (or the one this engine manages).

Every sample is printed, with the count of "Retrying connection to master" lines in each
worker's log (a worker that misses its master backs off before it tries again).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

RETRY_LINE = "Retrying connection to master"
CHILD_TIMEOUT = 300
MODES = ("classic", "connect")


def job(session: Any) -> float:
    """The first / second job: a small group-by, collected."""
    t0 = time.perf_counter()
    rows = session.range(100_000).selectExpr("id % 7 as k").groupBy("k").count().collect()
    elapsed = time.perf_counter() - t0
    if len(rows) != 7 or sum(r["count"] for r in rows) != 100_000:
        raise RuntimeError(f"wrong job result: {rows}")
    return elapsed


def child(name: str, mode: str) -> None:
    """In a fresh process: attach to ``name``, make a session, run two jobs; JSON on stdout."""
    t0 = time.perf_counter()
    from clusterkit import Cluster

    t1 = time.perf_counter()
    cluster = Cluster.from_name(name)
    try:
        session = cluster.session(connect=(mode == "connect"))
        t2 = time.perf_counter()
        first = job(session)
        second = job(session)
    finally:
        cluster.close()  # stops the session; the cluster (not ours) stays
    print(
        json.dumps(
            {"import": t1 - t0, "session": t2 - t1, "first": first, "second": second},
        ),
        flush=True,
    )


def run_child(name: str, mode: str) -> dict[str, float]:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.connect", "--child", name, "--mode", mode],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {
            "error": f"no result within {CHILD_TIMEOUT} s (process killed)",
            "wall": time.perf_counter() - t0,
        }
    wall = time.perf_counter() - t0
    if proc.returncode != 0:  # a failed sample is a result too: kept, printed, left out of the medians
        errors = [
            line
            for line in proc.stderr.splitlines()
            if ("Exception" in line or "Error" in line) and not line.strip().startswith("at ")
        ]
        return {"error": (errors[-1] if errors else proc.stderr[-300:]).strip()[:300], "wall": wall}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["total"] = out["session"] + out["first"] + out["second"]
    out["wall"] = wall
    return out


def retries(cluster: Any) -> list[int]:
    """Per worker, how many times it retried the master (from its log), in worker-name order."""
    try:
        logs = cluster.get_logs()
    except Exception as e:  # a figure for the text, not worth failing the round
        print(f"  (logs not read: {e})", flush=True)
        return []
    return [text.count(RETRY_LINE) for key, text in sorted(logs.items()) if key != "Scheduler"]


def up_cluster(runtime: str, mine: list[str], do_sessions: bool, order: tuple[str, ...]) -> dict[str, Any]:
    """Start one 2-worker Spark cluster (timed), optionally time the sessions in it, remove it."""
    from clusterkit import Cluster

    events: dict[str, float] = {}

    def progress(event: Any) -> None:
        if not event.ended:
            events.setdefault(event.step, event.at)

    start = time.monotonic()
    with Cluster("spark", workers=2, runtime=runtime, progress=progress) as cluster:
        up = time.monotonic() - start
        mine.append(cluster.spec.name)
        sample: dict[str, Any] = {
            "up": up,
            "retries": retries(cluster),
            "name": cluster.spec.name,
            "wait_to_ready": events["ready"] - events["wait"] if {"wait", "ready"} <= events.keys() else None,
            "load1": os.getloadavg()[0],
        }
        for mode in order if do_sessions else ():
            sample[mode] = run_child(cluster.spec.name, mode)
    return sample


def median(values: list[float]) -> float:
    return statistics.median(values)


def fmt(x: float) -> str:
    return f"{x:.2f} s"


def session_tables(samples: list[dict[str, Any]], where: str, echo: bool = True) -> list[str]:
    """The Markdown lines of the session tables (printed unless ``echo`` is false)."""
    lines: list[str] = []
    add = lines.append
    add(f"Spark Connect vs the classic session (each in a fresh Python process; {where}):")
    add("")
    add(
        "| round | first | session | import clusterkit | `from_name(...).session(...)` | first job | "
        "second job | session + 2 jobs | process wall |"
    )
    add("|---|---|---|---|---|---|---|---|---|")
    for i, s in enumerate(samples, 1):
        for mode in MODES:
            c = s[mode]
            if "error" in c:
                add(
                    f"| {i} | {s['order'][0]} | {mode} | failed after {fmt(c['wall'])}: {c['error'][:160]} ||||||"
                )
                continue
            add(
                f"| {i} | {s['order'][0]} | {mode} | {fmt(c['import'])} | {fmt(c['session'])} | "
                f"{fmt(c['first'])} | {fmt(c['second'])} | {fmt(c['total'])} | {fmt(c['wall'])} |"
            )
    add("")
    add("| median | classic | Connect | Connect / classic |")
    add("|---|---|---|---|")
    for key, label in (
        ("session", "session"),
        ("first", "first job"),
        ("second", "second job"),
        ("total", "session + 2 jobs"),
        ("wall", "process wall (interpreter start to exit)"),
    ):
        a_ = [s["classic"][key] for s in samples if "error" not in s["classic"]]
        b_ = [s["connect"][key] for s in samples if "error" not in s["connect"]]
        if not a_ or not b_:
            add(f"| {label} | n={len(a_)} | n={len(b_)} | |")
            continue
        a, b = median(a_), median(b_)
        add(f"| {label} | {fmt(a)} (n={len(a_)}) | {fmt(b)} (n={len(b_)}) | {b / a:.2f}x |")
    if echo:
        print("\n".join(lines), flush=True)
    return lines


def print_tables(samples: list[dict[str, Any]]) -> list[str]:
    """The Markdown lines of the tables (also printed)."""
    lines = session_tables(samples, "compose, 2 workers", echo=False)
    add = lines.append
    add("")
    add('P2: `Cluster("spark", workers=2, runtime=...)` until it returns (every worker ALIVE):')
    add("")
    add(
        "| round | first | compose up | compose `wait` to `ready` | compose retries per worker | "
        "local up | local retries per worker | compose / local | load (1 min) after compose, local |"
    )
    add("|---|---|---|---|---|---|---|---|---|")
    for i, s in enumerate(samples, 1):
        c, lo = s["compose"], s["local"]
        wr = fmt(c["wait_to_ready"]) if c["wait_to_ready"] is not None else "n/a"
        add(
            f"| {i} | {s['p2_first']} | {fmt(c['up'])} | {wr} | {c['retries']} | {fmt(lo['up'])} | "
            f"{lo['retries']} | {c['up'] / lo['up']:.2f}x | {c['load1']:.1f}, {lo['load1']:.1f} |"
        )
    cu = median([s["compose"]["up"] for s in samples])
    lu = median([s["local"]["up"] for s in samples])
    add(
        f"| median | | {fmt(cu)} (min {fmt(min(s['compose']['up'] for s in samples))}, max "
        f"{fmt(max(s['compose']['up'] for s in samples))}) | | | {fmt(lu)} (min "
        f"{fmt(min(s['local']['up'] for s in samples))}, max {fmt(max(s['local']['up'] for s in samples))})"
        f" | | {cu / lu:.2f}x | |"
    )
    print("\n".join(lines), flush=True)
    return lines


def leftovers(mine: list[str]) -> list[str]:
    out = subprocess.run(
        [
            "docker",
            "ps",
            "-a",
            "--filter",
            "label=clusterkit.project=clusterkit",
            "--format",
            '{{.Label "clusterkit.cluster"}} {{.Names}}',
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    return [line for line in out if line.split(" ")[0] in mine]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.connect", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write every sample to this file")
    parser.add_argument("--swarm", action="store_true", help="then the sessions on a one-node swarm")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=MODES, default="classic", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.mode)
        return

    mine: list[str] = []
    samples: list[dict[str, Any]] = []
    print(f"nproc {os.cpu_count()}, load average {os.getloadavg()}", flush=True)
    try:
        for r in range(args.rounds):
            order = MODES if r % 2 == 0 else MODES[::-1]
            p2 = ("compose", "local") if r % 2 == 0 else ("local", "compose")
            s: dict[str, Any] = {"order": order, "p2_first": p2[0]}
            for runtime in p2:
                result = up_cluster(runtime, mine, do_sessions=(runtime == "compose"), order=order)
                s[runtime] = result
                print(f"round {r + 1} {runtime}: {json.dumps(result)}", flush=True)
            for mode in MODES:
                s[mode] = s["compose"].pop(mode)
            samples.append(s)
    finally:
        left = leftovers(mine)
        print(f"clusters started: {mine}; containers of them left: {left or 'none'}", flush=True)
    swarm_samples: list[dict[str, Any]] = []
    if args.swarm:
        from benchmarks.swarm import swarm_manager

        with swarm_manager():
            try:
                for r in range(args.rounds):
                    order = MODES if r % 2 == 0 else MODES[::-1]
                    result = up_cluster("swarm", mine, do_sessions=True, order=order)
                    print(f"round {r + 1} swarm: {json.dumps(result)}", flush=True)
                    swarm_samples.append({"order": order, **{m: result.pop(m) for m in MODES}})
            finally:
                left = leftovers(mine)
                print(f"swarm clusters started: {mine}; containers left: {left or 'none'}", flush=True)
    print(f"load average at end {os.getloadavg()}", flush=True)
    print_tables(samples)
    if swarm_samples:
        session_tables(swarm_samples, "a one-node swarm, 2 workers, `security: tls`")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"compose": samples, "swarm": swarm_samples}, f, indent=1)


if __name__ == "__main__":
    main()
