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
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from benchmarks import machine
from benchmarks.phases import PhaseRecorder, engine_marks
from benchmarks.results import Results
from benchmarks.workload import TASKS

UP_TIMEOUT = 300
#: P1b's baseline: the dask-docker project's compose layout, on clusterkit's node image.
DASK_DOCKER_FILE = Path(__file__).resolve().parent / "dask_docker" / "docker-compose.yml"
#: What one connection attempt of P1b's plain Client may take (distributed retries inside it).
CONNECT_ATTEMPT = 1.0
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


def close_local(client: Any, cluster: Any) -> None:
    """Close what a LocalCluster round left open (after a failure too), then quiet the logs again."""
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.close()
    quiet_logs()


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


def connect_retrying(address: str, deadline: float) -> tuple[Any, int]:
    """A plain ``distributed.Client`` to ``address``, tried again after a short pause until
    ``deadline`` (a ``time.perf_counter()`` value): what a user of a compose file without a
    health gate writes. Returns the client and how many attempts failed before it connected.
    """
    from distributed import Client

    failed, pause = 0, 0.1
    while True:
        left = deadline - time.perf_counter()
        try:
            client = Client(address, timeout=max(0.5, min(CONNECT_ATTEMPT, left)), set_as_default=False)
            return client, failed
        except OSError as e:  # refused, reset, handshake or connect time-out (TimeoutError is an OSError)
            failed += 1
            if time.perf_counter() + pause >= deadline:
                raise TimeoutError(f"no scheduler at {address} after {failed} attempts: {_message(e)}") from e
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


def edit_comment(root: Path, marker: str) -> tuple[str, int]:
    """Change one comment line of a module under ``root`` (the first, in path order, that has a
    line holding only a comment); returns the module's path relative to ``root`` and the line number."""
    for path in sorted(root.rglob("*.py")):
        lines = path.read_text().splitlines(keepends=True)
        for number, line in enumerate(lines):
            text = line.strip()
            if text.startswith("# ") and not text.startswith(("# type:", "# noqa", "# fmt:")):
                lines[number] = line.rstrip("\n") + f" [{marker}]\n"
                path.write_text("".join(lines))
                return path.relative_to(root).as_posix(), number + 1
    raise RuntimeError(f"no comment line to change under {root}")


class Runner:
    """Runs single rounds and adds what they measured to ``results``."""

    def __init__(self, args: argparse.Namespace, console: Any, results: Results) -> None:
        self.args = args
        self.console = console
        self.results = results
        self.started: list[tuple[str, str]] = []
        #: (compose project, cluster label) of every dask-docker layout P1b started.
        self.dask_docker: list[tuple[str, str]] = []
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
        memory: str = "1GiB",
    ) -> None:
        """LocalCluster(workers x 1 thread): time to ``wait_for_workers``, then the tasks.

        ``memory`` is each worker's limit, as the compose workers it is compared with have.
        """
        from distributed import Client, LocalCluster

        label = f"LocalCluster N={workers}" + (" (warm-up)" if warmup else "")
        lc = client = None
        t0 = time.perf_counter()
        try:
            lc = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                memory_limit=memory,
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
            close_local(client, lc)

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

    # -- P1b: the dask-docker layout ------------------------------------------------------------

    def _dask_docker_env(self, name: str, ports: tuple[int, int] = (0, 0)) -> dict[str, str]:
        image = self.results.images.get("dask", {}).get("ref", "unused")
        return {
            **os.environ,
            "IMAGE": image,
            "SCHEDULER_PORT": str(ports[0]),
            "DASHBOARD_PORT": str(ports[1]),
            "CLUSTER": name,
        }

    def dask_docker_round(
        self, workers: int, key: str, meta: dict[str, dict[str, Any]], warmup: bool = False
    ) -> None:
        """P1b's baseline: ``<compose> up -d --scale worker=N`` of the dask-docker layout, then a
        plain Client that retries connecting, until ``wait_for_workers(N)`` returns; then ``down -v``."""
        from clusterkit.runtimes.compose import compose_command

        name = self.name(f"dd{workers}")
        project = name  # the compose project: containers, network
        port, dashboard = free_ports(2)
        env = self._dask_docker_env(name, (port, dashboard))
        argv = [*compose_command(), "-p", project, "-f", str(DASK_DOCKER_FILE)]
        label = f"dask-docker layout N={workers}" + (" (warm-up)" if warmup else "")
        self.dask_docker.append((project, name))
        client = None
        t0 = time.perf_counter()
        try:
            done = subprocess.run(
                [*argv, "up", "-d", "--scale", f"worker={workers}"],
                env=env,
                capture_output=True,
                text=True,
                timeout=UP_TIMEOUT,
            )
            composed = time.perf_counter() - t0
            if done.returncode != 0:
                tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
                raise RuntimeError(f"compose up exited {done.returncode}: {tail}")
            deadline = t0 + UP_TIMEOUT
            client, failed = connect_retrying(f"tcp://127.0.0.1:{port}", deadline)
            connected = time.perf_counter() - t0
            client.wait_for_workers(workers, timeout=max(1.0, deadline - time.perf_counter()))
            took = time.perf_counter() - t0
            detail = (
                f"compose up returned at {composed:.2f} s, client connected at {connected:.2f} s "
                f"after {failed} failed attempt{'s' if failed != 1 else ''}"
            )
            self.say(f"{label}: up {took:.2f} s ({detail})")
            if warmup:
                self.results.warmups.append(f"{label}: up {took:.2f} s ({detail})")
            else:
                self.results.add(key, took, **meta[key])
                self.results.extras.setdefault("dask-docker runs", []).append(
                    {
                        "seconds": took,
                        "compose up returned": composed,
                        "client connected": connected,
                        "failed connection attempts": failed,
                    }
                )
        except Exception as e:
            self.say(f"[red]{label} failed: {_message(e).splitlines()[0]}")
            if not warmup:
                self.results.add(key, error=_message(e), **meta[key])
        finally:
            if client is not None:
                try:
                    client.close()
                except Exception:
                    pass
            if self.dask_docker_down(project, name, env):
                self.dask_docker.remove((project, name))
            quiet_logs()

    def dask_docker_down(self, project: str, name: str, env: dict[str, str] | None = None) -> bool:
        """``down -v`` of a dask-docker project, then whatever still carries its cluster label;
        true when nothing of it is left."""
        import docker

        from clusterkit import labels
        from clusterkit.runtimes.compose import compose_command

        try:
            done = subprocess.run(
                [*compose_command(), "-p", project, "-f", str(DASK_DOCKER_FILE), "down", "-v"],
                env=env or self._dask_docker_env(name),
                capture_output=True,
                text=True,
                timeout=180,
            )
            if done.returncode != 0:
                self.say(f"[yellow]compose down of {project} exited {done.returncode}")
        except Exception as e:
            self.say(f"[yellow]compose down of {project} failed: {_message(e)}")
        try:
            engine = docker.from_env(timeout=60)
        except Exception as e:
            self.say(f"[red]clean-up of {project}: no engine ({_message(e)})")
            return False
        wanted = {"label": [f"{labels.PROJECT}={labels.PROJECT_VALUE}", f"{labels.CLUSTER}={name}"]}
        try:
            for container in engine.containers.list(all=True, filters=wanted, ignore_removed=True):
                container.remove(force=True, v=True)
                self.say(f"[yellow]removed leftover container {container.name}")
            for network in engine.networks.list(filters=wanted):
                network.remove()
                self.say(f"[yellow]removed leftover network {network.name}")
        except Exception as e:
            self.say(f"[red]clean-up of {project} failed: {_message(e)}")
            return False
        finally:
            engine.close()
        return True

    # -- P7c: a code-only rebuild of the node image ---------------------------------------------

    def rebuild_round(self, index: int, key: str, meta: dict[str, dict[str, Any]]) -> None:
        """P7c: ``ensure_image("dask")`` after a code-only change, twice.

        First from a copy of the clusterkit source with one comment line changed
        (``paths.source_dir`` patched, as the tests do), then from the real source
        again: both rebuild only the image's last layer under the same tag. Whatever
        happens, the engine is left with the image of the real source.
        """
        from unittest import mock

        from clusterkit.images import paths, tags

        label = f"P7c #{index + 1}"
        real = paths.source_dir()
        try:
            self._check_code_only()
            with tempfile.TemporaryDirectory(prefix="clusterkit-bench-source-") as tmp:
                copy = Path(tmp) / real.name
                shutil.copytree(real, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"))
                marker = f"changed by the P7c benchmark {os.getpid()}-{index}-{time.time_ns()}"
                module, line = edit_comment(copy, marker)
                with mock.patch.object(paths, "source_dir", lambda: copy):
                    if tags.source_hash() == tags.source_hash(real):
                        raise RuntimeError("the edited copy hashes like the real source")
                    self._timed_rebuild(f"{label}: {module} line {line} changed", key, meta, "edited copy")
            self._timed_rebuild(f"{label}: back to the real source", key, meta, "real source")
        except Exception as e:
            self.say(f"[red]{label} failed: {_message(e).splitlines()[0]}")
            self.results.add(key, error=_message(e), **meta[key])
        finally:
            self.restore_image()

    def _check_code_only(self) -> None:
        """The image and its venv stage are there: a rebuild now is code-only (the last layer)."""
        from clusterkit import images
        from clusterkit.images import store, tags

        ref = images.image_tag("dask")
        engine = store.client()
        try:
            for needed in (ref, tags.env_tag(ref)):
                if store.get_image(engine, needed) is None:
                    raise RuntimeError(f"{needed} is missing: a rebuild would not be code-only")
        finally:
            engine.close()

    def _timed_rebuild(self, label: str, key: str, meta: dict[str, dict[str, Any]], source: str) -> None:
        from clusterkit import images

        events: list[str] = []
        t0 = time.perf_counter()
        ref = images.ensure_image("dask", progress=lambda event: events.append(str(event)))
        took = time.perf_counter() - t0
        if not events:
            raise RuntimeError("ensure_image built nothing: the image already had this source")
        whole = any("and its venv stage" in e for e in events)
        self.say(
            f"{label}: {ref} rebuilt in {took:.2f} s" + (" [yellow](the venv stage too)" if whole else "")
        )
        self.results.add(key, took, **meta[key])
        self.results.extras.setdefault("P7c samples", []).append(
            {
                "source": source,
                "what": label,
                "seconds": took,
                "venv stage rebuilt too": whole,
            }
        )

    def restore_image(self) -> None:
        """Make sure the engine holds the dask image of the real source (a no-op when it does)."""
        from clusterkit import images
        from clusterkit.images import build, store, tags

        try:
            ref = images.ensure_image("dask")
            engine = store.client()
            try:
                image = store.get_image(engine, ref)
            finally:
                engine.close()
            found = (image.labels or {}).get(build.SOURCE_HASH) if image is not None else None
            if found != tags.source_hash():
                raise RuntimeError(f"{ref} has source-hash {found}, the real source {tags.source_hash()}")
        except Exception as e:
            self.say(
                f"[red]the dask node image is not the real source's ({_message(e)}): "
                "run `clusterkit image ensure dask`"
            )

    def clean_up(self) -> None:
        """Bring down whatever a round may have left (interrupted runs)."""
        for name, runtime in self.started:
            self.safe_down(name, runtime)
        for project, name in list(self.dask_docker):
            if self.dask_docker_down(project, name):
                self.dask_docker.remove((project, name))
