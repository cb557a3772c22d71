"""Following the nodes' logs: what they write next, as it comes, until Ctrl-C or the cluster is gone.

Local nodes' files are read like ``tail -f``; containers' logs are streamed by
the engine, one thread per container, interleaved. Lines are printed after
the node's name (:class:`~clusterkit.runtimes.nodelogs.Printer`).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clusterkit.runtimes import nodelogs
from clusterkit.runtimes.nodelogs import POLL, Printer, engine_options, node_containers, rfc3339, select


class _FileTail:
    """The complete lines a file gained since the last read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""

    def read(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                if f.seek(0, 2) < self.offset:  # truncated, or a new file under this name
                    self.offset, self.partial = 0, b""
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        self.offset += len(data)
        *complete, self.partial = (self.partial + data).split(b"\n")
        return [line.decode(errors="replace") for line in complete]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


def follow_files(
    sources: Callable[[], dict[str, Path] | None],
    *,
    since: float | None,
    tail: int | None,
    timestamps: bool,
) -> None:
    """Print the nodes' log files and what they write next, like ``tail -f``, until Ctrl-C.

    ``sources``: the node files now (asked again every :data:`POLL` seconds, so
    an added worker is followed too), ``None`` once the cluster is gone.
    Nodes there at the start show ``since``/``tail`` of their past; later ones all of it.
    """
    tails: dict[str, _FileTail] = {}
    printer, started = Printer(), False
    try:
        while True:
            current = sources()
            for key, path in (current or {}).items():
                if key not in tails:
                    tails[key] = _FileTail(path)
                    past = "\n".join(tails[key].read())
                    shown = tail if not started else None
                    options = {"since": since, "tail": shown, "timestamps": timestamps}
                    printer.text({key: select(past, first=_mtime(path), **options)})
            started = True
            for key, source in tails.items():
                for line in source.read():
                    now = time.time()
                    if since is None or now >= since:
                        printer(key, f"{rfc3339(now)} {line}" if timestamps else line)
            if current is None:
                return
            time.sleep(POLL)
    except KeyboardInterrupt:
        return


class _Stream(threading.Thread):
    """One container's log stream, line by line into a queue (its own engine client)."""

    def __init__(
        self, key: str, cid: str, lines: queue.Queue[tuple[str, str]], options: dict[str, Any]
    ) -> None:
        super().__init__(daemon=True, name=f"clusterkit-logs-{key}")
        self.key, self.cid, self.lines, self.options = key, cid, lines, options
        self.stream: Any = None
        self.ended: float | None = None

    def run(self) -> None:
        from clusterkit.engine import docker_client

        buffer = b""
        try:
            container = docker_client().containers.get(self.cid)
            self.stream = container.logs(stream=True, follow=True, **self.options)
            for chunk in self.stream:
                *complete, buffer = (buffer + chunk).split(b"\n")
                for line in complete:
                    self.lines.put((self.key, line.decode(errors="replace")))
        except Exception:  # noqa: BLE001, S110 - the container went away, or its stream was closed
            pass
        finally:
            if buffer:
                self.lines.put((self.key, buffer.decode(errors="replace")))
            self.ended = time.time()

    def close(self) -> None:
        if self.stream is not None:
            try:
                self.stream.close()
            except Exception:  # noqa: BLE001, S110 - already closed
                pass


def print_containers(
    find: Callable[[], list[Any]], service: str | None, *, follow: bool = False, **options: Any
) -> None:
    """A container runtime's ``logs``: the node containers ``find`` gives, each line after the node's name."""
    since = nodelogs.parse_since(options.get("since"))
    tail, timestamps = options.get("tail", 100), bool(options.get("timestamps"))
    if follow:
        follow_containers(find, service, since=since, tail=tail, timestamps=timestamps)
        return
    found = nodelogs.containers_text(find(), since=since, tail=tail, timestamps=timestamps, executors=False)
    Printer().text({key: text for key, text in found.items() if nodelogs.wanted(key, service)})


def follow_containers(
    find: Callable[[], list[Any]],
    service: str | None,
    *,
    since: float | None,
    tail: int | None,
    timestamps: bool,
) -> None:
    """Print the node containers' logs and what they write next, interleaved, until Ctrl-C or they are gone.

    ``find``: the cluster's containers now, asked again every second: an added
    worker is followed from its start, a restarted one from where its stream
    stopped; once no container is left and every stream has ended, it returns.
    """
    lines: queue.Queue[tuple[str, str]] = queue.Queue()
    streams: dict[str, _Stream] = {}
    printer, first = Printer(), True
    try:
        while True:
            try:
                current = [(k, c) for k, c in node_containers(find()) if nodelogs.wanted(k, service)]
            except Exception:  # noqa: BLE001 - the engine or the cluster went away
                current = []
            for key, container in current:
                old = streams.get(container.id)
                if old is not None and (old.ended is None or container.status != "running"):
                    continue  # still streaming, or not running again yet
                if old is None:
                    options = engine_options(since, tail if first else None, timestamps)
                else:
                    options = engine_options(old.ended, None, timestamps)
                streams[container.id] = _Stream(key, container.id, lines, options)
                streams[container.id].start()
            first = False
            if not current and all(s.ended is not None for s in streams.values()):
                _drain(lines, printer, 0)
                return
            _drain(lines, printer, 1.0)
    except KeyboardInterrupt:
        return
    finally:
        for stream in streams.values():
            stream.close()


def _drain(lines: queue.Queue[tuple[str, str]], printer: Printer, seconds: float) -> None:
    """Print the queued lines for ``seconds`` (at least what is queued now)."""
    deadline = time.monotonic() + seconds
    while True:
        remaining = deadline - time.monotonic()
        try:
            key, line = lines.get(timeout=remaining) if remaining > 0 else lines.get_nowait()
        except queue.Empty:
            return
        printer(key, line)
        if remaining <= 0 and lines.qsize() > 10_000:
            return  # lines come faster than they print: look for new nodes now and then
