"""A Spark session that raises instead of hanging.

A standalone Spark driver waits forever in two situations a cluster meets
every day: its executors cannot connect back to it (a driver address they
cannot reach: "Initial job has not accepted any resources", in a loop), and
its master restarted (the new master does not know the application, so no
executor is ever granted again). :class:`SessionWatch` is a daemon thread
beside each session ``clusterkit.spark.connect_to_scheduler`` makes; once a
second it looks at the session and at the master's ``/json/``, and

- cancels a job that has had no executor for the session's deadline, with a
  reason that names the driver address the executors had to reach;
- once the master answers without this application, cancels every job
  (now and later) with a reason that says so, and marks the session
  unusable (:func:`usable`), so ``Cluster.session()`` makes a new one.

The job then fails in the caller's thread with ``Job N cancelled because ...``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from clusterkit.facts import SPARK
from clusterkit.probe import fetch_json
from clusterkit.waiting import NotReady

#: Seconds between two looks.
INTERVAL = 1.0


def _executors(sc: Any) -> int:
    """Executors registered with this driver (the driver's own block manager excluded)."""
    return max(0, int(sc._jsc.sc().getExecutorMemoryStatus().size()) - 1)


def _stopped(sc: Any) -> bool:
    return sc._jsc is None or bool(sc._jsc.sc().isStopped())


class SessionWatch:
    """Watch one session; see the module docstring.

    Args:
        session: the ``SparkSession``.
        master: ``spark://host:port`` of the master, for messages.
        ui: ``host:port`` of the master's web UI (``None``: not known, the app check is skipped).
        deadline: seconds a job may wait for its first executor.
    """

    def __init__(self, session: Any, master: str, ui: str | None, deadline: float) -> None:
        self.session = session
        self.master = master
        self.ui = ui
        self.deadline = max(deadline, 5.0)
        #: Why the session cannot run jobs any more (``""`` while it can).
        self.lost = ""
        self._stop = threading.Event()
        self._waiting_since: float | None = None
        conf = session.sparkContext.getConf()
        self.driver = f"{conf.get('spark.driver.host')}:{conf.get('spark.driver.port')}"
        self.app_id = session.sparkContext.applicationId

    @classmethod
    def attach(cls, session: Any, master: str, ui: str | None, deadline: float) -> None:
        """Watch ``session`` unless a watch already does (``getOrCreate`` hands back the same one)."""
        if getattr(session, "_clusterkit_watch", None) is None:
            session._clusterkit_watch = cls(session, master, ui, deadline).start()

    def start(self) -> SessionWatch:
        threading.Thread(target=self._run, name="clusterkit-spark-watch", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL):
            try:
                if _stopped(self.session.sparkContext):
                    return
                self.look()
            except Exception:  # noqa: BLE001 - the JVM is going away (interpreter exit, stop())
                if self._stop.is_set() or self.session.sparkContext._jsc is None:
                    return

    def look(self) -> None:
        """One look: is the application still known, and does a waiting job have executors?"""
        sc = self.session.sparkContext
        active = list(sc.statusTracker().getActiveJobsIds())
        master = self._master_state()
        if master is not None and not self.lost and master.get("status") == "ALIVE":
            known = {a.get("id") for a in master.get("activeapps", [])}
            ended = {a.get("id"): a.get("state") for a in master.get("completedapps", [])}
            if self.app_id in ended:
                self.lost = (
                    f"because the Spark master at {self.master} ended this application "
                    f"({self.app_id}, {ended[self.app_id]}) after its executors failed: they must "
                    f"connect back to this driver at {self.driver}; pass driver_host= an address "
                    "of this machine they can reach"
                )
            elif self.app_id not in known:
                self.lost = (
                    f"because the Spark master at {self.master} restarted and no longer knows this "
                    f"application ({self.app_id}): no executor can be granted to it again; start a "
                    "new session (clusterkit.spark.connect_to_scheduler, or Cluster.session())"
                )
        if self.lost:
            self._cancel(active, self.lost)
            return
        if not active or _executors(sc):
            self._waiting_since = None
            return
        now = time.monotonic()
        self._waiting_since = self._waiting_since or now
        if now - self._waiting_since < self.deadline:
            return
        workers = sorted(
            {str(w.get("host")) for w in (master or {}).get("workers", []) if w.get("state") == "ALIVE"}
        )
        where = f"on the workers ({', '.join(workers)})" if workers else "(no ALIVE worker at the master)"
        self._cancel(
            active,
            f"because no executor registered within {self.deadline:.0f}s: executors {where} must "
            f"connect back to this driver at {self.driver} (spark.driver.host:spark.driver.port); "
            "if they cannot reach that address, pass driver_host= an address of this machine they "
            "can reach (and ui_port= the master's web UI port, so the kit can find the workers)",
        )
        self._waiting_since = None

    def _master_state(self) -> dict[str, Any] | None:
        if not self.ui:
            return None
        try:
            return fetch_json(f"http://{self.ui}{SPARK.scheduler_ready.path}", timeout=2)
        except NotReady:
            return None  # restarting, or briefly busy: decide on a later look

    def _cancel(self, jobs: list[int], reason: str) -> None:
        sc = self.session.sparkContext
        for job in jobs:
            sc._jsc.sc().cancelJob(int(job), reason)


def usable(session: Any) -> bool:
    """False once the session is stopped or its master has lost it (:class:`SessionWatch`)."""
    watch = getattr(session, "_clusterkit_watch", None)
    sc = session.sparkContext
    return not _stopped(sc) and not (watch is not None and watch.lost)
