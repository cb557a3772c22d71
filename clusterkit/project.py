"""The project's own packages, found from where the client runs: the code the nodes must import.

A task that calls ``mypkg.f`` is pickled as a reference to ``mypkg``; the workers
(and Dask's scheduler, which unpickles graphs) import it, and a node image pinned
once cannot hold code edited a minute ago. This module finds that code and zips
it (standard library only; the backends send the zip):

* the project around the current folder: up to the nearest ``pyproject.toml``,
  ``setup.py`` or ``setup.cfg``; its ``src/`` packages and modules, or, in a flat
  layout, the packages beside it less the folders setuptools' flat layout leaves
  out (``tests``, ``docs``, ``benchmarks`` ...: a test suite imports pytest, which
  nodes do not have);
* every editable install (``direct_url.json`` with ``dir_info.editable``): the same
  in its folder.

clusterkit itself, site-packages, hidden folders and ``__pycache__`` stay behind.
Modules this process imported that none of that holds (a test module, a script's
neighbour) are listed by :func:`unshipped_modules`: the backends pickle their
functions by value instead. ``CLUSTERKIT_SHIP_PROJECT=0`` turns all of it off.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import os
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

#: The environment variable that turns shipping off (``0``, ``false``, ``no``).
ENV = "CLUSTERKIT_SHIP_PROJECT"
#: The plugin name on a Dask scheduler, and the zip's file-name prefix.
NAME = "clusterkit-project"
#: A project with more than this in its packages is not sent (a vendored tree, data files).
MAX_BYTES = 32 * 2**20
_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg")
#: Never shipped: the nodes run their own clusterkit, pinned with the image.
_NEVER = frozenset({"clusterkit"})
#: setuptools' flat-layout exclusions (FlatLayoutPackageFinder.DEFAULT_EXCLUDE), roughly.
_FLAT_SKIP = frozenset(
    "tests test testing docs doc examples example benchmarks benchmark scripts tools "
    "build dist site bin tasks debian rpm venv env".split()
)
_SITE = ("site-packages", "dist-packages")


@dataclasses.dataclass(frozen=True)
class Shipment:
    """A zip of the project's packages: its file name carries the content's digest."""

    filename: str
    data: bytes
    names: tuple[str, ...]
    digest: str


def enabled() -> bool:
    """Whether shipping is on (``CLUSTERKIT_SHIP_PROJECT`` is not ``0``/``false``/``no``)."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def project_root(start: str | Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the current one) with a project file."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if any((folder / marker).is_file() for marker in _MARKERS):
            return folder
    return None


def _in_site(path: Path) -> bool:
    return any(part in _SITE for part in path.parts)


def packages_in(root: Path) -> dict[str, Path]:
    """Top-level packages (folders) and modules (``src/`` only) of the project at ``root``."""
    src = root / "src"
    base = src if src.is_dir() else root
    found: dict[str, Path] = {}
    for child in sorted(base.iterdir()):
        name = child.stem if child.is_file() else child.name
        if not name.isidentifier() or name in _NEVER or _in_site(child):
            continue
        if child.is_dir():
            has_init = (child / "__init__.py").is_file()
            namespace = base is src and any(child.glob("*.py"))
            if (has_init and (base is src or name not in _FLAT_SKIP)) or namespace:
                found[name] = child
        elif base is src and child.suffix == ".py":
            found[name] = child
    return found


def editable_roots() -> list[Path]:
    """Folders of the editable installs this interpreter sees (``pip install -e``), less clusterkit."""
    roots: list[Path] = []
    for dist in metadata.distributions():
        text = dist.read_text("direct_url.json")
        if not text or (dist.metadata["Name"] or "").lower() in _NEVER:
            continue
        try:
            info = json.loads(text)
        except ValueError:
            continue
        url = str(info.get("url", ""))
        if (info.get("dir_info") or {}).get("editable") and url.startswith("file://"):
            folder = Path(unquote(urlparse(url).path))
            if folder.is_dir() and folder not in roots:
                roots.append(folder)
    return roots


def project_packages(start: str | Path | None = None) -> dict[str, Path]:
    """Every package to ship: the current project's, then each editable install's."""
    roots = [r for r in (project_root(start),) if r is not None] + editable_roots()
    found: dict[str, Path] = {}
    for root in roots:
        for name, path in packages_in(root).items():
            found.setdefault(name, path)
    return found


def _files(packages: dict[str, Path]) -> list[tuple[Path, str]]:
    """``(file, name in the zip)``: every file of each package but caches and hidden ones."""
    files: list[tuple[Path, str]] = []
    for path in packages.values():
        if path.is_file():
            files.append((path, path.name))
            continue
        for root, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
            for name in sorted(names):
                if not name.startswith(".") and not name.endswith((".pyc", ".pyo")):
                    full = Path(root, name)
                    files.append((full, full.relative_to(path.parent).as_posix()))
    return files


_CACHE: dict[tuple[tuple[str, int, int], ...], Shipment | None] = {}


def archive(start: str | Path | None = None) -> Shipment | None:
    """The project's packages as one zip, or ``None`` (nothing found, over :data:`MAX_BYTES`,
    or a file that cannot be read: the code then stays behind, the connection goes on).

    Zipped once per content: a stamp of every file's path, size and mtime finds the last
    zip again, and fixed zip timestamps make the digest depend on contents alone.
    """
    try:
        return _archive(start)
    except OSError:
        return None


def _archive(start: str | Path | None) -> Shipment | None:
    packages = project_packages(start)
    files = _files(packages)
    stats = [(p, p.stat()) for p, _ in files]
    stamp = tuple((str(p), s.st_size, s.st_mtime_ns) for p, s in stats)
    if stamp in _CACHE:
        return _CACHE[stamp]
    shipment = None
    size = sum(s.st_size for _, s in stats)
    if size > MAX_BYTES:
        import warnings

        warnings.warn(
            f"clusterkit: the project's packages ({', '.join(sorted(packages))}) hold {size / 2**20:.0f} MiB, "
            f"over {MAX_BYTES // 2**20} MiB: not sent to the nodes (set {ENV}=0 to silence this)",
            stacklevel=3,
        )
    elif files:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for path, arcname in files:
                zf.writestr(zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0)), path.read_bytes())
        data = buffer.getvalue()
        digest = hashlib.sha256(data).hexdigest()[:12]
        shipment = Shipment(f"{NAME}-{digest}.zip", data, tuple(sorted(packages)), digest)
    _CACHE.clear()  # one project per process, mostly: keep the latest only
    _CACHE[stamp] = shipment
    return shipment


@functools.cache
def _system_folders() -> tuple[Path, ...]:
    paths = sysconfig.get_paths()
    found = {paths["stdlib"], paths["platstdlib"], sys.prefix, sys.base_prefix, sys.exec_prefix}
    return tuple(Path(p).resolve() for p in found if p)


def unshipped_modules(shipped: tuple[str, ...] | list[str] = ()) -> list[str]:
    """Modules imported here from ``.py`` files the nodes cannot import: outside site-packages,
    the standard library and this interpreter's prefix, and not in ``shipped`` (nor clusterkit).

    A test module is the usual one: pytest imported it from the project's ``tests/``.
    ``__main__`` is left out: cloudpickle already pickles it by value.
    """
    found = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        top = name.split(".")[0]
        if not file or not file.endswith(".py") or name == "__main__":
            continue
        if top in shipped or top in _NEVER or top in sys.stdlib_module_names:
            continue
        if _outside(file):
            found.append(name)
    return sorted(found)


@functools.cache
def _outside(file: str) -> bool:
    """Whether ``file`` lies outside site-packages and this interpreter's folders (once per file:
    every connection asks again about the same thousand modules)."""
    path = Path(file).resolve()
    return not _in_site(path) and not any(path.is_relative_to(f) for f in _system_folders())
