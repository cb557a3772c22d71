"""Building clusterkit's wheel and sdist from a private copy of the checkout (for the packaging tests).

A copy, so a build's ``build/`` and ``*.egg-info`` never land in the shared
working tree; ``--no-build-isolation`` and setuptools' own PEP 517 hooks, so
nothing is downloaded.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: What a build reads: the project files and the two source folders.
PROJECT_FILES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md")
SOURCE_FOLDERS = ("clusterkit", "images")
_JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")


def copy_project(dest: Path) -> Path:
    """The files a build needs, copied from the checkout into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        shutil.copy2(ROOT / name, dest / name)
    for name in SOURCE_FOLDERS:
        shutil.copytree(ROOT / name, dest / name, ignore=_JUNK)
    return dest


def _run(args: list[str], cwd: Path) -> str:
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(args)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    return r.stdout


def build_wheel(project: Path, out: Path) -> Path:
    """``pip wheel --no-deps --no-build-isolation`` of ``project``; the wheel's path."""
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    _run([*pip, "-w", str(out), "."], project)
    (wheel,) = out.glob("clusterkit-*.whl")
    return wheel


def build_sdist(project: Path, out: Path) -> Path:
    """The sdist of ``project``, by setuptools' PEP 517 hook."""
    hook = f"from setuptools import build_meta; print(build_meta.build_sdist({str(out)!r}))"
    name = _run([sys.executable, "-c", hook], project).strip().splitlines()[-1]
    return out / name


def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        return set(z.namelist())


def wheel_metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as z:
        (meta,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        return z.read(meta).decode()


def sdist_names(sdist: Path) -> set[str]:
    """The sdist's member names without the leading ``clusterkit-<version>/``."""
    with tarfile.open(sdist) as t:
        return {m.name.split("/", 1)[1] for m in t.getmembers() if "/" in m.name and m.isfile()}


def recipe_files() -> list[str]:
    """The checkout's image inputs (every file of images/)."""
    return sorted(p.name for p in (ROOT / "images").iterdir() if p.is_file())
