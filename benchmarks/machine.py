"""The machine, the pinned node images, and the one-off costs a container start is made of."""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: What ``python -m clusterkit.node`` imports before it execs the node program.
NODE_IMPORTS = "import clusterkit.node, clusterkit.spec; from clusterkit.backends import get_backend; get_backend('dask')"


def run(argv: list[str], timeout: float = 60) -> tuple[float, str]:
    """Wall time and combined output of a command."""
    t0 = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - t0
    return elapsed, (result.stdout + result.stderr).strip()


def describe() -> dict[str, str]:
    """Cores, memory, kernel, engine, Compose tool, Java, Python and library versions, clusterkit commit."""
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

        info["compose"] = run([*compose_command(), "version", "--short"])[1].splitlines()[0]
    except Exception as e:
        info["compose"] = f"unavailable ({e})"
    try:
        java = run(["java", "-version"])[1].splitlines()
        info["java"] = java[0] if java else "?"
    except Exception:
        info["java"] = "not found"
    info["python"] = platform.python_version()
    info["distributed"] = distributed.__version__
    info["pyspark"] = pyspark.__version__
    try:
        rev = run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])[1]
        dirty = run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "clusterkit"])[1]
        info["clusterkit"] = rev + (" + uncommitted changes in clusterkit/" if dirty else "")
    except Exception:
        info["clusterkit"] = "?"
    return info


def pin_image(backend: str, given: str | None, say: Callable[[str], None]) -> dict[str, str]:
    """The node image to use (``given``, or the current one, built if missing or stale) and its facts."""
    import docker

    from clusterkit import images

    current = images.image_tag(backend)
    if given:
        ref = given
    else:
        say(f"checking the {backend} node image (builds only if missing or stale)")
        ref = images.ensure_image(backend, progress=lambda event: say(f"{backend} image: {event}"))
    client = docker.from_env(timeout=60)
    try:
        image = client.images.get(ref)
    finally:
        client.close()
    labels = image.labels or {}
    return {
        "ref": ref,
        "id": image.id.split(":", 1)[-1][:12],
        "created": image.attrs.get("Created", "")[:19],
        "size": f"{image.attrs.get('Size', 0) / 2**20:.0f} MiB",
        "source-hash": labels.get("clusterkit.source-hash", "?"),
        "current tag": current,
    }


def one_off_costs(dask_image: str | None) -> tuple[dict[str, str], dict[str, float]]:
    """Costs the compose start-up is made of, each the median of 3: (text by what, seconds by key)."""
    from clusterkit.runtimes.compose import compose_command

    texts: dict[str, str] = {}
    numbers: dict[str, float] = {}

    def median_of(argv: list[str], runs: int = 3) -> float:
        return statistics.median(run(argv, timeout=120)[0] for _ in range(runs))

    try:
        numbers["compose"] = median_of([*compose_command(), "version"])
        texts["compose tool start-up (`<compose> version`)"] = f"{numbers['compose']:.2f} s"
    except Exception as e:
        texts["compose tool start-up"] = f"failed: {e}"
    if dask_image:
        base = ["docker", "run", "--rm", "--network", "none", "--entrypoint", "", dask_image, "python", "-c"]
        try:
            empty = numbers["container"] = median_of([*base, "pass"])
            texts["`docker run --rm` of the dask image, `python -c pass`"] = f"{empty:.2f} s"
            for key, what, code in (
                ("node", "the node entry point's imports (`clusterkit.node`)", NODE_IMPORTS),
                ("cli", "`import clusterkit.cli` (the CLI; nodes do not import it)", "import clusterkit.cli"),
                ("worker", "`import distributed.cli.dask_worker`", "import distributed.cli.dask_worker"),
            ):
                took = median_of([*base, code])
                numbers[f"container import {key}"] = took - empty
                texts[f"same, {what}"] = f"{took:.2f} s (the import: {took - empty:.2f} s)"
        except Exception as e:
            texts["container start / imports"] = f"failed: {e}"
    try:
        empty = median_of([sys.executable, "-c", "pass"])
        took = median_of([sys.executable, "-c", "import distributed.cli.dask_worker"])
        numbers["host import worker"] = took - empty
        texts["host: `python -c 'import distributed.cli.dask_worker'`"] = (
            f"{took:.2f} s (the import: {took - empty:.2f} s)"
        )
    except Exception as e:
        texts["host import"] = f"failed: {e}"
    return texts, numbers
