"""The host wheelhouse: every wheel of the union lock for the node platform, hash-checked.

The node build has no network, so its packages come from here: downloaded
once per lock hash into ``<cache dir>/wheelhouse/<hash16>`` and reused by
every later build. Source-only packages (pyspark) are downloaded as
hash-checked sdists and built into pure wheels; ``manifest.json`` records the
hash the image build must then require for them. (The module is ``wheels``,
not ``wheelhouse``: ``images.wheelhouse`` is the function.)
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

from clusterkit.errors import BuildError
from clusterkit.images import transcript
from clusterkit.images.locks import PYTHON_MINOR, Pin, last_error, lock_hash, lock_path, normalize, read_lock
from clusterkit.images.paths import cache_dir
from clusterkit.progress import Progress, quiet

# Wheels are chosen for the node, not the host: CPython 3.11 on Debian
# bookworm (glibc 2.36), x86_64.
WHEEL_PLATFORM = "manylinux_2_36_x86_64"
# pip does not widen a --platform to older glibc tags by itself.
WHEEL_PLATFORMS = [f"manylinux_2_{v}_x86_64" for v in range(36, 16, -1)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
]
WHEEL_PYTHON = PYTHON_MINOR.replace(".", "")


def wheelhouse_ready(lock: Path | None = None) -> bool:
    """Whether the wheelhouse of the union lock (or ``lock``) is made already (no download due)."""
    key = lock_hash(lock or lock_path())[:16]
    return (cache_dir() / "wheelhouse" / key / "manifest.json").exists()


def wheelhouse(lock: Path | None = None, *, progress: Progress = quiet) -> Path:
    """Download (once per lock hash) every wheel of the union lock (or ``lock``) for the node platform.

    Returns the folder; ``manifest.json`` in it maps each package to its
    wheel file and the hash the image build must require.
    """
    from filelock import FileLock

    lock = lock or lock_path()
    pins = read_lock(lock)
    key = lock_hash(lock)[:16]
    root = cache_dir() / "wheelhouse"
    final = root / key
    if (final / "manifest.json").exists():
        return final
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{key}.lock")):
        if (final / "manifest.json").exists():
            return final
        doing = f"downloading {len(pins)} wheels for cp{WHEEL_PYTHON}/{WHEEL_PLATFORM}"
        with transcript.step(progress, "wheelhouse", f"wheelhouse-{key}", doing) as log:
            work = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=root))
            try:
                manifest = _fill_wheelhouse(work, pins, log)
                (work / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
                for scratch in ("built", "binary.txt", "source.txt"):
                    p = work / scratch
                    shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
                if final.exists():
                    shutil.rmtree(final)
                work.rename(final)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    return final


def _pip(args: list[str], log: transcript.Transcript):
    return transcript.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], log)


def _fill_wheelhouse(work: Path, pins: dict[str, Pin], log: transcript.Transcript) -> dict:
    wheels = work / "wheels"
    wheels.mkdir()
    target = [a for p in WHEEL_PLATFORMS for a in ("--platform", p)]
    target += ["--python-version", WHEEL_PYTHON, "--implementation", "cp", "--abi", f"cp{WHEEL_PYTHON}"]
    source_only: set[str] = set()
    # Binary wheels first; a package with no wheel for the node platform is
    # retried below as an sdist (pyspark is one).
    while True:
        todo = [p for n, p in pins.items() if n not in source_only]
        if not todo:
            break
        req = work / "binary.txt"
        req.write_text("\n".join(p.line() for p in todo) + "\n")
        download = ["download", "--no-deps", "--require-hashes", "--only-binary=:all:", *target]
        r = _pip([*download, "-d", str(wheels), "-r", str(req)], log)
        if r.returncode == 0:
            break
        missing = missing_distribution(r.stdout)
        if missing is None or missing in source_only or missing not in pins:
            raise log.error(f"pip download failed: {last_error(r.stdout)}")
        source_only.add(missing)
    built: dict[str, str] = {}
    if source_only:
        built = _build_source_wheels(work, wheels, [pins[n] for n in sorted(source_only)], log)
    manifest: dict[str, dict] = {}
    for f in sorted(wheels.iterdir()):
        name = wheel_name(f.name)
        if name not in pins:
            continue
        manifest[name] = {
            "file": f.name,
            "version": pins[name].version,
            "hashes": [built[name]] if name in built else list(pins[name].hashes),
            "built_from_sdist": name in built,
        }
    missing_names = set(pins) - set(manifest)
    if missing_names:
        raise log.error(f"no wheel was obtained for {', '.join(sorted(missing_names))}")
    return manifest


def missing_distribution(output: str) -> str | None:
    """The package pip says it has no distribution of, normalized, or None."""
    m = re.search(r"No matching distribution found for ([A-Za-z0-9._-]+)", output)
    return normalize(m.group(1)) if m else None


def _build_source_wheels(
    work: Path, wheels: Path, pins: list[Pin], log: transcript.Transcript
) -> dict[str, str]:
    """Pure wheels for the source-only pins, built (or taken from pip's wheel cache) from hash-checked sdists.

    ``pip wheel`` by requirement, not by a downloaded file: the host venv's
    install (``make venv``, same lock) has already built these wheels from
    the same sdists, and pip's cache gives them back by that link, so a
    fresh machine builds pyspark's ~300 MB wheel once, not twice.
    """
    req = work / "source.txt"
    req.write_text("\n".join(p.line() for p in pins) + "\n")
    names = ", ".join(f"{p.name}=={p.version}" for p in pins)
    out = work / "built"
    r = _pip(["wheel", "--no-deps", "--require-hashes", "-w", str(out), "-r", str(req)], log)
    if r.returncode:
        raise log.error(
            f"pip could not build {names}: no wheel for cp{WHEEL_PYTHON}/{WHEEL_PLATFORM}, and no sdist "
            f"on the package index that builds, or the index is unreachable ({last_error(r.stdout)}); "
            "fix the name or version in images/requirements.in and run `make lock`"
        )
    built: dict[str, str] = {}
    for whl in sorted(out.iterdir()):
        tags = whl.name[:-4].split("-")[-3:]
        if tags[1:] != ["none", "any"]:
            raise BuildError(
                f"{whl.name} is a platform wheel built from an sdist; only pure-Python "
                "sdists can be used, the node platform needs a published wheel"
            )
        dest = wheels / whl.name
        whl.rename(dest)
        built[wheel_name(whl.name)] = sha256(dest)
    return built


def sha256(path: Path) -> str:
    """``sha256:<hex>`` of a file, as pip's ``--hash`` wants it."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def wheel_name(filename: str) -> str:
    """The normalized project name of a wheel file."""
    return normalize(filename.split("-", 1)[0])
