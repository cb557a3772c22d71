"""The extras' pin files, generated from the node locks: ``python -m clusterkit.images.pins``.

``pyproject.toml`` reads each extra's requirements from
``images/extras-<extra>.txt`` (``dynamic = ["optional-dependencies"]``), so
the pins live in one place, derived from the locks: after ``make lock`` run
``python -m clusterkit.images.pins --write``; without ``--write`` it checks
and exits 1 naming the stale files (``tests/unit/test_packaging.py`` does the
same). Which packages each extra pins is :mod:`clusterkit.extras`'s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clusterkit import extras
from clusterkit.errors import BuildError
from clusterkit.facts import BACKENDS
from clusterkit.images.locks import lock_path, read_lock
from clusterkit.images.paths import images_dir


def lock_versions(backend: str) -> dict[str, str]:
    """{name: version} of a backend's node lock."""
    return {name: pin.version for name, pin in read_lock(lock_path(backend)).items()}


def _all_versions() -> dict[str, str]:
    merged: dict[str, str] = {}
    for backend in BACKENDS:
        for name, version in lock_versions(backend).items():
            if merged.setdefault(name, version) != version:
                raise BuildError(f"{name} is {merged[name]} in one node lock and {version} in {backend}.lock")
    return merged


def expected() -> dict[str, str]:
    """{file name in images/: the text it must hold}, one per extra."""
    out = {}
    for extra in extras.EXTRAS:
        if extra in BACKENDS:
            versions, source = lock_versions(extra), lock_path(extra).name
        elif extra == extras.ALL:
            versions, source = _all_versions(), ", ".join(lock_path(b).name for b in BACKENDS)
        else:
            versions, source = {}, "clusterkit/extras.py"
        out[extras.pin_file(extra)] = extras.render(extra, versions, source)
    return out


def stale(directory: Path | None = None) -> list[str]:
    """The pin files in ``directory`` (default: images/) that are missing or differ from the locks."""
    d = directory or images_dir()
    return [
        name
        for name, text in expected().items()
        if not (d / name).is_file() or (d / name).read_text() != text
    ]


def write(directory: Path | None = None) -> list[Path]:
    """Write the pin files that changed; returns them."""
    d = directory or images_dir()
    changed = []
    for name in stale(d):
        (d / name).write_text(expected()[name])
        changed.append(d / name)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clusterkit.images.pins", description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the stale pin files")
    args = parser.parse_args(argv)
    if args.write:
        for p in write():
            print(f"wrote {p}")
        return 0
    bad = stale()
    for name in bad:
        print(
            f"{images_dir() / name} differs from the node locks: run python -m clusterkit.images.pins --write"
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
