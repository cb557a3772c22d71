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
from pathlib import Path
from typing import Any

import psutil

from clusterkit import health, records
from clusterkit.backends import get_backend
from clusterkit.errors import ClusterNotFound, NodeStartError, StartupTimeout
from clusterkit.health import NodeState
from clusterkit.net import ensure_port_free, format_host
from clusterkit.paths import run_root
from clusterkit.runtimes import nodelogs
from clusterkit.runtimes.base import Runtime
from clusterkit.runtimes.checks import check_memory_fits
from clusterkit.runtimes.follow import follow_files
from clusterkit.spec import ClusterSpec
from clusterkit.waiting import NotReady, wait_for

STOP_GRACE = 10.0


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
            ticks = records.start_ticks(self.pid) if self.record.get("ticks") is not None else None
            if ticks is not None:  # exact, whatever the wall clock did since (records.start_ticks)
                if ticks != int(self.record["ticks"]):
                    return None  # the PID was recycled: not ours
            elif abs(proc.create_time() - float(self.record["create_time"])) > 1.0:
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

    def _nodes(self, state: dict[str, Any], role: str | None = None) -> list[_Node]:
        return [_Node(r) for r in state.get("processes", []) if role in (None, r["role"])]

    # -- what this runtime says ---------------------------------------------------

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
        return ClusterSpec.from_record(self._load(name)["spec"])

    def worker_names(self, name: str) -> list[str]:
        state = self._load(name)
        return [f"{name}-{n.record['node']}" for n in self._nodes(state, "worker")]

    def exists(self, name: str) -> bool:
        return (self._dir(name) / "state.json").exists()

    def _preflight(self, spec: ClusterSpec) -> None:
        ensure_port_free(spec.bind_address, spec.scheduler_port, "scheduler")
        ensure_port_free(spec.bind_address, spec.dashboard_port, "dashboard")
        if spec.connect_port:
            ensure_port_free(spec.bind_address, spec.connect_port, "Spark Connect")
        check_memory_fits(spec, psutil.virtual_memory().total, "this machine")

    # -- health -------------------------------------------------------------------

    def nodes(self, name: str) -> list[NodeState]:
        """Each recorded process: running, or exited (with its code when this process started it)."""
        state = self._load(name)
        restarts = records.load(name).get("restarts") or {}
        found = []
        for node in self._nodes(state):
            record = node.record
            alive = node.alive()
            found.append(
                NodeState(
                    role=record["role"],
                    name=f"{name}-{record['node']}",
                    state=health.RUNNING if alive else health.EXITED,
                    exit_code=None if alive else node.reap(),
                    restarts=int(restarts.get(f"{name}-{record['node']}", 0)),
                    where=f"pid {node.pid}",
                )
            )
        return sorted(found, key=lambda n: n.role != "scheduler")

    def _restart(self, name: str, node: NodeState) -> None:
        """Launch the node's program again under the same node name (a new process)."""
        state = self._load(name)
        spec = self.spec_of(name)
        for old in self._nodes(state):
            if f"{name}-{old.record['node']}" == node.name:
                old.signal_group(signal.SIGKILL)  # what is left of its group (a nanny's child)
                state["processes"] = [r for r in state["processes"] if r is not old.record]
                self._launch(spec, state, old.record["role"], old.record["node"])
                return

    def _start(self, spec: ClusterSpec, image: str | None, timeout: float) -> None:
        directory = self._dir(spec.name)
        shutil.rmtree(directory, ignore_errors=True)  # left by a crash: nothing of it is alive
        (directory / "logs").mkdir(parents=True, exist_ok=True)
        state: dict[str, Any] = {
            "name": spec.name,
            "runtime": self.name,
            "spec": spec.to_dict(),
            "processes": [],
        }
        self._save(spec.name, state)
        self._launch(spec, state, "scheduler", "scheduler")
        for index in range(1, spec.workers + 1):
            self._launch(spec, state, "worker", f"worker-{index}")

    def _launch(self, spec: ClusterSpec, state: dict[str, Any], role: str, node: str) -> None:
        from clusterkit.nodes import node_environment

        backend = get_backend(spec.backend)
        directory = self._dir(spec.name)
        log_path = directory / "logs" / f"{node}.log"
        address = f"{format_host(spec.bind_address)}:{spec.scheduler_port}"
        work_dir = directory / node
        work_dir.mkdir(parents=True, exist_ok=True)
        env = node_environment(spec, containers=False)  # the spec's env, verbatim, as the containers get it
        with open(log_path, "ab") as log:
            if role == "scheduler":
                proc = backend.start_scheduler(
                    address,
                    dashboard_port=spec.dashboard_port,
                    detach=True,
                    log=log,
                    work_dir=str(work_dir),
                    env=env,
                    **backend.scheduler_options(spec),
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
                    env=env,
                    **backend.local_worker_options,
                )
        record = {"role": role, "node": node, "pid": proc.pid, "log": str(log_path)}
        record["create_time"] = psutil.Process(proc.pid).create_time()
        record["ticks"] = records.start_ticks(proc.pid)
        state["processes"].append(record)
        self._save(spec.name, state)

    def _add_workers(self, name: str, count: int) -> None:
        state = self._load(name)
        spec = self.spec_of(name)
        used = {int(n.record["node"].split("-")[1]) for n in self._nodes(state, "worker")}
        free = (i for i in range(1, len(used) + count + 1) if i not in used)
        for _ in range(count):
            self._launch(spec, state, "worker", f"worker-{next(free)}")

    def _remove_workers(self, name: str, workers: list[str]) -> None:
        state = self._load(name)
        doomed = [n for n in self._nodes(state, "worker") if f"{name}-{n.record['node']}" in workers]
        self._stop(doomed)
        gone = {n.pid for n in doomed}
        state["processes"] = [r for r in state["processes"] if int(r["pid"]) not in gone]
        self._save(name, state)

    def _exited(self, name: str) -> list[str]:
        try:
            state = self._load(name)
        except ClusterNotFound:
            return []
        lines = []
        for node in self._nodes(state):
            if not node.alive():
                code = node.reap()
                how = f"exited with code {code}" if code is not None else "is not running"
                lines.append(f"  {node.record['node']} (pid {node.pid}) {how}; last log lines:")
                lines.append(_tail(node.record["log"]))
        return lines

    def _check(self, name: str) -> None:
        exited = self._exited(name)
        if exited:
            raise NodeStartError(
                f"cluster {name!r} did not start: a node process ended\n" + "\n".join(exited)
            )

    def _diagnose(self, name: str) -> str:
        lines = self._exited(name)
        if not lines and self.exists(name):
            scheduler = self._nodes(self._load(name), "scheduler")
            if scheduler:
                lines = ["  all processes are running; scheduler log:", _tail(scheduler[0].record["log"])]
        return "\n".join(lines)

    def _stop(self, nodes: list[_Node]) -> None:
        """SIGTERM every node's process group, then SIGKILL what outlives the grace period."""
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

    def _teardown(self, name: str, volumes: bool = False) -> None:
        if (self._dir(name) / "state.json").exists():
            self._stop(self._nodes(self._load(name)))
        shutil.rmtree(self._dir(name), ignore_errors=True)

    def logs(self, name: str, service: str | None = None, *, follow: bool = False, **options: Any) -> None:
        """Print the nodes' log files, each line after the node's name; ``follow``: like ``tail -f``."""
        since = nodelogs.parse_since(options.get("since"))
        tail, timestamps = options.get("tail", 100), bool(options.get("timestamps"))
        if follow:
            follow_files(
                lambda: self._log_files(name, service), since=since, tail=tail, timestamps=timestamps
            )
            return
        files = self._log_files(name, service) or {}
        texts = {
            key: nodelogs.file_text(path, since=since, tail=tail, timestamps=timestamps)
            for key, path in files.items()
        }
        nodelogs.Printer().text(texts)

    def node_logs(
        self,
        name: str,
        *,
        since: float | str | None = None,
        tail: int | None = None,
        timestamps: bool = False,
    ) -> dict[str, str]:
        """Each node's log file (and a Spark worker's executor outputs) as text, by node name."""
        options = {"since": nodelogs.parse_since(since), "tail": tail, "timestamps": timestamps}
        found = {}
        for node in self._nodes(self._load(name)):
            key = node.record["node"]
            found[key] = nodelogs.file_text(Path(node.record["log"]), **options)
            for part, path in nodelogs.executor_files(self._dir(name) / key).items():
                found[f"{key}.{part}"] = nodelogs.file_text(path, **options)
        return found

    def _log_files(self, name: str, service: str | None) -> dict[str, Path] | None:
        """The log file of each node ``service`` names; ``None`` once the cluster is gone."""
        try:
            state = self._load(name)
        except ClusterNotFound:
            return None
        nodes = [n.record for n in self._nodes(state)]
        return {r["node"]: Path(r["log"]) for r in nodes if service in (None, r["node"], r["role"])}
