"""Local-process runtime: the scheduler and workers as detached processes.

Used where no Docker engine answers, and the baseline the container runtimes
are benchmarked against. A state file under the run directory records each
process (PID and start time, so a recycled PID is never signalled), which is
how ``status`` and ``down`` in another shell find the cluster again.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import psutil

from clusterkit.backends import get_backend
from clusterkit.backends.base import ensure_port_free
from clusterkit.errors import ClusterExists, ClusterNotFound, NodeStartError, StartupTimeout
from clusterkit.runtimes.base import Progress, Runtime, _quiet, wait_for_workers
from clusterkit.spec import ClusterSpec, resolve_spec
from clusterkit.status import ClusterStatus
from clusterkit.waiting import NotReady, wait_for

STOP_GRACE = 10.0


def run_root() -> Path:
    """Where state files live: ``$CLUSTERKIT_RUN_DIR`` or ``~/.local/state/clusterkit``."""
    configured = os.environ.get("CLUSTERKIT_RUN_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "clusterkit"


def _tail(path: str | Path, lines: int = 8) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:]) or "    (empty log)"


class _Node:
    """One recorded process."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    @property
    def pid(self) -> int:
        return int(self.record["pid"])

    def process(self) -> psutil.Process | None:
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - float(self.record["create_time"])) > 1.0:
                return None  # the PID was recycled: not ours
            if proc.status() == psutil.STATUS_ZOMBIE:
                self.reap()
                return None
            return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None

    def alive(self) -> bool:
        return self.process() is not None

    def reap(self) -> int | None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return None
        return os.waitstatus_to_exitcode(status) if pid else None

    def group(self) -> list[int]:
        """Live PIDs of the node's process group (nanny children, JVM executors).

        The group outlives its leader when a leader dies first, so stopping
        waits on the group, not on the recorded PID alone.
        """
        members = []
        for proc in psutil.process_iter(["status"]):
            try:
                if os.getpgid(proc.pid) == self.pid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                    members.append(proc.pid)
            except (ProcessLookupError, PermissionError):
                continue
        return members

    def signal_group(self, sig: int) -> None:
        if not self.group():
            return
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass


class LocalRuntime(Runtime):
    """Clusters of local processes, found again through ``<run dir>/<name>/state.json``."""

    name = "local"

    def __init__(self, root: Path | None = None) -> None:
        self._root = root

    @property
    def root(self) -> Path:
        return self._root or run_root()

    def _dir(self, name: str) -> Path:
        return self.root / name

    def _load(self, name: str) -> dict[str, Any]:
        path = self._dir(name) / "state.json"
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise ClusterNotFound(
                f"no local cluster named {name!r} (no {path}); start one with "
                f"`clusterkit up --runtime local --name {name}`"
            ) from None

    def _save(self, name: str, state: dict[str, Any]) -> None:
        path = self._dir(name) / "state.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(path)

    def _nodes(self, state: dict[str, Any]) -> list[_Node]:
        return [_Node(r) for r in state.get("processes", [])]

    def clusters(self) -> list[str]:
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.glob("*/state.json")):
            state = json.loads(path.read_text())
            if any(n.alive() for n in self._nodes(state)):
                found.append(path.parent.name)
        return found

    def spec_of(self, name: str) -> ClusterSpec:
        return resolve_spec(overrides=self._load(name)["spec"], environ={})

    # -- up ----------------------------------------------------------------------

    def up(
        self, spec: ClusterSpec, *, timeout: float = 120, keep: bool = False, progress: Progress = _quiet
    ) -> ClusterStatus:
        directory = self._dir(spec.name)
        if (directory / "state.json").exists():
            state = self._load(spec.name)
            if any(n.alive() for n in self._nodes(state)):
                raise ClusterExists(
                    f"local cluster {spec.name!r} is already up; run `clusterkit down --name "
                    f"{spec.name}` first or choose another --name"
                )
            shutil.rmtree(directory, ignore_errors=True)  # left by a crash: nothing alive
        host = spec.bind_address
        ensure_port_free(host, spec.scheduler_port, "scheduler")
        ensure_port_free(host, spec.dashboard_port, "dashboard")
        (directory / "logs").mkdir(parents=True, exist_ok=True)
        state: dict[str, Any] = {
            "name": spec.name,
            "runtime": self.name,
            "spec": spec.to_dict(),
            "processes": [],
            "started": time.time(),
        }
        self._save(spec.name, state)
        try:
            progress(f"starting {spec.backend} scheduler on {host}:{spec.scheduler_port}")
            self._start(spec, state, "scheduler", "scheduler")
            for index in range(1, spec.workers + 1):
                self._start(spec, state, "worker", f"worker-{index}")
            progress(f"waiting for {spec.workers} workers to register")
            self._wait(spec, state, spec.workers, timeout)
        except BaseException:
            if not keep:
                self._stop(state)
                shutil.rmtree(directory, ignore_errors=True)
            raise
        return self.status(spec.name)

    def _start(self, spec: ClusterSpec, state: dict[str, Any], role: str, node: str) -> None:
        backend = get_backend(spec.backend)
        directory = self._dir(spec.name)
        log_path = directory / "logs" / f"{node}.log"
        address = f"{spec.bind_address}:{spec.scheduler_port}"
        work_dir = directory / node
        work_dir.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            if role == "scheduler":
                proc = backend.start_scheduler(
                    address, dashboard_port=spec.dashboard_port, detach=True, log=log, work_dir=str(work_dir)
                )
            else:
                proc = backend.start_worker(
                    address,
                    cores=spec.cores,
                    memory=spec.memory,
                    name=f"{spec.name}-{node}",
                    host=spec.bind_address,
                    detach=True,
                    log=log,
                    work_dir=str(work_dir),
                    **backend.local_worker_options,
                )
        state["processes"].append(
            {
                "role": role,
                "node": node,
                "pid": proc.pid,
                "create_time": psutil.Process(proc.pid).create_time(),
                "log": str(log_path),
            }
        )
        self._save(spec.name, state)

    def _exited(self, state: dict[str, Any]) -> list[str]:
        lines = []
        for node in self._nodes(state):
            if not node.alive():
                code = node.reap()
                how = f"exited with code {code}" if code is not None else "is not running"
                lines.append(f"  {node.record['node']} (pid {node.pid}) {how}; last log lines:")
                lines.append(_tail(node.record["log"]))
        return lines

    def _wait(self, spec: ClusterSpec, state: dict[str, Any], expected: int, timeout: float) -> None:
        def check() -> None:
            exited = self._exited(state)
            if exited:
                raise NodeStartError(
                    f"cluster {spec.name!r} did not start: a node process ended\n" + "\n".join(exited)
                )

        def diagnose() -> str:
            lines = self._exited(state) or ["  all processes are running; scheduler log:"]
            if len(lines) == 1:
                lines.append(_tail(state["processes"][0]["log"]))
            return "\n".join(lines)

        wait_for_workers(
            spec,
            spec.scheduler_address.rsplit(":", 1)[0],
            expected=expected,
            timeout=timeout,
            check=check,
            diagnose=diagnose,
        )

    # -- down, status, scale, logs -------------------------------------------------

    def _stop(self, state: dict[str, Any], nodes: list[_Node] | None = None) -> None:
        """SIGTERM every node's process group, then SIGKILL what outlives the grace period."""
        nodes = self._nodes(state) if nodes is None else nodes
        # Workers first, so they do not log a lost scheduler on the way out.
        nodes = sorted(nodes, key=lambda n: n.record["role"] == "scheduler")
        for node in nodes:
            node.signal_group(signal.SIGTERM)

        def all_gone() -> None:
            alive = [n.record["node"] for n in nodes if n.group()]
            if alive:
                raise NotReady(f"still running: {', '.join(alive)}")

        try:
            wait_for(
                all_gone, what="node processes to stop", timeout=STOP_GRACE, interval=0.05, max_interval=0.5
            )
        except StartupTimeout:
            for node in nodes:
                node.signal_group(signal.SIGKILL)
            wait_for(all_gone, what="node processes to die after SIGKILL", timeout=5, interval=0.05)
        for node in nodes:
            node.reap()

    def down(self, name: str, *, volumes: bool = False) -> None:
        state = self._load(name)
        self._stop(state)
        shutil.rmtree(self._dir(name), ignore_errors=True)

    def status(self, name: str) -> ClusterStatus:
        state = self._load(name)
        spec = self.spec_of(name)
        host = spec.scheduler_address.rsplit(":", 1)[0]
        backend = get_backend(spec.backend)
        try:
            found = backend.collect_status(host, spec.scheduler_port, spec.dashboard_port)
        except NotReady as e:
            exited = self._exited(state)
            detail = ("\n" + "\n".join(exited)) if exited else ""
            from clusterkit.errors import ClusterUnavailable

            raise ClusterUnavailable(
                f"local cluster {name!r} is recorded but its scheduler does not answer: {e}; "
                f"run `clusterkit down --name {name}` and `clusterkit up` again{detail}"
            ) from e
        return ClusterStatus(**{**found.__dict__, "name": name, "runtime": self.name})

    def scale(self, name: str, workers: int, *, timeout: float = 120) -> ClusterStatus:
        state = self._load(name)
        spec = self.spec_of(name).replace(workers=workers)
        current = [r for r in state["processes"] if r["role"] == "worker"]
        if workers > len(current):
            used = {int(r["node"].split("-")[1]) for r in current}
            free = (i for i in range(1, workers + len(used) + 1) if i not in used)
            for _ in range(workers - len(current)):
                self._start(spec, state, "worker", f"worker-{next(free)}")
        elif workers < len(current):
            remove = sorted(current, key=lambda r: int(r["node"].split("-")[1]))[workers:]
            self._stop(state, [_Node(r) for r in remove])
            state["processes"] = [r for r in state["processes"] if r not in remove]
        state["spec"] = spec.to_dict()
        self._save(name, state)
        self._wait(spec, state, workers, timeout)
        return self.status(name)

    def logs(self, name: str, service: str | None = None, *, follow: bool = False, tail: int = 100) -> None:
        state = self._load(name)
        for record in state["processes"]:
            if service in (None, record["node"], record["role"]):
                print(f"==> {record['node']} ({record['log']}) <==")
                print(_tail(record["log"], tail))
