"""Health probes that speak each backend's protocol, cheap enough to run every second.

A container healthcheck runs ``python -m clusterkit.probe ROLE --backend B ...``.
It imports nothing beyond the standard library (no click, no ``distributed``;
of clusterkit only the stdlib-only :mod:`clusterkit.facts`, :mod:`clusterkit.errors`
and :mod:`clusterkit.waiting`): a probe costs a Python start-up (~45 ms), not a
1.5 s import, which matters with 16 workers probing on 2 cores. ``clusterkit
probe`` is the same check.

What to ask comes from the backend's row in :mod:`clusterkit.facts`
(``scheduler_ready`` / ``worker_ready``); how to ask, from its ``kind``:

- ``text``: the node's own page (the scheduler's on the dashboard port, a worker's
  on its own UI port) says the marker. A worker reads its own page (served on its
  event loop), not the scheduler's JSON of every worker: such a page can answer 500
  while a computation runs, which made every worker "unhealthy" mid-job.
  Registration is what ``up`` waits for, counted over the scheduler's own protocol.
- ``alive-json``: the scheduler's JSON page says it is alive; a worker is ready
  once the scheduler's page lists this worker's id (from the worker's own JSON
  page) as alive.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from clusterkit.facts import BACKENDS, FACTS, BackendFacts, Readiness
from clusterkit.waiting import NotReady


def _get(url: str, timeout: float = 3) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http only
            return response.read()
    except (urllib.error.URLError, OSError) as e:
        raise NotReady(f"{url} does not answer ({getattr(e, 'reason', e)})") from e


def fetch_json(url: str, timeout: float = 3) -> dict[str, Any]:
    """The JSON object at ``url``; raises ``NotReady`` if it does not answer or is not JSON."""
    try:
        return json.loads(_get(url, timeout))
    except ValueError as e:
        raise NotReady(f"{url} did not return JSON") from e


#: An HTTP/2 client's preface and an empty SETTINGS frame: what a gRPC client sends first.
_HTTP2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def grpc_answers(host: str, port: int, timeout: float = 3) -> str:
    """A gRPC server (Spark Connect's) answers at ``host:port`` with its SETTINGS frame.

    A TCP connection alone proves nothing behind a published port: the
    engine's proxy accepts it whether or not the container listens. Raises
    ``NotReady`` with the reason.
    """
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(_HTTP2_HELLO)
            frame = s.recv(9)
    except OSError as e:
        raise NotReady(f"nothing answers gRPC at {host}:{port} ({e})") from e
    if len(frame) < 9 or frame[3] != 4:  # a frame header whose type is SETTINGS
        raise NotReady(f"nothing answers gRPC at {host}:{port} (the connection was closed)")
    return f"ok: gRPC at {host}:{port}"


def _base(hostport: str) -> str:
    return f"http://{hostport}"


def text(facts: BackendFacts, role: str, ui: str, worker_ui: str, name: str | None) -> str:
    """The node's own page says the marker."""
    ready = _readiness(facts, role)
    where = ui if role == "scheduler" else worker_ui
    body = _get(f"{_base(where)}{ready.path}").decode().strip()
    if body != ready.marker:
        raise NotReady(f"{role} {ready.path} at {where} says {body!r}")
    return f"ok: {role}{' ' + name if name and role == 'worker' else ''} healthy"


def alive_json(facts: BackendFacts, role: str, ui: str, worker_ui: str, name: str | None) -> str:
    """The master's JSON page says it is alive; for a worker, that it lists this worker alive."""
    alive = json.loads(_readiness(facts, role).marker)  # the marker is the JSON string: '"ALIVE"'
    path = facts.scheduler_ready.path
    if role == "scheduler":
        state = fetch_json(f"{_base(ui)}{path}")
        if state.get("status") != alive:
            raise NotReady(f"master is {state.get('status')!r}, not {alive}")
        return f"ok: master {alive} with {state.get('aliveworkers', 0)} workers"
    me = fetch_json(f"{_base(worker_ui)}{facts.worker_ready.path}")
    master = str(me.get("masterwebuiurl") or _base(ui)).rstrip("/")
    state = fetch_json(f"{master}{path}")
    for worker in state.get("workers", []):
        if worker.get("id") == me.get("id") and worker.get("state") == alive:
            return f"ok: worker {worker.get('id')} {alive}"
    raise NotReady(f"worker {me.get('id')!r} is not {alive} at the master")


#: How a probe asks, by ``Readiness.kind``.
KINDS: dict[str, Callable[[BackendFacts, str, str, str, str | None], str]] = {
    "text": text,
    "alive-json": alive_json,
}


def _readiness(facts: BackendFacts, role: str) -> Readiness:
    return facts.scheduler_ready if role == "scheduler" else facts.worker_ready


def registered_workers(backend: str, ui: str, timeout: float = 3) -> int:
    """How many workers the scheduler lists now, over HTTP (no ``distributed`` import):
    the row's ``workers_field`` of its ``workers_path`` page, or its ``ALIVE`` workers."""
    facts = FACTS[backend]
    state = fetch_json(f"{_base(ui)}{facts.workers_path}", timeout=timeout)
    if facts.workers_field:
        return int(state.get(facts.workers_field, 0))
    return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")


def probe(role: str, backend: str, ui: str, name: str | None = None, worker_ui: str | None = None) -> str:
    """One check; returns an ``ok`` line or raises ``NotReady`` with the reason."""
    facts = FACTS.get(backend)
    if facts is None:
        raise NotReady(f"unknown backend {backend!r}")
    ask = KINDS[_readiness(facts, role).kind]
    return ask(facts, role, ui, worker_ui or f"127.0.0.1:{facts.worker_ui_port}", name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clusterkit probe", description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["scheduler", "worker"])
    parser.add_argument("--backend", required=True, choices=BACKENDS)
    parser.add_argument("--ui", default=None, help="host:port of the scheduler's web UI (default: 127.0.0.1)")
    parser.add_argument("--name", default=None, help="this worker's name (default: host name)")
    parser.add_argument(
        "--worker-ui", default=None, help="host:port of this worker's own web UI (default: 127.0.0.1)"
    )
    parser.add_argument("--connect", default=None, help="host:port of a gRPC server beside the scheduler")
    args = parser.parse_args(argv)
    ui = args.ui or f"127.0.0.1:{FACTS[args.backend].dashboard_port}"
    try:
        print(probe(args.role, args.backend, ui, args.name or os.uname().nodename, args.worker_ui))
        if args.connect:
            host, _, port = args.connect.rpartition(":")
            print(grpc_answers(host, int(port)))
    except NotReady as e:
        print(f"not ready: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
