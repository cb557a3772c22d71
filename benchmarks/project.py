"""A user's project on the fixtures: the first run (its dependency layer built) and a code-only change.

    .venv/bin/python -m benchmarks.project [--repeat 3] [--output benchmarks]

Makes a project of its own under a temporary folder (``pyproject.toml`` with a
dependency clusterkit's lock lacks, a src-layout package, one test on the
``dask_cluster`` fixture) and times whole ``pytest`` runs there, as its user
sees them:

- **first run**: no project image on the engine, so the run locks the project's
  dependencies and builds their layer on the node image, then starts the
  cluster and runs the test;
- **code-only change**: the package's code edited; the layer is reused (no
  image build) and the new code reaches the workers by shipping.

Each repeat removes the project's image first (a cold first run), and the
section between the markers of ``--output``/RESULTS.md is rewritten.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MARKERS = ("<!-- project start -->", "<!-- project end -->")
DEPENDENCY = "humanize"

PYPROJECT = f"""[project]
name = "benchproj"
version = "0.1"
dependencies = ["{DEPENDENCY}"]
"""
TEST = f"""from benchproj import version

def test_the_project_runs_on_the_workers(dask_cluster):
    client = dask_cluster.client
    assert client.submit(version).result() == {{version}}
    assert client.submit(lambda: __import__("{DEPENDENCY}").__name__).result() == "{DEPENDENCY}"
"""


def _project(root: Path, version: int) -> None:
    (root / "src" / "benchproj").mkdir(parents=True, exist_ok=True)
    (root / "tests").mkdir(exist_ok=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "src" / "benchproj" / "__init__.py").write_text(f"def version():\n    return {version}\n")
    (root / "tests" / "test_it.py").write_text(TEST.replace("{version}", str(version)))


def _pytest(root: Path) -> float:
    env_path = f"{root / 'src'}"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": env_path, "CLUSTERKIT_REQUIRE_DOCKER": "1"},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    took = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"pytest failed in {root}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return took


def _remove_project_images() -> None:
    import docker

    engine = docker.from_env()
    for image in engine.images.list(name="clusterkit/dask-project"):
        for tag in image.tags:
            engine.images.remove(tag, force=True)


def rounds(repeat: int) -> dict[str, list[float]]:
    from clusterkit.images import ensure_image

    ensure_image("dask")  # the node image is not what this measures
    found: dict[str, list[float]] = {"first": [], "edit": []}
    for i in range(repeat):
        root = Path(tempfile.mkdtemp(prefix="ck-bench-project-"))
        try:
            _remove_project_images()
            _project(root, 1)
            found["first"].append(_pytest(root))
            _project(root, 2)
            found["edit"].append(_pytest(root))
            print(f"round {i + 1}: first {found['first'][-1]:.1f} s, edit {found['edit'][-1]:.1f} s")
        finally:
            shutil.rmtree(root, ignore_errors=True)
            _remove_project_images()
    return found


def section(found: dict[str, list[float]], repeat: int) -> str:
    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.1f} s ({min(values):.1f}-{max(values):.1f})"

    lines = [
        MARKERS[0],
        "## A user's project on the fixtures: first run and a code-only change",
        "",
        f"- Command: `.venv/bin/python -m benchmarks.project --repeat {repeat}`",
        f"- Date: {dt.date.today().isoformat()}; whole `pytest` runs of one test on `dask_cluster` (2 workers),",
        f"  in a src-layout project whose `pyproject.toml` depends on `{DEPENDENCY}` (not in clusterkit's lock).",
        "",
        "| run | what happens | median (min-max) |",
        "|---|---|---|",
        f"| first run | lock with uv, build the dependency layer, start, test, remove | {cell(found['first'])} |",
        f"| code-only change | layer reused (no build), code shipped, start, test, remove | {cell(found['edit'])} |",
        MARKERS[1],
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.project", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", type=Path, default=HERE, help="folder of the RESULTS.md to update")
    args = parser.parse_args(argv)
    from benchmarks.report import write_marked_section

    text = section(rounds(args.repeat), args.repeat)
    write_marked_section(args.output / "RESULTS.md", MARKERS, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
