"""Start-up, tear-down and task throughput of clusterkit clusters against their baselines.

    .venv/bin/python -m benchmarks.bench_cluster [--repeat N] [--quick] [--only P1,P3]

All in one run on this machine, each figure the median of several runs with its
spread (min-max):

- P1: ``cluster.up`` to 4 Dask workers registered: compose runtime vs
  ``distributed.LocalCluster(n_workers=4, threads_per_worker=1, processes=True)``
  (until ``client.wait_for_workers(4)`` returns), and the clusterkit local runtime.
  Goal: compose <= 1.5x LocalCluster.
- P2: ``cluster.up`` to 2 ALIVE Spark workers: compose vs the same master and
  workers as bare ``spark-class`` processes (local runtime). Goal: <= 1.2x.
- P3: ``cluster.down`` of 4 Dask workers (compose). Goal: <= 2 s. Local runtime
  (and the Spark clusters of P2) for reference.
- P4: ready time for N = 1, 2, 4, 8, 16 Dask workers (compose, 1 core, 512m).
  Goal: N=16 <= 2x N=1.
- P5: 10,000 tiny tasks (``client.map`` then ``gather``) on the compose cluster
  (4 workers x 1 thread) vs LocalCluster(4 x 1). Goal: throughput >= 0.9x.

Writes ``RESULTS.md``, ``results.png`` and ``results.json`` (raw values and the
compose start-up profile) to ``--output`` (default: this folder). Every cluster
gets a unique name and free loopback ports, and is brought down in ``finally``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import logging
import operator
import os
import platform
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCHES = ("P1", "P2", "P3", "P4", "P5")
WORKERS = 4
SPARK_WORKERS = 2
TASKS = 10_000
UP_TIMEOUT = 300
P4_COUNTS = (1, 2, 4, 8, 16)
P4_COUNTS_QUICK = (1, 4)
#: Pickled by reference to ``operator``: importable in the node images, unlike this module.
INC = functools.partial(operator.add, 1)

log = logging.getLogger("bench")


# --- data ---------------------------------------------------------------------------------------


@dataclass
class Series:
    """The runs of one measurement."""

    key: str
    bench: str
    what: str
    runtime: str
    unit: str = "s"  # "s" or "tasks/s"
    values: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    n: int | None = None  # P4: the worker count

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    @property
    def low(self) -> float | None:
        return min(self.values) if self.values else None

    @property
    def high(self) -> float | None:
        return max(self.values) if self.values else None


@dataclass
class Goal:
    text: str
    subject: str  # series key
    limit: float
    baseline: str | None = None  # series key; None: an absolute limit in the subject's unit
    higher_is_better: bool = False


@dataclass
class BenchDef:
    code: str
    title: str
    baseline: str  # series key the "ratio" column divides by
    goal: Goal
    keys: list[str] = field(default_factory=list)


def evaluate(goal: Goal, series: dict[str, Series]) -> tuple[float | None, bool | None]:
    """(the compared number, met?) from medians; ``None`` where a side has no runs."""
    subject = series.get(goal.subject)
    if subject is None or subject.median is None:
        return None, None
    if goal.baseline is None:
        value = subject.median
    else:
        base = series.get(goal.baseline)
        if base is None or not base.median:
            return None, None
        value = subject.median / base.median
    met = value >= goal.limit if goal.higher_is_better else value <= goal.limit
    return value, met


# --- helpers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _docker_time(stamp: str) -> float | None:
    """Epoch seconds from Docker's RFC 3339 nanosecond stamps."""
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", stamp or "")
    if not match:
        return None
    frac = (match.group(2) or ".0")[:7]
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    return dt.datetime.fromisoformat(match.group(1) + frac + zone).timestamp()


def _run(argv: list[str], timeout: float = 60) -> tuple[float, str]:
    """Wall time and combined output of a command."""
    t0 = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - t0
    return elapsed, (result.stdout + result.stderr).strip()


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "tasks/s":
        return f"{value:,.0f} tasks/s"
    return f"{value:.2f} s"


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def fmt_met(met: bool | None) -> str:
    return {True: "yes", False: "**NO**", None: "n/a"}[met]


# --- compose start-up profile ----------------------------------------------------------------------

#: (phase, perf_counter start, perf_counter end) of the hooked runtime steps of the current `up`.
_PHASES: list[tuple[str, float, float]] = []


def install_phase_hooks() -> None:
    """Time ``ComposeRuntime._compose`` and ``._wait`` (in this process only; clusterkit is untouched)."""
    from clusterkit.runtimes.compose import ComposeRuntime

    if getattr(ComposeRuntime, "_bench_hooked", False):
        return
    original_compose = ComposeRuntime._compose
    original_wait = ComposeRuntime._wait

    @functools.wraps(original_compose)
    def compose(self: Any, spec: Any, image: str, *args: str, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original_compose(self, spec, image, *args, **kwargs)
        finally:
            _PHASES.append((f"compose {args[0] if args else ''}".strip(), t0, time.perf_counter()))

    @functools.wraps(original_wait)
    def wait(self: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original_wait(self, *args, **kwargs)
        finally:
            _PHASES.append(("wait", t0, time.perf_counter()))

    ComposeRuntime._compose = compose  # type: ignore[method-assign]
    ComposeRuntime._wait = wait  # type: ignore[method-assign]
    ComposeRuntime._bench_hooked = True  # type: ignore[attr-defined]


def compose_profile(name: str, t0_wall: float, t0_perf: float, up_s: float) -> dict[str, float]:
    """Offsets (s after ``cluster.up`` was called) of the steps of one compose ``up``.

    From the hooked runtime steps and the engine's events for the cluster's containers
    (create, start, health_status), read back after the fact.
    """
    import docker

    marks: dict[str, float] = {"up returned": up_s}
    for phase, start, end in _PHASES:
        marks.setdefault(f"{phase} start", start - t0_perf)
        marks.setdefault(f"{phase} end", end - t0_perf)
    client = docker.from_env(timeout=30)
    try:
        events = client.events(
            since=int(t0_wall) - 1,
            until=int(time.time()) + 1,
            decode=True,
            filters={"type": "container", "label": [f"clusterkit.cluster={name}"]},
        )
        found: dict[str, list[float]] = {}
        for event in events:
            attrs = event.get("Actor", {}).get("Attributes", {})
            role = attrs.get("clusterkit.role", "?")
            action = str(event.get("Action", "")).replace("health_status: ", "")
            if action not in ("create", "start", "healthy"):
                continue
            when = event.get("timeNano", 0) / 1e9 - t0_wall
            found.setdefault(f"{role} {action}", []).append(when)
    finally:
        client.close()
    for key, times in found.items():
        if key.startswith("scheduler"):
            marks[key] = min(times)
        else:
            marks[f"{key} (first)"] = min(times)
            marks[f"{key} (last)"] = max(times)
    return marks


# --- the runner --------------------------------------------------------------------------------------


class Runner:
    def __init__(self, args: argparse.Namespace, console: Any) -> None:
        self.args = args
        self.console = console
        self.series: dict[str, Series] = {}
        self.profiles: dict[str, list[dict[str, float]]] = {"dask": [], "spark": []}
        self.warmups: list[str] = []
        self.started: list[tuple[str, str]] = []
        self.images: dict[str, dict[str, str]] = {}
        self.extras: dict[str, Any] = {}
        self._count = 0

    # -- bookkeeping ----------------------------------------------------------------------------

    def add(self, key: str, value: float | None = None, error: str | None = None, **meta: Any) -> None:
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = Series(key=key, **meta)
        if value is not None:
            series.values.append(value)
        if error is not None:
            series.errors.append(error)

    def say(self, text: str) -> None:
        self.console.log(text)

    def name(self, kind: str) -> str:
        self._count += 1
        return f"bench-{kind}-{os.getpid()}-{self._count}"

    def spec(self, backend: str, kind: str, workers: int, memory: str) -> Any:
        from clusterkit.spec import resolve_spec

        port, dashboard = free_ports(2)
        overrides: dict[str, Any] = {
            "backend": backend,
            "name": self.name(kind),
            "workers": workers,
            "cores": 1,
            "memory": memory,
            "scheduler_port": port,
            "dashboard_port": dashboard,
        }
        if backend in self.images:
            overrides["image"] = self.images[backend]["ref"]
        return resolve_spec(overrides=overrides, environ={})

    # -- images and machine ---------------------------------------------------------------------

    def resolve_images(self, backends: list[str]) -> None:
        """Pin each node image by ref so a source edit during the run cannot trigger a rebuild."""
        import docker

        from clusterkit import images

        client = docker.from_env(timeout=60)
        for backend in backends:
            given = self.args.images.get(backend)
            current = images.image_tag(backend)
            if given:
                ref = given
            else:
                self.say(f"checking the {backend} node image (builds only if missing or stale)")
                ref = images.ensure_image(backend, progress=self.say)
            image = client.images.get(ref)
            labels = image.labels or {}
            self.images[backend] = {
                "ref": ref,
                "id": image.id.split(":", 1)[-1][:12],
                "created": image.attrs.get("Created", "")[:19],
                "size": f"{image.attrs.get('Size', 0) / 2**20:.0f} MiB",
                "source-hash": labels.get("clusterkit.source-hash", "?"),
                "current tag": current,
            }
        client.close()

    def machine(self) -> dict[str, str]:
        import distributed
        import pyspark

        info: dict[str, str] = {}
        cpus = os.cpu_count() or 0
        info["nproc"] = str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus)
        try:
            kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
            info["memory"] = f"{kib / 2**20:.1f} GiB"
        except (OSError, AttributeError):
            info["memory"] = "?"
        info["kernel"] = platform.release()
        try:
            import docker

            client = docker.from_env(timeout=30)
            version = client.version()
            driver = client.info().get("Driver", "?")
            info["docker"] = (
                f"Engine {version.get('Version')} (API {version.get('ApiVersion')}), storage driver {driver}"
            )
            client.close()
        except Exception as e:
            info["docker"] = f"unavailable ({e})"
        try:
            from clusterkit.runtimes.compose import compose_command

            info["compose"] = _run([*compose_command(), "version", "--short"])[1].splitlines()[0]
        except Exception as e:
            info["compose"] = f"unavailable ({e})"
        try:
            java = _run(["java", "-version"])[1].splitlines()
            info["java"] = java[0] if java else "?"
        except Exception:
            info["java"] = "not found"
        info["python"] = platform.python_version()
        info["distributed"] = distributed.__version__
        info["pyspark"] = pyspark.__version__
        try:
            rev = _run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])[1]
            dirty = _run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "clusterkit"])[1]
            info["clusterkit"] = rev + (" + uncommitted changes in clusterkit/" if dirty else "")
        except Exception:
            info["clusterkit"] = "?"
        return info

    # -- single rounds ----------------------------------------------------------------------------

    def _down(self, name: str, runtime: str) -> float:
        from clusterkit import cluster

        t0 = time.perf_counter()
        cluster.down(name, runtime)
        return time.perf_counter() - t0

    def _safe_down(self, name: str, runtime: str) -> None:
        from clusterkit import cluster
        from clusterkit.errors import ClusterNotFound

        try:
            cluster.down(name, runtime)
        except ClusterNotFound:
            pass
        except Exception as e:
            self.say(f"[red]clean-up of {name} ({runtime}) failed: {e}")

    def cluster_round(
        self,
        backend: str,
        runtime: str,
        workers: int,
        memory: str,
        *,
        up_key: str | None,
        down_key: str | None,
        tasks_key: str | None = None,
        meta: dict[str, dict[str, Any]],
        warmup: bool = False,
        profile: bool = False,
    ) -> None:
        """One clusterkit cluster: time ``up``, optionally run the tasks, time ``down``."""
        from clusterkit import cluster

        kind = f"{backend[0]}{runtime[0]}{workers}"
        spec = self.spec(backend, kind, workers, memory)
        self.started.append((spec.name, runtime))
        label = f"{backend} {runtime} N={workers}" + (" (warm-up)" if warmup else "")
        _PHASES.clear()
        up_ok = False
        t0_wall = time.time()
        t0 = time.perf_counter()
        try:
            status = cluster.up(spec, runtime, timeout=UP_TIMEOUT)
            up_s = time.perf_counter() - t0
            up_ok = True
            alive = len(status.alive_workers)
            if alive != workers:
                raise RuntimeError(f"up returned with {alive} of {workers} workers alive")
            self.say(f"{label}: up {up_s:.2f} s")
            if warmup:
                self.warmups.append(f"{label}: up {up_s:.2f} s")
            elif up_key:
                self.add(up_key, up_s, **meta[up_key])
            if profile and runtime == "compose" and not warmup:
                try:
                    marks = compose_profile(spec.name, t0_wall, t0, up_s)
                    self.profiles[backend].append(marks)
                except Exception as e:
                    self.say(f"[yellow]profile of {spec.name} failed: {e}")
            if tasks_key and not warmup:
                from clusterkit import dask as ck_dask

                client = ck_dask.connect_to_scheduler(spec.scheduler_address, timeout=30)
                try:
                    rate = run_tasks(client, workers)
                finally:
                    client.close()
                self.say(f"{label}: {rate:,.0f} tasks/s")
                self.add(tasks_key, rate, **meta[tasks_key])
        except Exception as e:
            message = f"{type(e).__name__}: {e}".strip()
            self.say(f"[red]{label} failed: {message.splitlines()[0]}")
            key = up_key if not up_ok else (tasks_key or up_key)
            if key and not warmup:
                self.add(key, error=message, **meta[key])
        finally:
            if up_ok:
                try:
                    down_s = self._down(spec.name, runtime)
                    self.say(f"{label}: down {down_s:.2f} s")
                    if down_key and not warmup:
                        self.add(down_key, down_s, **meta[down_key])
                except Exception as e:
                    message = f"{type(e).__name__}: {e}"
                    self.say(f"[red]{label} down failed: {message.splitlines()[0]}")
                    if down_key and not warmup:
                        self.add(down_key, error=message, **meta[down_key])
                    self._safe_down(spec.name, runtime)
            else:
                self._safe_down(spec.name, runtime)

    def localcluster_round(
        self, up_key: str | None, tasks_key: str | None, meta: dict[str, dict[str, Any]], warmup: bool
    ) -> None:
        from distributed import Client, LocalCluster

        label = "LocalCluster N=4" + (" (warm-up)" if warmup else "")
        lc = client = None
        t0 = time.perf_counter()
        try:
            lc = LocalCluster(
                n_workers=WORKERS,
                threads_per_worker=1,
                processes=True,
                memory_limit="1GiB",  # as the compose workers
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
                silence_logs=logging.ERROR,
            )
            client = Client(lc)
            client.wait_for_workers(WORKERS)
            up_s = time.perf_counter() - t0
            self.say(f"{label}: up {up_s:.2f} s")
            if warmup:
                self.warmups.append(f"{label}: up {up_s:.2f} s")
                return
            if up_key:
                self.add(up_key, up_s, **meta[up_key])
            if tasks_key:
                rate = run_tasks(client, WORKERS)
                self.say(f"{label}: {rate:,.0f} tasks/s")
                self.add(tasks_key, rate, **meta[tasks_key])
        except Exception as e:
            message = f"{type(e).__name__}: {e}"
            self.say(f"[red]{label} failed: {message.splitlines()[0]}")
            key = up_key or tasks_key
            if key and not warmup:
                self.add(key, error=message, **meta[key])
        finally:
            if client is not None:
                client.close()
            if lc is not None:
                lc.close()
            quiet_logs()

    # -- one-off measurements for the analysis --------------------------------------------------------

    def one_offs(self) -> None:
        """Costs the compose start-up is made of, measured once each (median of 3)."""
        from clusterkit.runtimes.compose import compose_command

        results: dict[str, str] = {}
        numbers: dict[str, float] = {}

        def median_of(argv: list[str], runs: int = 3) -> float:
            return statistics.median(_run(argv, timeout=120)[0] for _ in range(runs))

        try:
            numbers["compose"] = median_of([*compose_command(), "version"])
            results["compose tool start-up (`<compose> version`)"] = f"{numbers['compose']:.2f} s"
        except Exception as e:
            results["compose tool start-up"] = f"failed: {e}"
        ref = self.images.get("dask", {}).get("ref")
        if ref:
            base = ["docker", "run", "--rm", "--network", "none", "--entrypoint", ""]
            try:
                empty = numbers["container"] = median_of([*base, ref, "python", "-c", "pass"])
                results["`docker run --rm` of the dask image, `python -c pass`"] = f"{empty:.2f} s"
                for key, module in (("cli", "clusterkit.cli"), ("worker", "distributed.cli.dask_worker")):
                    took = median_of([*base, ref, "python", "-c", f"import {module}"])
                    numbers[f"container import {key}"] = took - empty
                    results[f"same, `import {module}`"] = f"{took:.2f} s (the import: {took - empty:.2f} s)"
            except Exception as e:
                results["container start / imports"] = f"failed: {e}"
        try:
            empty = median_of([sys.executable, "-c", "pass"])
            took = median_of([sys.executable, "-c", "import distributed.cli.dask_worker"])
            numbers["host import worker"] = took - empty
            results["host: `python -c 'import distributed.cli.dask_worker'`"] = (
                f"{took:.2f} s (the import: {took - empty:.2f} s)"
            )
        except Exception as e:
            results["host import"] = f"failed: {e}"
        self.extras["one-off numbers"] = numbers
        self.extras["one-offs"] = results
        for key, value in results.items():
            self.say(f"{key}: {value}")


def run_tasks(client: Any, workers: int, count: int = TASKS) -> float:
    """Tasks per second for ``count`` tiny tasks mapped and gathered (after a small warm-up)."""
    client.wait_for_workers(workers)
    client.gather(client.map(INC, range(200), pure=False))
    t0 = time.perf_counter()
    futures = client.map(INC, range(count), pure=False)
    results = client.gather(futures)
    elapsed = time.perf_counter() - t0
    if sum(results) != count * (count + 1) // 2:
        raise RuntimeError("wrong task results")
    del futures
    return count / elapsed


# --- the benchmarks -----------------------------------------------------------------------------------


def definitions(counts: tuple[int, ...]) -> tuple[dict[str, BenchDef], dict[str, dict[str, Any]]]:
    """Benchmarks and the metadata of every series they contain."""
    n = WORKERS
    meta: dict[str, dict[str, Any]] = {
        "P1/compose": {"bench": "P1", "what": f"up to {n} Dask workers registered", "runtime": "compose"},
        "P1/localcluster": {
            "bench": "P1",
            "what": f"LocalCluster({n}x1) to wait_for_workers({n})",
            "runtime": "distributed.LocalCluster",
        },
        "P1/local": {"bench": "P1", "what": f"up to {n} Dask workers registered", "runtime": "local"},
        "P2/compose": {
            "bench": "P2",
            "what": f"up to {SPARK_WORKERS} Spark workers ALIVE",
            "runtime": "compose",
        },
        "P2/local": {
            "bench": "P2",
            "what": f"up to {SPARK_WORKERS} Spark workers ALIVE",
            "runtime": "local (spark-class)",
        },
        "P3/compose": {"bench": "P3", "what": f"down, {n} Dask workers", "runtime": "compose"},
        "P3/local": {"bench": "P3", "what": f"down, {n} Dask workers", "runtime": "local"},
        "P3/spark-compose": {
            "bench": "P3",
            "what": f"down, {SPARK_WORKERS} Spark workers (ref.)",
            "runtime": "compose",
        },
        "P3/spark-local": {
            "bench": "P3",
            "what": f"down, {SPARK_WORKERS} Spark workers (ref.)",
            "runtime": "local (spark-class)",
        },
        "P5/compose": {
            "bench": "P5",
            "what": f"{TASKS:,} tiny tasks, {n}x1 threads",
            "runtime": "compose",
            "unit": "tasks/s",
        },
        "P5/localcluster": {
            "bench": "P5",
            "what": f"{TASKS:,} tiny tasks, {n}x1 threads",
            "runtime": "distributed.LocalCluster",
            "unit": "tasks/s",
        },
    }
    for count in counts:
        meta[f"P4/N={count}"] = {
            "bench": "P4",
            "what": f"up to {count} Dask workers (1 core, 512m)",
            "runtime": "compose",
            "n": count,
        }
    biggest = max(counts)
    p4_goal = Goal(
        text="N=16 <= 2x N=1" + ("" if 16 in counts else f" (N=16 not run; N={biggest} shown)"),
        subject=f"P4/N={16 if 16 in counts else biggest}",
        baseline=f"P4/N={min(counts)}",
        limit=2.0,
    )
    benches = {
        "P1": BenchDef(
            "P1",
            f"P1: time to {n} Dask workers registered",
            "P1/localcluster",
            Goal("compose <= 1.5x LocalCluster", "P1/compose", 1.5, "P1/localcluster"),
            ["P1/compose", "P1/localcluster", "P1/local"],
        ),
        "P2": BenchDef(
            "P2",
            f"P2: time to {SPARK_WORKERS} ALIVE Spark workers",
            "P2/local",
            Goal("compose <= 1.2x local spark-class", "P2/compose", 1.2, "P2/local"),
            ["P2/compose", "P2/local"],
        ),
        "P3": BenchDef(
            "P3",
            "P3: cluster.down",
            "P3/local",
            Goal("compose down <= 2 s", "P3/compose", 2.0),
            ["P3/compose", "P3/local", "P3/spark-compose", "P3/spark-local"],
        ),
        "P4": BenchDef(
            "P4",
            "P4: compose ready time against the worker count",
            f"P4/N={min(counts)}",
            p4_goal,
            [f"P4/N={c}" for c in counts],
        ),
        "P5": BenchDef(
            "P5",
            f"P5: throughput of {TASKS:,} tiny tasks",
            "P5/localcluster",
            Goal("compose >= 0.9x LocalCluster", "P5/compose", 0.9, "P5/localcluster", True),
            ["P5/compose", "P5/localcluster"],
        ),
    }
    return benches, meta


def run_all(runner: Runner, only: list[str], repeat: int, p4_repeat: int, counts: tuple[int, ...]) -> None:
    args = runner.args
    _, meta = definitions(counts)
    wants = set(only)
    dask_round = wants & {"P1", "P3", "P5"}
    backends = (["dask"] if wants & {"P1", "P3", "P4", "P5"} else []) + (["spark"] if "P2" in wants else [])
    runner.resolve_images(backends)
    install_phase_hooks()
    if "P1" in wants and not args.no_profile:
        runner.one_offs()

    def dask_rounds(warmup: bool) -> None:
        if dask_round:
            runner.cluster_round(
                "dask",
                "compose",
                WORKERS,
                "1g",
                up_key="P1/compose" if "P1" in wants else None,
                down_key="P3/compose" if "P3" in wants else None,
                tasks_key="P5/compose" if "P5" in wants else None,
                meta=meta,
                warmup=warmup,
                profile="P1" in wants,
            )
        if wants & {"P1", "P5"}:
            runner.localcluster_round(
                "P1/localcluster" if "P1" in wants else None,
                "P5/localcluster" if "P5" in wants else None,
                meta,
                warmup,
            )
        if wants & {"P1", "P3"}:
            runner.cluster_round(
                "dask",
                "local",
                WORKERS,
                "1g",
                up_key="P1/local" if "P1" in wants else None,
                down_key="P3/local" if "P3" in wants else None,
                meta=meta,
                warmup=warmup,
            )
        if "P2" in wants:
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

    if args.warmup and (dask_round or "P2" in wants):
        runner.say("[bold]warm-up round (discarded)")
        dask_rounds(True)
    for index in range(repeat):
        if dask_round or "P2" in wants:
            runner.say(f"[bold]round {index + 1} of {repeat}")
            dask_rounds(False)
    if "P4" in wants:
        # Interleaved (1, 2, 4, ..., 1, 2, 4, ...) so drift in the machine's load hits every N alike.
        for index in range(p4_repeat):
            runner.say(f"[bold]P4 round {index + 1} of {p4_repeat}")
            for count in counts:
                runner.cluster_round(
                    "dask",
                    "compose",
                    count,
                    "512m",
                    up_key=f"P4/N={count}",
                    down_key=None,
                    meta=meta,
                )


# --- reporting ------------------------------------------------------------------------------------------

PROFILE_ROWS = (
    ("compose up start", "compose tool started (`up -d`)"),
    ("scheduler create", "scheduler container created"),
    ("scheduler start", "scheduler container started"),
    ("scheduler healthy", "scheduler healthy (1 s probe interval)"),
    ("worker create (first)", "first worker container created"),
    ("worker start (first)", "first worker container started"),
    ("worker start (last)", "last worker container started"),
    ("compose up end", "compose tool returned"),
    ("wait end", "all workers registered"),
    ("up returned", "cluster.up returned"),
)


def profile_medians(profiles: list[dict[str, float]]) -> list[tuple[str, float, float, float]]:
    rows = []
    for key, label in PROFILE_ROWS:
        values = [p[key] for p in profiles if key in p]
        if values:
            rows.append((label, statistics.median(values), min(values), max(values)))
    return rows


def analysis(code: str, runner: Runner, benches: dict[str, BenchDef]) -> str:
    """A data-driven "why" for a benchmark (always for a missed goal)."""
    s = runner.series

    def med(key: str) -> float | None:
        return s[key].median if key in s else None

    def mark(backend: str, key: str) -> float | None:
        values = [p[key] for p in runner.profiles[backend] if key in p]
        return statistics.median(values) if values else None

    def span(backend: str, a: str, b: str) -> str:
        x, y = mark(backend, a), mark(backend, b)
        return "?" if x is None or y is None else f"{y - x:.2f} s"

    if code in ("P1", "P2"):
        backend = "dask" if code == "P1" else "spark"
        total = mark(backend, "up returned")
        if total is None:
            return ""
        ones = runner.extras.get("one-offs", {})
        parts = [
            f"Median compose `up` {total:.2f} s: "
            f"{mark(backend, 'compose up start') or 0:.2f} s before the compose tool runs (container list, "
            f"image check, port checks); compose tool start-up to the scheduler container created "
            f"{span(backend, 'compose up start', 'scheduler create')}; created to started "
            f"{span(backend, 'scheduler create', 'scheduler start')}; scheduler started to healthy "
            f"{span(backend, 'scheduler start', 'scheduler healthy')} (probe interval 1 s, first probe 1 s "
            f"after start); healthy to the first worker started "
            f"{span(backend, 'scheduler healthy', 'worker start (first)')} (compose polls the health "
            f"state); first to last worker started {span(backend, 'worker start (first)', 'worker start (last)')}; "
            f"compose returned to all workers registered {span(backend, 'compose up end', 'wait end')}; "
            f"final status read {span(backend, 'wait end', 'up returned')}."
        ]
        if ones and backend == "dask":
            parts.append("One-off costs: " + "; ".join(f"{k}: {v}" for k, v in ones.items()) + ".")
        nums = runner.extras.get("one-off numbers", {})
        if backend == "dask" and {"container import cli", "container import worker"} <= set(nums):
            per = nums["container import cli"] + 2 * nums["container import worker"]
            cores = int(runner.extras.get("machine", {}).get("nproc") or 2)
            parts.append(
                f"Each worker container imports the clusterkit CLI ({nums['container import cli']:.2f} s), "
                f"then execs the nanny, which imports distributed ({nums['container import worker']:.2f} s) and "
                f"spawns the worker process, which imports it again: ~{per:.1f} CPU-s per worker, "
                f"~{WORKERS * per:.1f} CPU-s for {WORKERS} workers on {cores} cores, i.e. >= "
                f"{WORKERS * per / cores:.1f} s after the workers start."
            )
            if "host import worker" in nums:
                host = nums["host import worker"]
                parts.append(
                    f"LocalCluster keeps its nannies in the client process and spawns {WORKERS} worker "
                    f"processes that import distributed from the host's disk ({host:.2f} s each, "
                    f"~{WORKERS * host / cores:.1f} s on {cores} cores), with no scheduler health gate."
                )
        driver = runner.extras.get("machine", {}).get("docker", "")
        if backend == "dask" and "fuse-overlayfs" in driver:
            parts.append(
                "The engine's storage driver is fuse-overlayfs: every file a container reads goes "
                "through FUSE, which is why the same imports take about twice as long in a container "
                "as on the host."
            )
        return " ".join(parts)
    if code == "P3":
        return (
            "Down stops workers first (in parallel, `docker stop -t 5` each), then the scheduler, then "
            "removes the network; each stop is a SIGTERM through tini to the node program."
        )
    if code == "P4":
        counts = sorted(x.n for x in s.values() if x.bench == "P4" and x.n and x.median is not None)
        if len(counts) < 2:
            return ""
        steps = ", ".join(f"N={c}: {med(f'P4/N={c}'):.2f} s" for c in counts)
        first, last = counts[0], counts[-1]
        per = (med(f"P4/N={last}") - med(f"P4/N={first}")) / (last - first)  # type: ignore[operator]
        return (
            f"{steps}; about {per:.2f} s per extra worker. Each worker container starts a Python "
            "interpreter that imports distributed (CPU-bound), and the machine has 2 cores, so the "
            "worker start-ups queue for the CPU; Docker also creates one veth pair and container "
            "per worker."
        )
    if code == "P5":
        return (
            "Tasks go client -> scheduler -> worker and results back; the compose path adds Docker's "
            "bridge network and userland proxy on the published scheduler port, and the health probes "
            "(`docker exec` of a Python process, every 1 s on the scheduler, 5 s on each worker) compete "
            "for the 2 cores."
        )
    return ""


KEPT_MARKER = "<!-- kept by bench_cluster: measured by other commands -->"


def report(
    runner: Runner,
    benches: dict[str, BenchDef],
    only: list[str],
    command: str,
    started: dt.datetime,
    elapsed: float,
    machine: dict[str, str],
    loads: tuple[tuple[float, ...], tuple[float, ...]],
    out: Path,
) -> str:
    """RESULTS.md as text."""
    s = runner.series
    lines = [
        "# clusterkit benchmarks",
        "",
        "```",
        command,
        "```",
        "",
        f"- Date: {started.isoformat(timespec='seconds')} (run took {elapsed / 60:.1f} min)",
        f"- Machine: nproc {machine.get('nproc')}, memory {machine.get('memory')}, "
        f"kernel {machine.get('kernel')}",
        f"- Docker: {machine.get('docker')}; compose tool: {machine.get('compose')}",
        f"- Host: Python {machine.get('python')}, distributed {machine.get('distributed')}, "
        f"pyspark {machine.get('pyspark')}, {machine.get('java')}",
        f"- clusterkit: {machine.get('clusterkit')}",
    ]
    for backend, info in runner.images.items():
        stale = "" if info["ref"] == info["current tag"] else f" (current tag would be {info['current tag']})"
        lines.append(
            f"- Image {backend}: `{info['ref']}` id {info['id']}, {info['size']}, created "
            f"{info['created']}, source-hash {info['source-hash']}{stale}"
        )
    lines += [
        f"- Load average (1, 5, 15 min) at start {', '.join(f'{x:.2f}' for x in loads[0])}, "
        f"at end {', '.join(f'{x:.2f}' for x in loads[1])}",
        "",
        f"The machine has {machine.get('nproc')} cores: N=16 worker containers (P4), the node "
        "processes of every cluster and anything else running at the same time (another engineer's "
        "test suite, image builds) contend for the same CPU, so absolute times are noisy; the "
        "baselines run in the same rounds, interleaved, to keep ratios fair. Each figure is the "
        "median of the runs, with the spread as min-max. Images were present before timing "
        "(`cluster.up` is given the image ref, so no build happens inside a measurement)"
        + (
            "; one warm-up round of P1/P2/P3/P5 was run first and discarded."
            if runner.args.warmup
            else "; no warm-up round."
        ),
        "",
        "## Summary",
        "",
        "| benchmark | goal | measured (medians) | met? |",
        "|---|---|---|---|",
    ]
    for code in only:
        bench = benches[code]
        value, met = evaluate(bench.goal, s)
        unit = s[bench.goal.subject].unit if bench.goal.subject in s else "s"
        measured = fmt_ratio(value) if bench.goal.baseline else fmt(value, unit)
        lines.append(f"| {bench.title} | {bench.goal.text} | {measured} | {fmt_met(met)} |")
    for code in only:
        bench = benches[code]
        value, met = evaluate(bench.goal, s)
        base = s.get(bench.baseline)
        lines += [
            "",
            f"## {bench.title}",
            "",
            "| what | runtime | median | min | max | runs | ratio vs baseline | goal | met? |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for key in bench.keys:
            x = s.get(key)
            if x is None:
                continue
            if key == bench.baseline:
                ratio = "baseline"
            elif base is not None and base.median and x.median is not None:
                ratio = fmt_ratio(x.median / base.median)
            else:
                ratio = "n/a"
            is_goal = key == bench.goal.subject
            runs = f"{len(x.values)}" + (f" ({len(x.errors)} failed)" if x.errors else "")
            lines.append(
                f"| {x.what} | {x.runtime} | {fmt(x.median, x.unit)} | {fmt(x.low, x.unit)} | "
                f"{fmt(x.high, x.unit)} | {runs} | {ratio} | {bench.goal.text if is_goal else ''} | "
                f"{fmt_met(met) if is_goal else ''} |"
            )
        why = analysis(code, runner, benches)
        lines.append("")
        if met is False:
            lines.append("Analysis: " + (why or "(no profile data)"))
        elif met is None:
            lines.append("Analysis: the goal could not be evaluated (see the failed runs below). " + why)
        elif why:
            lines.append("Notes: " + why)
        if code in ("P1", "P2"):
            backend = "dask" if code == "P1" else "spark"
            rows = profile_medians(runner.profiles[backend])
            if rows:
                lines += [
                    "",
                    f"Where the compose `up` time goes ({backend}; seconds after `cluster.up` was called, "
                    f"median [min-max] of {len(runner.profiles[backend])} runs; from the engine's "
                    "container events and timers around the runtime's compose call and wait):",
                    "",
                    "| step | at (median) | min | max |",
                    "|---|---|---|---|",
                ]
                lines += [f"| {label} | {m:.2f} s | {lo:.2f} s | {hi:.2f} s |" for label, m, lo, hi in rows]
    ones = runner.extras.get("one-offs")
    if ones:
        lines += ["", "## One-off costs (median of 3)", "", "| what | time |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in ones.items()]
    if runner.warmups:
        lines += ["", "## Warm-up round (discarded)", ""] + [f"- {w}" for w in runner.warmups]
    failed = [x for x in s.values() if x.errors]
    if failed:
        lines += ["", "## Failed runs", ""]
        for x in failed:
            for error in x.errors:
                text = error.strip().replace("\n", "\n    ")
                lines.append(f"- {x.key} ({x.runtime}):\n\n    {text}\n")
    lines += ["", "Plot: [results.png](results.png); raw values: [results.json](results.json).", ""]
    return "\n".join(lines)


def print_table(runner: Runner, benches: dict[str, BenchDef], only: list[str]) -> None:
    from rich.table import Table

    table = Table(title="clusterkit benchmarks (medians; spread min-max)", show_lines=False)
    for column in ("bench", "what", "runtime", "median", "min", "max", "runs", "ratio", "goal", "met?"):
        table.add_column(column, justify="right" if column in ("median", "min", "max", "runs") else "left")
    for code in only:
        bench = benches[code]
        _, met = evaluate(bench.goal, runner.series)
        base = runner.series.get(bench.baseline)
        for key in bench.keys:
            x = runner.series.get(key)
            if x is None:
                continue
            if key == bench.baseline:
                ratio = "baseline"
            elif base is not None and base.median and x.median is not None:
                ratio = fmt_ratio(x.median / base.median)
            else:
                ratio = "n/a"
            is_goal = key == bench.goal.subject
            met_text = {True: "[green]yes", False: "[red]NO", None: "[yellow]n/a"}[met] if is_goal else ""
            table.add_row(
                code,
                x.what,
                x.runtime,
                fmt(x.median, x.unit),
                fmt(x.low, x.unit),
                fmt(x.high, x.unit),
                f"{len(x.values)}" + (f" ({len(x.errors)} failed)" if x.errors else ""),
                ratio,
                bench.goal.text if is_goal else "",
                met_text,
            )
    runner.console.print(table)


def plot(runner: Runner, benches: dict[str, BenchDef], only: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = runner.series
    panels = [c for c in only if any(k in s for k in benches[c].keys)]
    profile = bool(runner.profiles["dask"]) and "P1" in only
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
        _, met = evaluate(bench.goal, s)
        verdict = {True: "met", False: "MISSED", None: "n/a"}[met]
        ax.set_title(f"{bench.title}\ngoal: {bench.goal.text} ({verdict})", fontsize=9)
        if not present:
            ax.text(0.5, 0.5, "no successful runs", ha="center", va="center", transform=ax.transAxes)
            continue
        unit = present[0].unit
        if code == "P4":
            xs = [x.n for x in present]
            meds = [x.median for x in present]
            ax.plot(xs, meds, "o-", color="tab:blue", label="median")
            ax.fill_between(
                xs, [x.low for x in present], [x.high for x in present], alpha=0.25, label="min-max"
            )
            base = s.get(bench.baseline)
            if base is not None and base.median:
                ax.axhline(2 * base.median, color="tab:red", ls="--", lw=1, label="2x N=1 (goal)")
            ax.set_xscale("log", base=2)
            ax.set_xticks(xs, [str(n) for n in xs])
            ax.set_xlabel("workers (N)")
            ax.set_ylabel("ready time [s]")
            ax.legend(fontsize=8)
            continue
        labels = [
            x.runtime.replace("distributed.", "").replace(" (spark-class)", "\n(spark-class)")
            for x in present
        ]
        if code == "P3":
            labels = [
                f"{x.runtime.replace(' (spark-class)', '')}\n{'spark' if 'Spark' in x.what else 'dask'}"
                for x in present
            ]
        meds = [x.median for x in present]
        err = [
            [m - x.low for m, x in zip(meds, present, strict=True)],
            [x.high - m for m, x in zip(meds, present, strict=True)],
        ]
        colors = ["tab:orange" if x.runtime == "compose" else "tab:gray" for x in present]
        ax.bar(range(len(present)), meds, yerr=err, capsize=4, color=colors)
        ax.set_xticks(range(len(present)), labels, fontsize=8)
        ax.set_ylabel("tasks/s" if unit == "tasks/s" else "seconds")
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
        if code == "P3":
            ax.axhline(2.0, color="tab:red", ls="--", lw=1, label="goal 2 s")
            ax.legend(fontsize=8)
        elif bench.goal.baseline and bench.goal.baseline in s and s[bench.goal.baseline].median:
            ax.axhline(
                bench.goal.limit * s[bench.goal.baseline].median,
                color="tab:red",
                ls="--",
                lw=1,
                label=f"goal {bench.goal.limit}x baseline",
            )
            ax.legend(fontsize=8)
    if profile:
        ax = flat[len(panels)]
        rows_ = profile_medians(runner.profiles["dask"])
        labels = [r[0] for r in rows_]
        meds = [r[1] for r in rows_]
        ax.barh(range(len(rows_)), meds, color="tab:orange")
        ax.set_yticks(range(len(rows_)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("seconds after cluster.up was called (median)")
        ax.set_title("P1: where compose up time goes (dask, N=4)", fontsize=9)
    for ax in flat[count:]:
        ax.axis("off")
    fig.suptitle(f"clusterkit benchmarks, {dt.datetime.now():%Y-%m-%d %H:%M}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- command line ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_cluster", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help="runs per measurement (default 3; --quick: 1)"
    )
    parser.add_argument(
        "--p4-repeat", type=int, default=None, help="runs per N in P4 (default 2; --quick: 1)"
    )
    parser.add_argument(
        "--p4-counts", default=None, help="worker counts of P4 (default 1,2,4,8,16; --quick: 1,4)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repeat, fewer N, no warm-up")
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated subset, e.g. P1,P3")
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
    args = parser.parse_args(argv)
    args.only_list = [c.strip().upper() for c in args.only.split(",") if c.strip()]
    bad = [c for c in args.only_list if c not in BENCHES]
    if bad:
        parser.error(f"--only: unknown {', '.join(bad)}; expected some of {', '.join(BENCHES)}")
    args.only_list = [c for c in BENCHES if c in args.only_list]
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.p4_repeat = args.p4_repeat or (1 if args.quick else 2)
    if args.p4_counts:
        args.counts = tuple(sorted({int(c) for c in args.p4_counts.split(",")}))
    else:
        args.counts = P4_COUNTS_QUICK if args.quick else P4_COUNTS
    if args.warmup is None:
        args.warmup = not args.quick
    images: dict[str, str] = {}
    for item in args.image:
        backend, _, ref = item.partition("=")
        if backend not in ("dask", "spark") or not ref:
            parser.error(f"--image: {item!r} is not BACKEND=REF")
        images[backend] = ref
    args.images = images
    return args


def command_line(argv: list[str]) -> str:
    python = Path(sys.executable)
    with_cwd = python
    try:
        with_cwd = python.relative_to(Path.cwd())
    except ValueError:
        pass
    return f"cd {ROOT} && {with_cwd} -m benchmarks.bench_cluster {shlex.join(argv)}".rstrip()


def quiet_logs() -> None:
    """Only errors from distributed, tornado and py4j (node start/stop chatter drowns the progress)."""
    names = [
        n for n in logging.root.manager.loggerDict if n.split(".")[0] in ("distributed", "tornado", "py4j")
    ]
    for name in ["distributed", "tornado", "py4j", *names]:
        logging.getLogger(name).setLevel(logging.ERROR)


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


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    raw = sys.argv[1:] if argv is None else argv
    args = parse_args(raw)
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
    args.output.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now().astimezone()
    t0 = time.perf_counter()
    load_start = os.getloadavg()
    runner = Runner(args, console)
    benches, _ = definitions(args.counts)
    with run_dir():
        import distributed  # imported before any timing
        import distributed.deploy.local  # noqa: F401

        quiet_logs()

        machine = runner.extras["machine"] = runner.machine()
        console.log(f"machine: {machine}")
        try:
            run_all(runner, args.only_list, args.repeat, args.p4_repeat, args.counts)
        except KeyboardInterrupt:
            console.log("[yellow]interrupted; reporting what was measured")
        finally:
            for name, runtime in runner.started:
                runner._safe_down(name, runtime)
    elapsed = time.perf_counter() - t0
    loads = (load_start, os.getloadavg())
    print_table(runner, benches, args.only_list)
    text = report(
        runner, benches, args.only_list, command_line(raw), started, elapsed, machine, loads, args.output
    )
    results = args.output / "RESULTS.md"
    if results.exists() and KEPT_MARKER in results.read_text():
        # Figures measured by other commands (image builds) live below the marker.
        text = text.rstrip() + "\n\n" + KEPT_MARKER + results.read_text().split(KEPT_MARKER, 1)[1]
    results.write_text(text)
    raw_data = {
        "command": command_line(raw),
        "date": started.isoformat(timespec="seconds"),
        "machine": machine,
        "images": runner.images,
        "series": {k: asdict(v) for k, v in runner.series.items()},
        "profiles": runner.profiles,
        "extras": runner.extras,
        "warmups": runner.warmups,
    }
    (args.output / "results.json").write_text(json.dumps(raw_data, indent=2))
    try:
        plot(runner, benches, args.only_list, args.output / "results.png")
    except Exception as e:
        console.log(f"[red]plot failed: {e}")
    console.log(f"wrote {args.output / 'RESULTS.md'}, results.png, results.json ({elapsed / 60:.1f} min)")
    failed = any(x.errors for x in runner.series.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
