"""The reconciler that keeps a running cluster at its spec, without the user acting.

A container engine restarts a node that crashes or is killed by the kernel
(OOM) under the restart policy, but not one stopped with ``docker kill`` or
``docker stop``, and a local process has no policy at all. A
:class:`Supervisor` closes that gap: every ``interval`` seconds it runs
:meth:`Runtime.heal <clusterkit.runtimes.base.Runtime.heal>` (start an ended
scheduler or worker again, add the workers that are gone) until the cluster
is removed. It runs

- as a thread inside a Python ``Cluster`` (and so in the pytest plugin's clusters);
- detached, for a cluster ``clusterkit up`` leaves running (``--no-supervise`` opts
  out), recorded in the cluster's record so ``down`` stops it;
- in the foreground with ``clusterkit up --watch``, printing each repair.

Each repair is logged at INFO, a failing repair at WARNING, on the
``clusterkit.supervisor`` logger (:mod:`clusterkit.log`); a ``report`` callback
gets the same lines instead.

Repairs of one cluster never overlap: they hold the cluster's lock
(:func:`clusterkit.records.locked`), so several supervisors (a ``Cluster`` attached
to a cluster ``clusterkit up`` started) take turns.

    python -m clusterkit.supervise --runtime compose --name dask   # its process (clusterkit.supervise)
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from clusterkit.log import get_logger

#: Seconds between two looks at the cluster.
INTERVAL = 1.0

log = get_logger(__name__)


def say(line: str, level: int = logging.INFO) -> None:
    """Log one line of the supervisor's (a repair, a start, a stop) on ``clusterkit.supervisor``."""
    log.log(level, "%s", line)


class Supervisor:
    """Heal cluster ``name`` on ``runtime`` every ``interval`` seconds until it is removed.

    >>> supervisor = Supervisor(runtime, "mycluster").start()  # doctest: +SKIP
    >>> supervisor.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        runtime: Any,
        name: str,
        *,
        interval: float = INTERVAL,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.name = name
        self.interval = interval
        self.report = report or say
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Supervisor:
        """Run in a daemon thread; returns self."""
        self._thread = threading.Thread(
            target=self.run, name=f"clusterkit-supervisor-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Ask the loop to end after its current look (safe from a signal handler)."""
        self._stop.set()

    def stop(self, timeout: float = 30) -> None:
        """Stop looking (a repair in progress finishes first)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def run(self) -> None:
        """Heal until :meth:`stop` or until the cluster is gone or being removed."""
        from clusterkit import records
        from clusterkit.errors import ClusterNotFound

        failing = ""
        while not self._stop.wait(self.interval):
            try:
                if records.load(self.name).get("stopping") or not self.runtime.exists(self.name):
                    return
                for line in self.runtime.heal(self.name):
                    self.report(f"cluster {self.name!r}: {line}")
                failing = ""
            except ClusterNotFound:
                return
            except Exception as e:  # noqa: BLE001 - a reconciler outlives a hiccup: say it once, go on
                if str(e) != failing:
                    line = f"cluster {self.name!r}: could not repair: {type(e).__name__}: {e}"
                    if self.report is say:
                        say(line, logging.WARNING)
                    else:
                        self.report(line)
                failing = str(e)


def spawn_detached(runtime: str, name: str) -> int:
    """Start ``python -m clusterkit.supervise`` in its own session for cluster ``name``; returns its PID.

    It writes to ``<run dir>/.records/<name>.supervisor.log`` and is recorded
    in the cluster's record, so ``down`` stops it and ``status`` shows it.
    """
    from clusterkit import records

    log_path = records.directory() / f"{name}.supervisor.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "clusterkit.supervise", "--runtime", runtime, "--name", name],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a closed terminal (SIGHUP) does not end it
        )
    records.update(name, supervisor=records.owner(proc.pid))
    return proc.pid


def stop_detached(name: str, timeout: float = 10) -> Callable[[], None]:
    """Ask the detached supervisor of cluster ``name`` to stop, if it runs (recorded PID and start
    time); returns the wait for its end (SIGKILL after ``timeout``).

    ``down`` marks the cluster ``stopping`` first, so the supervisor can no
    longer start anything: it may end while ``down`` removes the nodes.
    """
    from clusterkit import records

    found = records.load(name).get("supervisor") or {}
    pid, started, ticks = found.get("pid"), found.get("started"), found.get("ticks")
    if not pid or not records.alive(int(pid), started, ticks):
        return lambda: None
    try:
        os.kill(int(pid), signal.SIGTERM)
    except ProcessLookupError:
        return lambda: None
    return lambda: _await_end(int(pid), started, timeout, ticks)


def _await_end(pid: int, started: float | None, timeout: float, ticks: int | None = None) -> None:
    from clusterkit import records
    from clusterkit.errors import StartupTimeout
    from clusterkit.waiting import NotReady, wait_for

    def gone() -> None:
        if records.alive(pid, started, ticks):
            _reap(pid)
            raise NotReady(f"supervisor pid {pid} still running")

    try:
        wait_for(gone, what="the supervisor to stop", timeout=timeout, interval=0.05, max_interval=0.2)
    except StartupTimeout:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _reap(pid: int) -> None:
    """Collect an exited child (a supervisor started by this process) so it is not a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
