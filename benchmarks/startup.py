"""P1's container floor, P6's image sizes and P9's LocalCluster(32): rounds beside the Runner's.

- The floor (P1): what any container cluster of a scheduler and 4 workers pays on
  this engine before clusterkit does anything: 5 containers of the Dask node
  image, started at once (one ``docker run --rm`` each, from 5 threads, the
  image's entry point as it is: tini, then ``python -c "import distributed"``),
  from the first start until the last has exited.
- P6: the engine's ``Size`` of each pinned node image, in MB (10^6 bytes).
- P9's baseline: ``LocalCluster(32)`` up to ``wait_for_workers(32)``, and its close,
  timed apart.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from benchmarks.runner import UP_TIMEOUT, _message, close_local

if TYPE_CHECKING:
    from benchmarks.runner import Runner

Meta = dict[str, dict[str, Any]]
#: Every floor container carries it (not clusterkit's own project label: ``clusterkit gc`` leaves it alone).
FLOOR_PROJECT = "clusterkit.project=clusterkit-bench"
#: And this one, unique per round: what a clean-up after a failed round removes.
FLOOR_RUN = "clusterkit-bench.run"
FLOOR_CODE = "import distributed"
FLOOR_TIMEOUT = 180
MB = 10**6


def floor_argv(image: str, run: str) -> list[str]:
    labels = ["--label", FLOOR_PROJECT, "--label", f"{FLOOR_RUN}={run}"]
    return ["docker", "run", "--rm", *labels, image, "python", "-c", FLOOR_CODE]


def run_floor(image: str, count: int, run: str) -> tuple[float, list[float]]:
    """Start ``count`` containers at once; (first start to last exit, each one's own seconds)."""
    argv = floor_argv(image, run)

    def one(_: int) -> float:
        t0 = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=FLOOR_TIMEOUT)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
            raise RuntimeError(f"docker run exited {done.returncode}: {tail}")
        return time.perf_counter() - t0

    with ThreadPoolExecutor(max_workers=count) as pool:
        t0 = time.perf_counter()
        each = list(pool.map(one, range(count)))
        took = time.perf_counter() - t0
    return took, each


def remove_floor_containers(run: str) -> int:
    """Remove what is left of one floor round (a time-out, an interrupt); how many were left."""
    import docker

    engine = docker.from_env(timeout=60)
    try:
        left = engine.containers.list(all=True, filters={"label": [FLOOR_PROJECT, f"{FLOOR_RUN}={run}"]})
        for container in left:
            container.remove(force=True)
        return len(left)
    finally:
        engine.close()


def floor_round(runner: Runner, count: int, key: str, meta: Meta, warmup: bool) -> None:
    """P1's floor: ``count`` containers of the Dask node image, ``import distributed``, at once."""
    image = runner.results.images.get("dask", {}).get("ref")
    label = f"floor: {count} containers" + (" (warm-up)" if warmup else "")
    run = f"{os.getpid()}-{time.time_ns()}"
    try:
        if not image:
            raise RuntimeError("no dask node image pinned")
        took, each = run_floor(image, count, run)
        runner.say(f"{label}: {took:.2f} s (each {', '.join(f'{x:.2f}' for x in sorted(each))} s)")
        if warmup:
            runner.results.warmups.append(f"{label}: {took:.2f} s")
            return
        runner.results.add(key, took, **meta[key])
        runner.results.extras.setdefault("floor runs", []).append({"seconds": took, "each": each})
    except Exception as e:
        runner.say(f"[red]{label} failed: {_message(e).splitlines()[0]}")
        if not warmup:
            runner.results.add(key, error=_message(e), **meta[key])
    finally:
        try:
            left = remove_floor_containers(run)
            if left:
                runner.say(f"[yellow]removed {left} leftover floor container(s)")
        except Exception as e:
            runner.say(f"[red]clean-up of the floor containers ({FLOOR_RUN}={run}) failed: {e}")


def image_sizes(runner: Runner, meta: Meta) -> None:
    """P6: the engine's ``Size`` of each pinned node image (what ``docker images`` shows), in MB."""
    import docker

    engine = docker.from_env(timeout=60)
    try:
        for backend, info in runner.results.images.items():
            key = f"P6/{backend}"
            if key not in meta:
                continue
            try:
                image = engine.images.get(info["ref"])
                size = image.attrs["Size"] / MB
                runner.say(f"P6: {info['ref']} {size:.0f} MB")
                runner.results.add(key, size, **meta[key])
                runner.results.extras.setdefault("image parts", {})[backend] = _base_part(engine, image)
            except Exception as e:
                runner.say(f"[red]P6: size of {info['ref']} failed: {_message(e)}")
                runner.results.add(key, error=_message(e), **meta[key])
    finally:
        engine.close()


def _base_part(engine: Any, image: Any) -> dict[str, Any]:
    """The base image the node image is built on (its ``clusterkit.base`` label) and its size in MB."""
    base = (image.labels or {}).get("clusterkit.base")
    try:
        return {"base": base, "base MB": engine.images.get(base).attrs["Size"] / MB if base else None}
    except Exception:
        return {"base": base, "base MB": None}


def localcluster_up_close(runner: Runner, workers: int, up_key: str, close_key: str, meta: Meta) -> None:
    """P9's baseline: LocalCluster(workers x 1 thread, 512 MiB each) up to every worker registered,
    then the client and the cluster closed; the two timed apart."""
    from distributed import Client, LocalCluster

    label = f"LocalCluster N={workers}"
    lc = client = None
    key = up_key  # what a failure is booked to
    try:
        t0 = time.perf_counter()
        lc = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            memory_limit="512MiB",
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        )
        client = Client(lc)
        client.wait_for_workers(workers, timeout=UP_TIMEOUT)
        up_s = time.perf_counter() - t0
        runner.results.add(up_key, up_s, **meta[up_key])
        key = close_key
        t1 = time.perf_counter()
        client.close()
        lc.close()
        close_s = time.perf_counter() - t1
        client = lc = None
        runner.say(f"{label}: up {up_s:.2f} s, close {close_s:.2f} s")
        runner.results.add(close_key, close_s, **meta[close_key])
    except Exception as e:
        runner.say(f"[red]{label} failed: {_message(e).splitlines()[0]}")
        runner.results.add(key, error=_message(e), **meta[key])
    finally:
        close_local(client, lc)
