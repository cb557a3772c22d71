"""The nodes' logs: as text per node, into files, printed, and followed.

Every runtime's ``logs`` (printing) and ``node_logs`` (text per node) are
built on this. ``Runtime.node_logs(name, *, since=None, tail=None,
timestamps=False) -> dict[str, str]``: ``since`` is epoch seconds, a
duration back from now (``10m``, ``30s``) or a timestamp (:func:`parse_since`);
``tail`` the last lines per node (``None``: all); ``timestamps`` starts each
line with its RFC 3339 time. A node is named by its short name in the cluster:
``scheduler``, ``worker-1`` (a compose or local worker's number, a swarm
task's slot) or ``worker-<host name>`` (a testcontainers worker, as it
registers); a Spark worker's executors add ``<worker>.<app>.<executor>.stdout``
and ``.stderr``. Printed lines start with that name (``worker-1 | ...``).

Containers give their logs with the engine's timestamps; a local node writes
a plain file, so a line's time is the stamp it starts with (Dask's logging,
Spark's log4j), else the time of the stamped line above it (a traceback).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from clusterkit import labels
from clusterkit.errors import InvalidValue
from clusterkit.facts import SPARK

#: How often a follow (:mod:`clusterkit.runtimes.follow`) looks for new lines, new nodes and a cluster that is gone (seconds).
POLL = 0.25

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_LINE_STAMPS = (
    (re.compile(r"^(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2})(?:[.,](\d{1,9}))?"), "%Y-%m-%d %H:%M:%S"),
    (re.compile(r"^(\d{2}/\d{2}/\d{2} \d{2}:\d{2}:\d{2})"), "%y/%m/%d %H:%M:%S"),
)
#: Where a Spark worker keeps its executors' output: ``<work dir>/<app>/<executor>/stdout``.
_EXECUTOR_FIND = (
    'find "${SPARK_WORKER_DIR:-/tmp}" -type f -path "*/app-*/*" '
    "\\( -name stdout -o -name stderr \\) -printf '%T@ %p\\n' 2>/dev/null"
)


def parse_since(value: float | str | None, now: float | None = None) -> float | None:
    """``--since`` as epoch seconds: a duration back from now, a timestamp, or Unix seconds (as docker's).

    >>> parse_since("10m", now=1000.0), parse_since("1h30m", now=6000.0), parse_since(None)
    (400.0, 600.0, None)
    >>> parse_since("2026-01-02T03:04:05Z"), parse_since("1767323045.5")
    (1767323045.0, 1767323045.5)
    """
    if value is None or isinstance(value, (int, float)):
        return None if value is None else float(value)
    text = value.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    if re.fullmatch(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+", text):
        seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(text))
        return (time.time() if now is None else now) - seconds
    iso = re.sub(r"(\.\d{6})\d+", r"\1", re.sub(r"[zZ]$", "+00:00", text))  # nanoseconds: Python reads micro
    try:
        stamp = dt.datetime.fromisoformat(iso)
    except ValueError:
        raise InvalidValue(
            f"since: {value!r} is not valid; expected a duration (30s, 10m, 1h30m) or a timestamp "
            "(2026-01-02T15:04:05Z)"
        ) from None
    return (stamp if stamp.tzinfo else stamp.astimezone()).timestamp()  # no zone: this machine's time


def parse_tail(value: int | str | None) -> int | None:
    """``--tail``: a line count, or ``all`` (``None``).

    >>> parse_tail("20"), parse_tail("all"), parse_tail(None)
    (20, None, None)
    """
    if value is None or value == "all":
        return None
    try:
        count = int(value)
    except ValueError:
        count = -1
    if count < 0:
        raise InvalidValue(f"tail: {value!r} is not valid; expected a number of lines (>= 0) or 'all'")
    return count


def rfc3339(t: float) -> str:
    """Epoch seconds as the engine stamps a log line.

    >>> rfc3339(0.5)
    '1970-01-01T00:00:00.500000000Z'
    """
    whole = int(t)
    micros = min(999_999, round((t - whole) * 1e6))  # what a float holds of a time of day
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{micros:06d}000Z"


def line_time(line: str) -> float | None:
    """When a log line was written, from the stamp it starts with (this machine's time zone).

    >>> line_time("no stamp") is None
    True
    >>> line_time("2026-01-02 03:04:05,250 - distributed.scheduler - INFO") - line_time("26/01/02 03:04:05 INFO")
    0.25
    """
    for pattern, fmt in _LINE_STAMPS:
        found = pattern.match(line)
        if found:
            try:
                when = time.mktime(time.strptime(found.group(1).replace("T", " "), fmt))
            except ValueError:
                return None
            fraction = found.group(2) if found.lastindex and found.lastindex > 1 else None
            return when + (float(f"0.{fraction}") if fraction else 0.0)
    return None


def select(text: str, *, since: float | None, tail: int | None, timestamps: bool, first: float) -> str:
    """The lines of a plain log ``logs`` shows: written from ``since`` on, the last ``tail``, stamped if asked.

    A line without a stamp has the time of the stamped line above it; lines
    above the first stamp have that first stamp's time, else ``first``.

    >>> select("x\\n2026-01-02 03:04:05 a\\nb\\n", since=None, tail=2, timestamps=False, first=0)
    '2026-01-02 03:04:05 a\\nb\\n'
    """
    lines = text.splitlines()
    last = next((t for t in map(line_time, lines) if t is not None), first)
    timed = []
    for line in lines:
        last = line_time(line) or last
        timed.append((last, line))
    if since is not None:
        timed = [(t, line) for t, line in timed if t >= since]
    if tail is not None:
        timed = timed[len(timed) - tail :] if tail else []
    return "".join(f"{rfc3339(t)} {line}\n" if timestamps else f"{line}\n" for t, line in timed)


def wanted(key: str, service: str | None) -> bool:
    """Node ``key`` is one ``logs SERVICE`` names (``scheduler``, ``worker``, or one node)."""
    return service is None or key == service or key.startswith((f"{service}-", f"{service}."))


def write(found: dict[str, str], directory: str | Path) -> list[Path]:
    """One file per node, ``<directory>/<node>.log``; returns their paths."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for key, text in found.items():
        path = folder / (re.sub(r"[^A-Za-z0-9._-]+", "_", key) + ".log")
        path.write_text(text)
        paths.append(path)
    return paths


class Printer:
    """Prints a node's lines after its name, the names aligned."""

    def __init__(self) -> None:
        self.width = 0

    def __call__(self, key: str, line: str) -> None:
        self.width = max(self.width, len(key))
        print(f"{key:<{self.width}} | {line}", flush=True)

    def text(self, found: dict[str, str]) -> None:
        self.width = max([self.width, *map(len, found)])
        for key, text in found.items():
            for line in text.splitlines():
                self(key, line)


# -- local files ----------------------------------------------------------------


def executor_files(work_dir: Path) -> dict[str, Path]:
    """A local Spark worker's executor outputs, as ``<app>.<executor>.<stream>``."""
    found = sorted(work_dir.glob("**/app-*/*/std*"))
    return {".".join(p.parts[-3:]): p for p in found if p.name in ("stdout", "stderr")}


def file_text(path: Path, *, since: float | None, tail: int | None, timestamps: bool) -> str:
    """The selected lines of a local node's log file ("" when there is none)."""
    try:
        text, first = path.read_text(errors="replace"), path.stat().st_mtime
    except OSError:
        return ""
    return select(text, since=since, tail=tail, timestamps=timestamps, first=first)


# -- containers -------------------------------------------------------------------


def container_key(container: Any) -> str:
    """``scheduler``; ``worker-<n>`` (compose's container number) or ``worker-<host name>``."""
    role = container.labels.get(labels.ROLE) or "node"
    if role == "scheduler":
        return role
    number = container.labels.get("com.docker.compose.container-number")
    return f"{role}-{number or container.attrs['Config']['Hostname']}"


def node_containers(containers: Iterable[Any]) -> list[tuple[str, Any]]:
    """The scheduler and worker containers (not clients, not forwarders), by key: scheduler first, oldest first."""
    nodes = [c for c in containers if c.labels.get(labels.ROLE) in ("scheduler", "worker")]
    nodes.sort(key=lambda c: (c.labels.get(labels.ROLE) != "scheduler", c.attrs["Created"]))
    return [(container_key(c), c) for c in nodes]


def engine_options(since: float | None, tail: int | None, timestamps: bool) -> dict[str, Any]:
    options: dict[str, Any] = {"stdout": True, "stderr": True, "timestamps": timestamps}
    options["tail"] = "all" if tail is None else tail
    if since is not None and since > 0:
        options["since"] = since
    return options


def executor_logs(container: Any, key: str, **options: Any) -> dict[str, str]:
    """A running Spark worker container's executor outputs, as ``<key>.<app>.<executor>.<stream>``."""
    if container.labels.get(labels.BACKEND) != SPARK.name or container.status != "running":
        return {}
    found = container.exec_run(["sh", "-c", _EXECUTOR_FIND])
    texts = {}
    for entry in found.output.decode(errors="replace").splitlines():
        mtime, _, path = entry.partition(" ")
        cat = container.exec_run(["cat", path])
        if cat.exit_code == 0:
            text = cat.output.decode(errors="replace")
            texts[".".join([key, *Path(path).parts[-3:]])] = select(text, first=float(mtime), **options)
    return texts


def containers_text(
    containers: Iterable[Any], *, since: float | None, tail: int | None, timestamps: bool, executors: bool
) -> dict[str, str]:
    """Each node container's log (and, ``executors``, a Spark worker's executor outputs) as text."""
    found = {}
    for key, container in node_containers(containers):
        data = container.logs(**engine_options(since, tail, timestamps))
        found[key] = data.decode(errors="replace")
        if executors and key != "scheduler":
            found.update(executor_logs(container, key, since=since, tail=tail, timestamps=timestamps))
    return found


# -- swarm services -------------------------------------------------------------------

_SWARM_LINE = re.compile(r"^(?P<ts>\S+Z )?\S+?\.(?P<slot>\d+)(?:\.[a-z0-9]+)?@\S+\s+\| ?(?P<msg>.*)$")


def swarm_text(output: str, role: str) -> dict[str, str]:
    """``docker service logs --no-task-ids`` of one service, split by task slot: ``scheduler``, ``worker-<slot>``.

    >>> swarm_text("ck_worker.2@n1    | hello\\nck_worker.1@n2    | hi\\n", "worker")
    {'worker-2': 'hello\\n', 'worker-1': 'hi\\n'}
    """
    found: dict[str, str] = {}
    key = None
    for line in output.splitlines():
        parsed = _SWARM_LINE.match(line)
        if parsed:
            key = role if role == "scheduler" else f"{role}-{parsed['slot']}"
            line = (parsed["ts"] or "") + parsed["msg"]
        if key is not None:
            found[key] = found.get(key, "") + line + "\n"
    return found
