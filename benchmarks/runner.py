"""Starting and stopping clusters and their baselines, and timing them.

Every cluster gets a unique name and free loopback ports, is started with the
pinned image ref (no build inside a measurement) and is brought down in
``finally``; ``Runner.started`` lists them for a last clean-up.
"""

from __future__ import annotations

import argparse
import functools
import logging
import operator
import os
import socket
import time
import warnings
from typing import Any

from benchmarks import machine
from benchmarks.definitions import TASKS
from benchmarks.phases import PhaseRecorder, engine_marks
from benchmarks.results import Results

UP_TIMEOUT = 300
#: Pickled by reference to ``operator``: importable in the node images, unlike this package.
INC = functools.partial(operator.add, 1)


def free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in ports:
            ports.append(port)
    return ports


def quiet_logs() -> None:
    """Only errors from distributed, tornado and py4j (node start/stop chatter drowns the progress)."""
    names = [
        n for n in logging.root.manager.loggerDict if n.split(".")[0] in ("distributed", "tornado", "py4j")
    ]
    for name in ["distributed", "tornado", "py4j", *names]:
        logging.getLogger(name).setLevel(logging.ERROR)
    # The node images' Python may differ from the host's in the patch level; the client warns each time.
    warnings.filterwarnings("ignore", message="Mismatched versions found")


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


def _message(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".strip()


class Runner:
    """Runs single rounds and adds what they measured to ``results``."""

    def __init__(self, args: argparse.Namespace, console: Any, results: Results) -> None:
        self.args = args
        self.console = console
        self.results = results
        self.started: list[tuple[str, str]] = []
        self.untyped_progress = 0  # progress given as text, not events: phases not available
        self._count = 0

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
        if backend in self.results.images:
            overrides["image"] = self.results.images[backend]["ref"]
        return resolve_spec(overrides=overrides, environ={})

    # -- images and one-off costs ------------------------------------------------------------

    def resolve_images(self, backends: list[str]) -> None:
        """Pin each node image by ref so a source edit during the run cannot trigger a rebuild."""
        for backend in backends:
            self.results.images[backend] = machine.pin_image(backend, self.args.images.get(backend), self.say)

    def one_offs(self) -> None:
        ref = self.results.images.get("dask", {}).get("ref")
        texts, numbers = machine.one_off_costs(ref)
        self.results.extras["one-off numbers"] = numbers
        self.results.extras["one-offs"] = texts
        for key, value in texts.items():
            self.say(f"{key}: {value}")

    # -- clusterkit clusters -----------------------------------------------------------------

    def safe_down(self, name: str, runtime: str) -> None:
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
        """One clusterkit cluster: time ``up`` (and its phases), optionally run the tasks, time ``down``."""
        from clusterkit import cluster

        results = self.results
        spec = self.spec(backend, f"{backend[0]}{runtime[0]}{workers}", workers, memory)
        self.started.append((spec.name, runtime))
        label = f"{backend} {runtime} N={workers}" + (" (warm-up)" if warmup else "")
        recorder = PhaseRecorder()
        up_ok = False
        t0_wall = time.time()
        recorder.start()
        try:
            status = cluster.up(spec, runtime, timeout=UP_TIMEOUT, keep=False, progress=recorder)
            marks = recorder.returned()
            up_s = marks["up returned"]
            up_ok = True
            self.untyped_progress += recorder.untyped
            alive = len(status.alive_workers)
            if alive != workers:
                raise RuntimeError(f"up returned with {alive} of {workers} workers alive")
            self.say(f"{label}: up {up_s:.2f} s")
            if warmup:
                results.warmups.append(f"{label}: up {up_s:.2f} s")
            elif up_key:
                results.add(up_key, up_s, **meta[up_key])
                results.phases.setdefault(up_key, []).append(marks)
            if profile and runtime == "compose" and not warmup:
                try:
                    results.profiles[backend].append({**marks, **engine_marks(spec.name, t0_wall)})
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
                results.add(tasks_key, rate, **meta[tasks_key])
        except Exception as e:
            self.say(f"[red]{label} failed: {_message(e).splitlines()[0]}")
            key = up_key if not up_ok else (tasks_key or up_key)
            if key and not warmup:
                results.add(key, error=_message(e), **meta[key])
        finally:
            if up_ok:
                self._timed_down(spec.name, runtime, label, None if warmup else down_key, meta)
            else:
                self.safe_down(spec.name, runtime)

    def _timed_down(
        self, name: str, runtime: str, label: str, key: str | None, meta: dict[str, dict[str, Any]]
    ) -> None:
        from clusterkit import cluster

        try:
            t0 = time.perf_counter()
            cluster.down(name, runtime)
            down_s = time.perf_counter() - t0
            self.say(f"{label}: down {down_s:.2f} s")
            if key:
                self.results.add(key, down_s, **meta[key])
        except Exception as e:
            self.say(f"[red]{label} down failed: {_message(e).splitlines()[0]}")
            if key:
                self.results.add(key, error=_message(e), **meta[key])
            self.safe_down(name, runtime)

    def fixture_round(self, index: int, workers: int, key: str, meta: dict[str, dict[str, Any]]) -> None:
        """P8: what the session fixture does: up to every worker registered, a client, then down.

        ``Cluster`` removes everything on exit, also when interrupted.
        """
        label = f"P8 fixture #{index + 1}"
        name = f"bench-p8-{os.getpid()}-{index}"
        try:
            import distributed

            from clusterkit import Cluster

            recorder = PhaseRecorder()
            t0 = time.monotonic()
            recorder.start()
            with Cluster(
                "dask", runtime="testcontainers", workers=workers, name=name, progress=recorder
            ) as c:
                marks = recorder.returned()
                client = distributed.Client(c)
                client.close()
            took = time.monotonic() - t0
            self.say(f"{label}: up + down {took:.2f} s (up {marks['up returned']:.2f} s)")
            self.results.add(key, took, **meta[key])
            self.results.phases.setdefault(key, []).append(marks)
        except Exception as e:
            self.say(f"[red]{label} failed: {_message(e).splitlines()[0]}")
            self.results.add(key, error=_message(e), **meta[key])

    # -- baselines ---------------------------------------------------------------------------

    def localcluster_round(
        self,
        workers: int,
        up_key: str | None,
        tasks_key: str | None,
        meta: dict[str, dict[str, Any]],
        warmup: bool,
    ) -> None:
        """LocalCluster(workers x 1 thread): time to ``wait_for_workers``, then the tasks."""
        from distributed import Client, LocalCluster

        label = f"LocalCluster N={workers}" + (" (warm-up)" if warmup else "")
        lc = client = None
        t0 = time.perf_counter()
        try:
            lc = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                memory_limit="1GiB",  # as the compose workers
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
                silence_logs=logging.ERROR,
            )
            client = Client(lc)
            client.wait_for_workers(workers)
            up_s = time.perf_counter() - t0
            self.say(f"{label}: up {up_s:.2f} s")
            if warmup:
                self.results.warmups.append(f"{label}: up {up_s:.2f} s")
                return
            if up_key:
                self.results.add(up_key, up_s, **meta[up_key])
            if tasks_key:
                rate = run_tasks(client, workers)
                self.say(f"{label}: {rate:,.0f} tasks/s")
                self.results.add(tasks_key, rate, **meta[tasks_key])
        except Exception as e:
            self.say(f"[red]{label} failed: {_message(e).splitlines()[0]}")
            key = up_key or tasks_key
            if key and not warmup:
                self.results.add(key, error=_message(e), **meta[key])
        finally:
            if client is not None:
                client.close()
            if lc is not None:
                lc.close()
            quiet_logs()

    def localcluster_up_down(self, workers: int, key: str, meta: dict[str, dict[str, Any]]) -> None:
        """P8's baseline: LocalCluster + Client until every worker is registered, then closed (all timed)."""
        from distributed import Client, LocalCluster

        label = f"LocalCluster N={workers}"
        try:
            t0 = time.perf_counter()
            with LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as lc:
                with Client(lc) as client:
                    client.wait_for_workers(workers)
            took = time.perf_counter() - t0
            self.say(f"{label}: up + down {took:.2f} s")
            self.results.add(key, took, **meta[key])
        except Exception as e:
            self.say(f"[red]{label} failed: {_message(e).splitlines()[0]}")
            self.results.add(key, error=_message(e), **meta[key])
        finally:
            quiet_logs()

    def clean_up(self) -> None:
        """Bring down whatever a round may have left (interrupted runs)."""
        for name, runtime in self.started:
            self.safe_down(name, runtime)
