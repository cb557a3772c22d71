"""Hashed locks: parse them, hash them, check that node locks are subsets, recompile them.

The hash itself is :mod:`clusterkit.lockhash`'s (``clusterkit.status`` needs it
without the builder); here a missing lock becomes a ``BuildError``. A file is
parsed once per version of it: a build asks for the same locks several times.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from clusterkit import lockhash
from clusterkit.errors import BuildError, UnknownBackend
from clusterkit.facts import BACKENDS
from clusterkit.images.paths import images_dir, read_bytes
from clusterkit.lockhash import UNION_LOCK

#: The node's Python; locks are compiled for it and wheels downloaded for it.
PYTHON_MINOR = "3.11"


@dataclasses.dataclass(frozen=True)
class Pin:
    """One ``name==version --hash=...`` entry of a hashed lock."""

    name: str  # normalized (PEP 503)
    version: str
    hashes: tuple[str, ...]
    marker: str = ""

    def line(self, hashes: Iterable[str] | None = None) -> str:
        marker = f" ; {self.marker}" if self.marker else ""
        hs = " ".join(f"--hash={h}" for h in (self.hashes if hashes is None else hashes))
        return f"{self.name}=={self.version}{marker} {hs}".rstrip()


_PIN_RE = re.compile(
    r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;\\]+)\s*(?:;\s*([^\\]*?))?\s*(?=--hash|$)"
)


def normalize(name: str) -> str:
    """PEP 503 name: wheels, pip freeze and locks spell names differently."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str) -> dict[str, Pin]:
    """Parse a pip-compile/uv hashed lock into {normalized name: Pin}."""
    pins: dict[str, Pin] = {}
    logical = re.sub(r"\\\s*\n", " ", text)
    for raw in logical.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        m = _PIN_RE.match(line)
        if not m:
            raise BuildError(f"cannot parse lock line {raw.strip()!r}: expected name==version --hash=...")
        name = normalize(m.group(1))
        hashes = tuple(re.findall(r"--hash[= ](\w+:[0-9a-fA-F]+)", line))
        pins[name] = Pin(name, m.group(2), hashes, (m.group(3) or "").strip())
    return pins


def read_lock(path: Path) -> dict[str, Pin]:
    try:
        data = read_bytes(path)
    except FileNotFoundError:
        raise BuildError(f"lock file {path} is missing: run `make lock`") from None
    return dict(_parsed(data))


@functools.lru_cache(maxsize=16)
def _parsed(data: bytes) -> dict[str, Pin]:
    # Keyed by the bytes read_bytes keeps: the same object while the file is unchanged.
    return parse_lock(data.decode())


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise UnknownBackend(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")


def lock_path(backend: str | None = None) -> Path:
    """The union lock (backend None) or a node image's subset lock."""
    if backend is None:
        return images_dir() / UNION_LOCK
    check_backend(backend)
    return images_dir() / f"{backend}.lock"


def notebook_lock_path(backend: str) -> Path:
    """The lock of a backend's optional notebook layer (JupyterLab on top of the node lock)."""
    check_backend(backend)
    return images_dir() / f"{backend}-notebook.lock"


def client_lock_path() -> Path:
    """The lock of the client layer (``images/client.in``): the host command line's packages."""
    return images_dir() / "client.lock"


def lock_hash(path: str | Path | None = None) -> str:
    """sha256 hex of the union lock: the one number saying 'same environment'."""
    p = Path(path) if path else lock_path()
    try:
        return lockhash.lock_hash(p)
    except FileNotFoundError:
        raise BuildError(f"lock file {p} is missing: run `make lock`") from None


def subset_problems(subset: dict[str, Pin], union: dict[str, Pin]) -> list[str]:
    """Why a node lock is not a pinned subset of the union lock (empty if it is)."""
    problems = []
    for name, pin in sorted(subset.items()):
        u = union.get(name)
        if u is None:
            problems.append(f"{name} is not in {UNION_LOCK}")
        elif u.version != pin.version:
            problems.append(f"{name}=={pin.version} but {UNION_LOCK} has {u.version}")
        elif not set(pin.hashes) <= set(u.hashes):
            problems.append(f"{name}=={pin.version} has hashes {UNION_LOCK} does not list")
    return problems


def last_error(text: str) -> str:
    """The line of a tool's output that says what went wrong (the last ``ERROR``, else the last line)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errs = [ln for ln in lines if ln.startswith(("ERROR", "error"))]
    return (errs or lines or ["(no output)"])[-1]


def _uv() -> list[str]:
    env = os.environ.get("UV")
    if env:
        return [env]
    found = shutil.which("uv")
    if found:
        return [found]
    return [sys.executable, "-m", "uv"]


def compile_locks(*, union: bool = False) -> list[Path]:
    """Recompile the node locks (and the union lock if asked) with uv; returns the files written.

    The node locks use the union lock as constraints, so a version can only
    differ if the union lock changes, and then both are recompiled together.
    """
    d = images_dir()
    common = ["pip", "compile", "--quiet", "--no-header", "--generate-hashes"]
    common += ["--python-version", PYTHON_MINOR, "--python-platform", "x86_64-manylinux_2_36"]
    jobs = []
    if union:
        jobs.append((["requirements.in", "-o", UNION_LOCK], d / UNION_LOCK))
    for b in BACKENDS:
        jobs.append((["-c", UNION_LOCK, f"{b}.in", "-o", f"{b}.lock"], d / f"{b}.lock"))
    # The notebook layers add packages the union lock lacks; what both have keeps the union's pin.
    notebooks = [b for b in BACKENDS if (d / f"{b}-notebook.in").is_file()]
    for b in notebooks:
        jobs.append(
            (["-c", UNION_LOCK, f"{b}-notebook.in", "-o", f"{b}-notebook.lock"], d / f"{b}-notebook.lock")
        )
    # The client layer likewise: a subset of the union lock (the host has every package of it).
    jobs.append((["-c", UNION_LOCK, "client.in", "-o", "client.lock"], d / "client.lock"))
    out = []
    for args, target in jobs:
        r = subprocess.run(_uv() + common + args, cwd=d, capture_output=True, text=True)
        if r.returncode:
            raise BuildError(f"uv pip compile for {target.name} failed: {last_error(r.stderr)}")
        out.append(target)
    u = read_lock(d / UNION_LOCK)
    for b in BACKENDS:
        probs = subset_problems(read_lock(d / f"{b}.lock"), u)
        if probs:
            raise BuildError(f"{b}.lock is not a subset of {UNION_LOCK}: {'; '.join(probs)}")
    probs = subset_problems(read_lock(d / "client.lock"), u)
    if probs:
        raise BuildError(f"client.lock is not a subset of {UNION_LOCK}: {'; '.join(probs)}")
    for b in notebooks:
        shared = {n: p for n, p in read_lock(d / f"{b}-notebook.lock").items() if n in u}
        probs = subset_problems(shared, u)
        if probs:
            raise BuildError(f"{b}-notebook.lock disagrees with {UNION_LOCK}: {'; '.join(probs)}")
    return out
