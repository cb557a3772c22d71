"""Swarm against compose: ``up`` to N Dask workers, and a killed worker replaced (self-healing).

    .venv/bin/python -m benchmarks.swarm [--repeat 3] [--workers 4] [--output benchmarks]

A warm-up round (discarded), ``--repeat`` interleaved rounds of ``up`` on each runtime, then
``--repeat`` kills of a worker on one swarm cluster. Makes a one-node swarm if the engine has
none (and leaves it after); updates the swarm section of ``--output``/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.phases import PhaseRecorder
from benchmarks.report import fmt_ratio, write_marked_section
from benchmarks.runner import UP_TIMEOUT, free_ports, quiet_logs

HERE = Path(__file__).resolve().parent
MARKERS = ("<!-- swarm start -->", "<!-- swarm end -->")
HEAL_DEADLINE, POLL = 180.0, 0.2
#: Phases of ``up`` from its progress events: (label, from mark, to mark); swarm may send ``push``.
PHASES = (
    ("prepare (image, push)", None, "start event"),
    ("start", "start event", "wait event"),
    ("wait (workers registered)", "wait event", "ready event"),
    ("ready -> returned", "ready event", "up returned"),
)


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def sh(*argv: str, check: bool = True) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` failed: {result.stderr.strip()}")
    return result.stdout.strip()


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def networks() -> set[str]:
    return set(sh("docker", "network", "ls", "--format", "{{.Name}}").split())


@contextmanager
def swarm_manager() -> Iterator[None]:
    """The engine as a swarm manager: used as it is if it is one, else a one-node swarm, left after."""
    state = sh("docker", "info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}")
    if state.startswith("active"):
        if not state.endswith("true"):
            raise RuntimeError("this engine is a swarm worker; the benchmark needs a manager or no swarm")
        say("using the swarm this engine manages")
        yield
        return
    if not state.startswith("inactive"):
        raise RuntimeError(f"the engine's swarm state is {state!r}; expected active (manager) or inactive")
    had_gwbridge = "docker_gwbridge" in networks()
    try:
        sh("docker", "swarm", "init", "--advertise-addr", "127.0.0.1")
        say("made a one-node swarm (docker swarm init)")
        yield
    finally:
        sh("docker", "swarm", "leave", "--force", check=False)
        deadline = time.monotonic() + 30
        while not had_gwbridge and "docker_gwbridge" in networks():
            if time.monotonic() > deadline:
                say("docker_gwbridge could not be removed within 30 s")
                break
            sh("docker", "network", "rm", "docker_gwbridge", check=False)  # busy until the swarm is gone
            time.sleep(0.5)
        say("left the swarm" + ("" if had_gwbridge else ", removed docker_gwbridge"))


class Bench:
    def __init__(self, args: argparse.Namespace, image: str) -> None:
        self.args, self.image, self.count = args, image, 0
        self.live: dict[str, str] = {}  # name -> runtime of every cluster not yet brought down
        self.up: dict[str, list[float]] = {"swarm": [], "compose": []}
        self.marks: dict[str, list[dict[str, float]]] = {"swarm": [], "compose": []}
        self.heal: list[float] = []
        self.polls: list[float] = []  # how long one cluster.status call took: the poll's resolution
        self.errors: list[str] = []

    def spec(self, label: str) -> Any:
        from clusterkit.spec import resolve_spec

        port, dashboard = free_ports(2)
        self.count += 1
        overrides = {"name": f"bench-{label}-{os.getpid()}-{self.count}", "workers": self.args.workers}
        overrides |= {"scheduler_port": port, "dashboard_port": dashboard, "image": self.image}
        return resolve_spec(overrides=overrides, environ={})

    def start(self, spec: Any, runtime: str) -> dict[str, float]:
        from clusterkit import cluster

        self.live[spec.name] = runtime
        recorder = PhaseRecorder()
        recorder.start()
        status = cluster.up(spec, runtime, timeout=UP_TIMEOUT, progress=recorder)
        marks = recorder.returned()
        if len(status.workers) != self.args.workers:
            raise RuntimeError(f"up returned with {len(status.workers)} of {self.args.workers} workers")
        return marks

    def down(self, name: str, runtime: str) -> None:
        from clusterkit import cluster
        from clusterkit.errors import ClusterNotFound

        try:
            cluster.down(name, runtime)
        except ClusterNotFound:
            pass
        except Exception as e:
            return self.fail(f"down of {name}", e)
        self.live.pop(name, None)

    def fail(self, what: str, e: BaseException | str) -> None:
        text = e if isinstance(e, str) else f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"
        self.errors.append(f"{what}: {text}")
        say(f"{what} failed: {text}")

    def up_round(self, runtime: str, warmup: bool) -> None:
        label = f"{runtime} N={self.args.workers}" + (" (warm-up)" if warmup else "")
        spec = self.spec(runtime[0] + str(self.args.workers))
        try:
            marks = self.start(spec, runtime)
            say(f"{label}: up {marks['up returned']:.2f} s")
            if not warmup:
                self.up[runtime].append(marks["up returned"])
                self.marks[runtime].append(marks)
        except Exception as e:
            self.fail(label, e)
        finally:
            self.down(spec.name, runtime)

    def heal_rounds(self) -> None:
        """Kill a worker's container, time until N workers are registered again without it."""
        import docker

        from clusterkit import cluster

        spec = self.spec("heal")
        client = docker.from_env()
        try:
            self.start(spec, "swarm")
            wanted = [f"clusterkit.cluster={spec.name}", "clusterkit.role=worker"]
            for i in range(self.args.repeat):
                victim = client.containers.list(filters={"label": wanted})[0]
                killed = victim.id[:12]
                t0 = time.monotonic()
                victim.kill()
                names: list[str] = []
                while time.monotonic() - t0 < HEAL_DEADLINE:
                    t1 = time.monotonic()
                    try:
                        names = [w.name for w in cluster.status(spec.name, "swarm").workers]
                    except Exception:
                        names = []
                    self.polls.append(time.monotonic() - t1)
                    if len(names) == self.args.workers and killed not in names:
                        self.heal.append(time.monotonic() - t0)
                        say(f"kill #{i + 1} ({killed}): replaced after {self.heal[-1]:.2f} s")
                        break
                    time.sleep(POLL)
                else:
                    self.fail(f"kill #{i + 1}", f"not replaced in {HEAL_DEADLINE:.0f} s (last saw {names})")
        except Exception as e:
            self.fail("self-healing", e)
        finally:
            client.close()
            self.down(spec.name, "swarm")


def spread(values: list[float]) -> tuple[float, float, float] | None:
    return (statistics.median(values), min(values), max(values)) if values else None


def phase_medians(marks: list[dict[str, float]]) -> dict[str, float]:
    found = {}
    for label, begin, end in PHASES:
        values = [m[end] - m.get(begin, 0.0) for m in marks if end in m and (begin is None or begin in m)]
        if values:
            found[label] = statistics.median(values)
    return found


def row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def analysis(b: Bench) -> str:
    up_s, up_c, heal = spread(b.up["swarm"]), spread(b.up["compose"]), spread(b.heal)
    text = []
    if up_s and up_c:
        word = "slower" if up_s[0] > up_c[0] else "faster"
        text.append(
            f"Swarm `up` to {b.args.workers} workers took {up_s[0]:.2f} s (median) against {up_c[0]:.2f} s "
            f"for compose: {abs(up_s[0] - up_c[0]):.2f} s {word} (ratio {up_s[0] / up_c[0]:.2f}x)."
        )
        ps, pc = phase_medians(b.marks["swarm"]), phase_medians(b.marks["compose"])
        common = [label for label, _, _ in PHASES if label in ps and label in pc]
        if common:
            top = max(common, key=lambda label: abs(ps[label] - pc[label]))
            text.append(
                f"The phases differ most in {top}: {ps[top]:.2f} s on swarm against "
                f"{pc[top]:.2f} s on compose ({ps[top] - pc[top]:+.2f} s)."
            )
    if heal:
        rel = f", {heal[0] / up_s[0]:.2f}x a whole swarm `up`" if up_s else ""
        text.append(
            f"After `docker kill` of a worker the swarm had {b.args.workers} workers registered again after "
            f"{heal[0]:.2f} s (median, {heal[1]:.2f}-{heal[2]:.2f} s over {len(b.heal)} kill{'s' * (len(b.heal) != 1)}{rel})."
        )
    return " ".join(text) or "Nothing was measured."


def body(b: Bench) -> list[str]:
    """The table, the phase split, the kill figures and the analysis, as markdown."""
    n, up_s, up_c = b.args.workers, spread(b.up["swarm"]), spread(b.up["compose"])
    ratio = fmt_ratio(up_s[0] / up_c[0]) if up_s and up_c else "n/a"
    lines = [row(["what", "median", "min", "max", "runs", "ratio swarm/compose"]), "|---" * 6 + "|"]
    for what, values, r in (
        (f"up to {n} workers, swarm", b.up["swarm"], ratio),
        (f"up to {n} workers, compose", b.up["compose"], "baseline"),
        (f"kill -> {n} workers again, swarm", b.heal, ""),
    ):
        found = spread(values)
        lines.append(
            row([what, *([f"{v:.2f} s" for v in found] if found else ["n/a"] * 3), str(len(values)), r])
        )
    lines += ["", "Phases of `up` (medians, from the progress events):", ""]
    lines += [row(["runtime", *(label for label, _, _ in PHASES)]), "|---" * (len(PHASES) + 1) + "|"]
    for runtime in ("swarm", "compose"):
        found = phase_medians(b.marks[runtime])
        lines.append(row([runtime, *(f"{found[lb]:.2f} s" if lb in found else "n/a" for lb, _, _ in PHASES)]))
    kills = ", ".join(f"{v:.2f} s" for v in b.heal) or "none"
    poll = f"{statistics.median(b.polls):.2f} s" if b.polls else "n/a"
    lines += ["", f"Kill -> replaced, each kill: {kills} (polled every {POLL} s; a `status` took {poll})."]
    if b.errors:
        lines += ["", "Failures:", *[f"- {e}" for e in b.errors]]
    return [*lines, "", f"Analysis: {analysis(b)}"]


def write_section(b: Bench, run: dict[str, Any], path: Path) -> None:
    m = run["machine"]
    head = f"""{MARKERS[0]}
## Swarm runtime: `up` against compose, and self-healing

- Command: `{run["command"]}`
- Date: {run["date"]}
- Machine: {m["nproc"]} cores, {m["memory"]} memory; {m["docker"]}; compose {m["compose"]}
- Image: `{b.image}`
- Load average (1, 5, 15 min): start {run["loads"][0]}; end {run["loads"][1]}
"""
    write_marked_section(path, MARKERS, "\n".join([head, *body(b), MARKERS[1]]))


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks.swarm", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds of up, and kills (default 3)")
    parser.add_argument("--workers", type=int, default=4, help="Dask workers per cluster (default 4)")
    parser.add_argument("--output", type=Path, default=HERE, help="folder of the RESULTS.md to update")
    args = parser.parse_args(raw)
    args.output.mkdir(parents=True, exist_ok=True)
    from benchmarks import machine
    from clusterkit.images import ensure_image

    python = os.path.relpath(sys.executable, HERE.parent)
    run: dict[str, Any] = {
        "command": f"cd {HERE.parent} && {python} -m benchmarks.swarm {shlex.join(raw)}".rstrip(),
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "loads": [load()],
    }
    import distributed  # noqa: F401 - imported before any timing

    quiet_logs()
    run["machine"] = machine.describe()
    image = ensure_image("dask", progress=lambda event: say(f"dask image: {event}"))
    say(f"image {image}; {args.workers} workers, {args.repeat} rounds")
    bench = Bench(args, image)
    try:
        with swarm_manager():
            try:
                for i in range(-1, args.repeat):  # round -1: the warm-up, discarded
                    for runtime in ("swarm", "compose") if i % 2 else ("compose", "swarm"):
                        bench.up_round(runtime, warmup=i < 0)
                bench.heal_rounds()
            finally:
                for name, runtime in list(bench.live.items()):
                    bench.down(name, runtime)
    except KeyboardInterrupt:
        say("interrupted; reporting what was measured")
    run["loads"].append(load())
    print("\n".join(body(bench)))
    write_section(bench, run, args.output / "RESULTS.md")
    say(f"wrote the swarm section of {args.output / 'RESULTS.md'}")
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
