"""What a Spark master's JSON page (``/json/`` on its web UI) says: its workers and its state.

A mixin of :class:`clusterkit.backends.spark.SparkBackend`: the reads runtimes
make of every Spark cluster (``count_workers`` while ``up`` waits,
``collect_status`` for ``status``), with the Connect server beside the master.
"""

from __future__ import annotations

from typing import Any

from clusterkit.backends.spark.connect import APP_NAME
from clusterkit.backends.spark.connect import url as connect_url
from clusterkit.net import format_host
from clusterkit.probe import fetch_json, grpc_answers
from clusterkit.status import ClusterStatus, WorkerStatus, local_versions
from clusterkit.waiting import NotReady


class MasterView:
    """The master's JSON page, read over HTTP (no session needed)."""

    name: str

    def _alive_workers(self, host: str, ui_port: int) -> tuple[list[dict[str, Any]], bool]:
        """The ALIVE workers, and whether a Connect server runs as one of the master's applications."""
        try:
            state = fetch_json(f"http://{format_host(host)}:{ui_port}/json/", timeout=2)
        except NotReady:
            return [], False
        connect = any(app.get("name") == APP_NAME for app in state.get("activeapps", []))
        return [w for w in state.get("workers", []) if w.get("state") == "ALIVE"], connect

    def _state(self, host: str, dashboard_port: int) -> dict[str, Any]:
        state = fetch_json(f"http://{format_host(host)}:{dashboard_port}/json/")
        if state.get("status") != "ALIVE":
            raise NotReady(f"Spark master is {state.get('status')!r}, not ALIVE")
        return state

    def count_workers(
        self, host: str, scheduler_port: int, dashboard_port: int, connect_port: int | None = None, **_: Any
    ) -> int:
        """ALIVE workers; ``NotReady`` until the Connect server (when there is one) answers too."""
        state = self._state(host, dashboard_port)
        alive = sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")
        if connect_port:
            try:
                grpc_answers(host, connect_port)
            except NotReady as e:
                raise NotReady(f"{alive} workers registered; the Spark Connect server is not up: {e}") from e
        return alive

    def collect_status(
        self, host: str, scheduler_port: int, dashboard_port: int, connect_port: int | None = None, **_: Any
    ) -> ClusterStatus:
        """The master's view; with ``connect_port``, the Connect server's address and whether it answers."""
        state = self._state(host, dashboard_port)
        problems: tuple[str, ...] = ()
        if connect_port:
            try:
                grpc_answers(host, connect_port)
            except NotReady as e:
                problems = (f"the Spark Connect server does not answer: {e}",)
        workers = tuple(
            WorkerStatus(
                name=str(w.get("id")),
                address=f"{w.get('host')}:{w.get('port')}",
                cores=int(w.get("cores", 0)),
                memory=int(w.get("memory", 0)) * 2**20,
                state=str(w.get("state")),
            )
            for w in state.get("workers", [])
            if w.get("state") != "DEAD"
        )
        return ClusterStatus(
            backend=self.name,
            scheduler_address=f"{format_host(host)}:{scheduler_port}",
            state=str(state.get("status")),
            dashboard_url=f"http://{format_host(host)}:{dashboard_port}",
            workers=workers,
            versions={"client": local_versions()},
            connect_url=connect_url(host, connect_port) if connect_port else None,
            problems=problems,
        )
