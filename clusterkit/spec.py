"""The cluster as plain data: a frozen ``ClusterSpec`` and how it is resolved.

Every runtime (local processes, compose, testcontainers) renders from this one
object, so a value is validated once, here, and never re-derived elsewhere.
Configuration is resolved in one place and one order: explicit argument, then
``CLUSTERKIT_*`` environment variable, then the YAML file, then defaults.

    >>> from clusterkit.facts import SPARK
    >>> spec = resolve_spec(overrides={"backend": SPARK.name, "workers": 3})
    >>> spec.backend == SPARK.name, spec.workers, spec.scheduler_port
    (True, 3, 7077)
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clusterkit.errors import InvalidValue, SpecFileError, UnknownBackend, UnknownKey
from clusterkit.facts import BACKENDS, DEFAULT_BACKEND, FACTS
from clusterkit.mounts import normalize as normalize_mounts
from clusterkit.strictyaml import DuplicateKey, StrictLoader

#: ``tls``: encrypted and authenticated node and client connections; ``none``: plain TCP.
SECURITY = ("none", "tls")
DEFAULT_SPEC_FILE = "clusterkit.yaml"

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}$")
_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_memory(value: Any, field_name: str = "memory") -> int:
    """Parse ``2g``, ``512MiB``, ``1.5GB`` or a byte count into bytes.

    Binary units throughout (``1g`` = 2**30), as both Dask and Spark read them.

    >>> parse_memory("512m")
    536870912
    """
    if isinstance(value, bool):
        raise _invalid(field_name, value, "a size such as 512m, 2g or 1.5GiB")
    if isinstance(value, int):
        number, unit = float(value), ""
    else:
        match = _MEMORY_RE.match(str(value))
        if not match:
            raise _invalid(field_name, value, "a size such as 512m, 2g or 1.5GiB")
        number, unit = float(match.group(1)), match.group(2).lower()
    size = int(number * _UNITS[unit])
    if size < 128 * 2**20:
        raise _invalid(field_name, value, "at least 128m (a worker needs room to start)")
    return size


def format_memory(size: int) -> str:
    """Render bytes the way Spark's ``--memory`` expects (``1024m``).

    >>> format_memory(2**30)
    '1024m'
    """
    return f"{size // 2**20}m"


def _invalid(field_name: str, value: Any, accepted: str) -> InvalidValue:
    return InvalidValue(f"{field_name}: {value!r} is not valid; expected {accepted}")


def _as_bool(field_name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off", ""):
        return False
    raise _invalid(field_name, value, "true or false")


def parse_count(field_name: str, value: Any, low: int = 1, high: int = 256) -> int:
    """A count (workers, cores) validated as the spec validates it.

    >>> parse_count("workers", "3")
    3
    """
    return _as_int(field_name, value, low, high, f"an integer from {low} to {high}")


def parse_port(field_name: str, value: Any) -> int:
    """A TCP port, validated as the spec validates ports."""
    return _as_int(field_name, value, 1, 65535, "an integer port from 1 to 65535")


def _as_int(field_name: str, value: Any, low: int, high: int, accepted: str) -> int:
    if isinstance(value, bool):
        raise _invalid(field_name, value, accepted)
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise _invalid(field_name, value, accepted) from None
    if not low <= number <= high:
        raise _invalid(field_name, value, accepted)
    return number


@dataclass(frozen=True)
class ClusterSpec:
    """One cluster: a scheduler and ``workers`` identical workers.

    Attributes:
        name: cluster name; labels, container names and the state file use it.
        backend: ``dask`` or ``spark``.
        workers: number of workers (>= 1).
        cores: threads (Dask) or cores (Spark) per worker.
        memory: memory per worker, in bytes.
        scheduler_port: port of the Dask scheduler / Spark master.
        dashboard_port: Dask dashboard / Spark master web UI.
        connect_port: Spark only: the Spark Connect server's port (``None``: Spark's 15002).
        bind_address: host address that published ports bind to.
        image: node image reference; ``None`` means the image built from the lock.
        env: extra environment for every node.
        security: ``tls`` (Dask: mutual TLS with a per-cluster CA; Spark: an
            authentication secret and RPC encryption) or ``none``; ``None``
            means the runtime's default: ``tls`` on swarm, ``none`` elsewhere.
        encrypted: swarm only: encrypt the overlay network (IPsec).
        max_replicas_per_node: swarm only: at most this many workers on one node.
        notebook: JupyterLab beside the cluster, in its image and on its network
            (:mod:`clusterkit.notebook`; container runtimes only).
        requirements: a requirements file (or ``pyproject.toml``) whose packages go onto every
            node (:mod:`clusterkit.images.project`); relative to the spec file. ``None``: the
            ``pyproject.toml`` of the project ``up`` runs in, if it declares dependencies.
        mounts: host folders every node sees at the same path, as ``PATH:ro|rw``
            (:mod:`clusterkit.mounts`); relative to the spec file. ``None``: the
            runtime's default (the project folder, read-only, where containers run).
        user: ``UID:GID`` the node containers run as; ``None``: the caller's (so files
            written into a read-write mount are the caller's), the image's user on swarm.
    """

    name: str
    backend: str = DEFAULT_BACKEND
    workers: int = 2
    cores: int = 1
    memory: int = 2**30
    scheduler_port: int = 8786
    dashboard_port: int = 8787
    connect_port: int | None = None
    bind_address: str = "127.0.0.1"
    image: str | None = None
    env: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    security: str | None = None
    encrypted: bool = False
    max_replicas_per_node: int | None = None
    notebook: bool = False
    requirements: str | None = None
    mounts: tuple[str, ...] | None = None
    user: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            hint = difflib.get_close_matches(str(self.backend), BACKENDS, n=1)
            fix = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise UnknownBackend(
                f"backend: {self.backend!r} is not a known backend{fix}; "
                f"expected one of {', '.join(BACKENDS)}"
            )
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise _invalid("name", self.name, "lower-case letters, digits, '-' or '_', at most 41 characters")
        set_ = object.__setattr__
        set_(self, "workers", parse_count("workers", self.workers))
        set_(self, "cores", parse_count("cores", self.cores, high=512))
        set_(self, "memory", parse_memory(self.memory))
        set_(self, "scheduler_port", parse_port("scheduler_port", self.scheduler_port))
        set_(self, "dashboard_port", parse_port("dashboard_port", self.dashboard_port))
        if self.scheduler_port == self.dashboard_port:
            raise _invalid("dashboard_port", self.dashboard_port, "a port different from scheduler_port")
        set_(self, "connect_port", self._connect_port())
        try:
            ipaddress.ip_address(self.bind_address)
        except ValueError:
            raise _invalid(
                "bind_address", self.bind_address, "an IP address such as 127.0.0.1 or 0.0.0.0"
            ) from None
        env = self.env.items() if isinstance(self.env, Mapping) else self.env
        try:
            pairs = tuple(sorted((str(k), str(v)) for k, v in env))
        except (TypeError, ValueError):
            raise _invalid("env", self.env, "a mapping of NAME: value") from None
        for key, _ in pairs:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise _invalid("env", key, "variable names of letters, digits and '_'")
        set_(self, "env", pairs)
        if self.security is not None and self.security not in SECURITY:
            raise _invalid("security", self.security, f"one of {', '.join(SECURITY)}")
        set_(self, "encrypted", _as_bool("encrypted", self.encrypted))
        set_(self, "notebook", _as_bool("notebook", self.notebook))
        if self.max_replicas_per_node is not None:
            set_(
                self,
                "max_replicas_per_node",
                parse_count("max_replicas_per_node", self.max_replicas_per_node),
            )
        if self.requirements is not None:
            set_(self, "requirements", os.path.abspath(str(self.requirements)))
        if self.mounts is not None:
            set_(self, "mounts", normalize_mounts(self.mounts))
        if self.user is not None and not re.match(r"^\d{1,10}:\d{1,10}$", str(self.user)):
            raise _invalid("user", self.user, "UID:GID in numbers, such as 1000:1000")
        if self.image is not None and not str(self.image).strip():
            raise _invalid("image", self.image, "an image reference such as clusterkit/dask:abc123")

    def _connect_port(self) -> int | None:
        """The Connect server's port: the backend's default, validated, or ``None`` where none runs."""
        served = FACTS[self.backend].connect_port
        if self.connect_port is None:
            return served
        if served is None:
            raise _invalid(
                "connect_port", self.connect_port, f"nothing: {self.backend} has no Connect server"
            )
        port = parse_port("connect_port", self.connect_port)
        if port in (self.scheduler_port, self.dashboard_port):
            raise _invalid("connect_port", port, "a port other than the scheduler's and the dashboard's")
        return port

    @property
    def scheduler_address(self) -> str:
        """Address a client on this host uses (``127.0.0.1:8786`` by default, ``[::1]:8786`` for ``::``)."""
        host = self.scheduler_host
        return f"{'[' + host + ']' if ':' in host else host}:{self.scheduler_port}"

    @property
    def scheduler_host(self) -> str:
        """The host part of :attr:`scheduler_address`, without brackets: where the ports are published
        (loopback of the same family for the wildcard addresses)."""
        return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.bind_address, self.bind_address)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ClusterSpec:
        """The spec of a running cluster, from what ``to_dict`` recorded.

        A record is not user input: no ``clusterkit.yaml``, no ``CLUSTERKIT_*``
        and no defaults are merged in, so the cluster reads back as it was
        started, whatever folder or environment asks.

        >>> spec = ClusterSpec(name="x", image=None, workers=3)
        >>> ClusterSpec.from_record(spec.to_dict()) == spec
        True
        """
        unknown = set(record) - set(SPEC_KEYS)
        if unknown:
            raise UnknownKey(
                f"recorded spec has unknown keys {sorted(unknown)}: it was written by another version"
            )
        return cls(**dict(record))

    def replace(self, **changes: Any) -> ClusterSpec:
        """Return a copy with ``changes`` applied and validated again."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, the shape ``clusterkit.yaml`` accepts."""
        data = dataclasses.asdict(self)
        data["env"] = dict(self.env)
        data["memory"] = format_memory(self.memory)
        data["mounts"] = list(self.mounts) if self.mounts is not None else None
        return data


SPEC_KEYS = tuple(f.name for f in dataclasses.fields(ClusterSpec))


def find_spec_file(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The nearest ``clusterkit.yaml``: in ``start`` (the current folder) or a folder above it.

    Searched upward as Compose searches for its file, stopping after the home
    folder (a project outside it: at the file system's root).
    """
    here = Path(start or os.getcwd()).resolve()
    home = Path.home().resolve()
    for folder in (here, *here.parents):
        candidate = folder / DEFAULT_SPEC_FILE
        if candidate.is_file():
            return candidate
        if folder == home:
            break
    return None


def load_spec_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``clusterkit.yaml`` (safe loading) into a dict of known keys."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecFileError(
            f"spec file {str(path)!r} does not exist; create it or pass another with --file"
        ) from None
    except OSError as e:
        raise SpecFileError(f"spec file {str(path)!r} cannot be read: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise SpecFileError(
            f"spec file {str(path)!r} is not text (byte {e.start} is not UTF-8); pass a YAML file"
        ) from e
    try:
        data = yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader, stricter
    except DuplicateKey as e:
        raise SpecFileError(f"spec file {str(path)!r}: {e}; keep one") from None
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecFileError(
            f"spec file {str(path)!r} is not valid YAML{line}: {problem}; fix the syntax"
        ) from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecFileError(
            f"spec file {str(path)!r} must be a mapping of keys such as backend: dask, "
            f"not a {type(data).__name__}"
        )
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    if data.get("requirements"):  # relative to the spec file, wherever `up` runs
        data["requirements"] = str((path.parent / str(data["requirements"])).resolve())
    if data.get("mounts") is not None:  # so are the shared folders
        data["mounts"] = normalize_mounts(data["mounts"], base=path.parent.resolve())
    for key in data:
        if key not in SPEC_KEYS:
            hint = difflib.get_close_matches(key, SPEC_KEYS, n=1)
            fix = f"did you mean {hint[0]!r}? " if hint else ""
            raise UnknownKey(
                f"spec file {str(path)!r}: unknown key {key!r}; {fix}accepted keys: {', '.join(SPEC_KEYS)}"
            )
    return data


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    values = {}
    for key in SPEC_KEYS:
        if key == "env":
            continue
        raw = environ.get(f"CLUSTERKIT_{key.upper()}")
        if raw not in (None, ""):
            values[key] = raw.split(",") if key == "mounts" else raw
    return values


def resolve_spec(
    path: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    defaults: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
) -> ClusterSpec:
    """Build a validated spec: overrides, then ``CLUSTERKIT_*``, then file, then defaults.

    Args:
        path: a spec file; ``None`` reads the nearest ``clusterkit.yaml``, if any
            (:func:`find_spec_file`: this folder or one above it).
        overrides: values from flags or arguments (``None`` values are ignored).
        environ: the environment to read (``os.environ`` by default).
        defaults: given the values found so far, returns values for the keys
            nothing set, ahead of the documented defaults (the Python ``Cluster``
            picks a unique name and free ports this way; the CLI keeps the documented ones).

    Returns:
        The ``ClusterSpec``; ports default per backend, the name to the backend.
    """
    environ = os.environ if environ is None else environ
    if path is None:
        path = find_spec_file()
    values: dict[str, Any] = load_spec_file(path) if path is not None else {}
    values.update(_from_environment(environ))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = set(values) - set(SPEC_KEYS)
    if unknown:
        raise UnknownKey(f"unknown spec keys {sorted(unknown)}; accepted: {', '.join(SPEC_KEYS)}")
    backend = values.setdefault("backend", DEFAULT_BACKEND)
    for key, value in (defaults(dict(values)) if defaults else {}).items():
        values.setdefault(key, value)
    row = FACTS.get(backend)  # the ports each project documents as its own
    if row is not None:
        values.setdefault("scheduler_port", row.scheduler_port)
        values.setdefault("dashboard_port", row.dashboard_port)
    values.setdefault("name", str(backend))
    return ClusterSpec(**values)
