"""Host folders the nodes see at the same absolute path (``mounts:``), and the nodes' only scratch space.

A path that works on the client works on every node: each mount is bound at
its own path on the scheduler, every worker and every client container. A
worker's root filesystem is read-only and its scratch space (:data:`SCRATCH`,
``TMPDIR``, Dask's and Spark's local folders) is a tmpfs outside any path a
host could have, so a write to a path the client does not share fails on the
worker (``Read-only file system``) instead of landing, unseen, on its own disk
(:func:`clusterkit.nodes.sealed` says why the scheduler is not sealed).

Pure: parsing and the defaults; the runtimes bind what :func:`parse` returns.

    >>> parse("data", base="/srv/project")
    Mount(path='/srv/project/data', mode='ro')
    >>> str(parse("/tmp/out:rw"))
    '/tmp/out:rw'
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from clusterkit.errors import InvalidValue

#: The nodes' writable scratch folder (a tmpfs): ``TMPDIR``, ``HOME``, Dask's and Spark's local dirs.
SCRATCH = "/run/clusterkit/tmp"
#: Folders of the node image itself: a host folder bound there would replace the node's own.
_SYSTEM = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/opt", "/proc", "/run")
_SYSTEM += ("/sbin", "/sys", "/usr", "/var")
_FIX = "give a folder of your data or project, e.g. `--mount ./data` or `--mount /srv/data:rw`"


@dataclass(frozen=True)
class Mount:
    """One host folder, bound at ``path`` on every node; ``mode`` ``ro`` (default) or ``rw``."""

    path: str
    mode: str = "ro"

    @property
    def read_only(self) -> bool:
        return self.mode == "ro"

    def __str__(self) -> str:
        return f"{self.path}:{self.mode}"


def parse(text: str, base: str | os.PathLike[str] | None = None) -> Mount:
    """``PATH[:ro|rw]`` as a :class:`Mount`; a relative ``PATH`` is taken from ``base`` (the current folder).

    >>> parse("/:ro")
    Traceback (most recent call last):
    ...
    clusterkit.errors.InvalidValue: mounts: '/:ro' would replace the node's own / ...
    """
    raw = str(text).strip()
    path, _, mode = raw.rpartition(":") if raw.endswith((":ro", ":rw")) else (raw, "", "ro")
    if not path:
        raise InvalidValue(f"mounts: {text!r} names no folder; {_FIX}")
    folder = os.path.normpath(os.path.join(os.fspath(base or os.getcwd()), os.path.expanduser(path)))
    system = next((s for s in _SYSTEM if folder == s or folder.startswith(s + "/")), "/" * (folder == "/"))
    if system:
        raise InvalidValue(
            f"mounts: {text!r} would replace the node's own {system} (the image's files); {_FIX}"
        )
    return Mount(folder, mode)


def normalize(entries: object, base: str | os.PathLike[str] | None = None) -> tuple[str, ...]:
    """The spec's ``mounts`` as sorted ``PATH:MODE`` strings; one path twice keeps ``rw`` if either asks.

    >>> normalize(["/a", "/b:rw", "/a:rw"])
    ('/a:rw', '/b:rw')
    """
    if isinstance(entries, (str, os.PathLike)):
        entries = [entries]
    if not isinstance(entries, (list, tuple)):
        raise InvalidValue(f"mounts: {entries!r} is not a list of folders; {_FIX}")
    found: dict[str, str] = {}
    for entry in entries:
        mount = parse(str(entry), base)
        if found.get(mount.path) != "rw":
            found[mount.path] = mount.mode
    return tuple(str(Mount(p, m)) for p, m in sorted(found.items()))


def of(spec_mounts: tuple[str, ...] | None) -> list[Mount]:
    """The spec's (normalized) ``mounts`` as :class:`Mount` objects."""
    return [parse(m) for m in spec_mounts or ()]


def default_folder(project: str | os.PathLike[str]) -> str | None:
    """The project folder shared by default, or ``None`` when it is ``/`` or the home folder itself.

    >>> default_folder("/"), default_folder(Path.home()), default_folder("/srv/p")
    (None, None, '/srv/p')
    """
    folder = Path(project).resolve()
    if folder == Path("/") or folder == Path.home().resolve():
        return None
    try:
        parse(str(folder))
    except InvalidValue:
        return None
    return str(folder)


def missing(spec_mounts: tuple[str, ...] | None) -> list[str]:
    """The mounted folders that do not exist here (a bind would make an empty, root-owned one)."""
    return [m.path for m in of(spec_mounts) if not os.path.isdir(m.path)]


def covering(path: str, spec_mounts: tuple[str, ...] | None) -> Mount | None:
    """The mount ``path`` lies in, if any (the deepest).

    >>> covering("/srv/p/data/x.csv", ("/srv/p:ro", "/srv/p/data:rw"))
    Mount(path='/srv/p/data', mode='rw')
    """
    inside = [m for m in of(spec_mounts) if path == m.path or path.startswith(m.path.rstrip("/") + "/")]
    return max(inside, key=lambda m: len(m.path)) if inside else None


def explain(path: str, spec_mounts: tuple[str, ...] | None, *, write: bool) -> str:
    """One line saying why a node cannot read or write ``path``, and the option that fixes it.

    >>> explain("/tmp/out", ("/srv/p:ro",), write=True)
    "/tmp/out is not shared with the cluster's nodes (mounts: /srv/p:ro); add it: `--mount /tmp/out:rw` or mounts: ['/tmp/out:rw']"
    """
    mount = covering(path, spec_mounts)
    shared = ", ".join(spec_mounts or ()) or "none"
    if mount is None:
        mode = ":rw" if write else ""
        return (
            f"{path} is not shared with the cluster's nodes (mounts: {shared}); "
            f"add it: `--mount {path}{mode}` or mounts: ['{path}{mode}']"
        )
    if write and mount.read_only:
        return f"{path} is in {mount.path}, which the nodes see read-only; share it with `--mount {mount.path}:rw`"
    return f"{path} is in the shared folder {mount}"


#: How a node says it could not write (Dask: Python's OSError; Spark: Hadoop's) or read a path.
_REFUSED = (
    (re.compile(r"Read-only file system: '([^']+)'"), True),
    (re.compile(r"Mkdirs failed to create (?:file:)?(/\S+?)(?: \(|\s|$)"), True),
    (re.compile(r"No such file or directory: '(/[^']+)'"), False),
    (re.compile(r"Path does not exist: file:(/\S+?)(?:\.\s|\s|$)"), False),
)


def refused_paths(text: str) -> list[tuple[str, bool]]:
    """``(path, was a write)`` for each path an error text says a node could not write or read.

    >>> refused_paths("OSError: [Errno 30] Read-only file system: '/tmp/out'")
    [('/tmp/out', True)]
    """
    found: dict[str, bool] = {}
    for pattern, write in _REFUSED:
        for match in pattern.finditer(text):
            found.setdefault(match.group(1).split("/_temporary")[0], write)  # Spark's attempt folders
    return list(found.items())


def engine_elsewhere(docker_root_dir: str | None) -> bool:
    """Does this client drive an engine whose files it cannot see (Docker-outside-of-Docker)?

    Inside a container (``/.dockerenv``) whose file system lacks the engine's data
    folder, a path here is not the same path on the engine's host: a bind would
    show the nodes another folder, or an empty one.
    """
    return os.path.exists("/.dockerenv") and not (docker_root_dir and os.path.isdir(docker_root_dir))
