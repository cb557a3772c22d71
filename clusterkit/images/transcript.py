"""Build transcripts: the raw output of a long step goes to a log file, not to the user.

A wheelhouse download, a base image or a node image each takes from seconds
to minutes and prints hundreds of lines (pip, mmdebstrap, ``docker build``).
The user sees one progress :class:`~clusterkit.progress.Event` when the step
starts and one ``built X in N.Ns`` when it ends; the transcript is kept in
``<cache dir>/logs/<what>.log``, and a failure's :class:`BuildError` names
that file and quotes its last lines.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clusterkit.errors import BuildError
from clusterkit.images import paths
from clusterkit.progress import Event, Progress

#: How many of the last transcript lines a BuildError quotes.
TAIL = 10


def log_path(what: str) -> Path:
    """``<cache dir>/logs/<what>.log``, with ``/`` and ``:`` of an image ref made file-safe."""
    return paths.cache_dir() / "logs" / (re.sub(r"[^A-Za-z0-9._-]+", "_", what) + ".log")


class Transcript:
    """The log file of one step, keeping its last lines for the error message."""

    def __init__(self, what: str) -> None:
        self.path = log_path(what)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w")  # closed by close()
        self._tail: deque[str] = deque(maxlen=TAIL)

    def write(self, text: str) -> None:
        for line in text.splitlines():
            self._file.write(line + "\n")
            if line.strip():
                self._tail.append(line)
        self._file.flush()

    def error(self, message: str) -> BuildError:
        """A BuildError: ``message``, the last lines of the transcript, and where the rest is."""
        tail = "\n".join(self._tail)
        return BuildError(
            f"{message}\n{tail}\n(full log: {self.path})" if tail else f"{message} (log: {self.path})"
        )

    def close(self) -> None:
        self._file.close()


@contextmanager
def step(progress: Progress, name: str, what: str, doing: str) -> Iterator[Transcript]:
    """Report ``doing`` as the start of step ``name``, then ``built <what> in N.Ns`` if it succeeds."""
    log = Transcript(what)
    t0 = time.monotonic()
    progress(Event(name, f"{doing} (log: {log.path})"))
    try:
        yield log
    finally:
        log.close()
    progress(Event(name, f"built {what} in {time.monotonic() - t0:.1f}s", ended=True))


def run(cmd: list[str], log: Transcript) -> subprocess.CompletedProcess:
    """Run a command, writing its output (stdout and stderr together) to the transcript as it comes.

    Returns the completed process with the whole output in ``stdout``, for callers that parse it.
    """
    log.write("$ " + " ".join(cmd))
    lines = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            log.write(line)
    return subprocess.CompletedProcess(cmd, proc.returncode, "".join(lines), "")


def stream_build(client: Any, log: Transcript, what: str, **kwargs: Any) -> None:
    """Run a legacy-builder ``docker build`` into the transcript; a failure is a BuildError."""
    import docker

    try:
        for chunk in client.api.build(rm=True, forcerm=True, decode=True, **kwargs):
            if "stream" in chunk:
                log.write(chunk["stream"])
            if "error" in chunk:
                raise log.error(f"building {what} failed: {chunk['error'].strip()}")
    except docker.errors.APIError as e:
        raise log.error(f"building {what} failed: {e.explanation or e}") from e
