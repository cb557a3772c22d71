"""Health probes that speak each backend's protocol, cheap enough to run every second.

A container healthcheck runs ``python -m clusterkit.probe ROLE --backend B ...``.
It imports nothing beyond the standard library (no click, no ``distributed``):
a probe costs a Python start-up (~45 ms), not a 1.5 s import, which matters
with 16 workers probing on 2 cores. ``clusterkit probe`` is the same check.

- Dask scheduler: its ``/health`` endpoint says ``ok``.
- Dask worker: its own ``/health`` (the worker's HTTP server, on its event loop)
  says ``ok``. Not the scheduler's ``/json/identity.json``: that answers 500
  while a computation runs (worker metrics with tuple keys), which made every
  worker "unhealthy" mid-job. Registration is what ``up`` waits for, counted
  over the scheduler's own protocol.
- Spark master: its ``/json/`` says ``ALIVE``.
- Spark worker: the master's ``/json/`` lists this worker's id (from the
  worker's own ``/json/``) as ``ALIVE``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any


class NotReadyYet(Exception):
    """The node answers but is not ready, or does not answer."""


def _get(url: str, timeout: float = 3) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http only
            return response.read()
    except (urllib.error.URLError, OSError) as e:
        raise NotReadyYet(f"{url} does not answer ({getattr(e, 'reason', e)})") from e


def fetch_json(url: str, timeout: float = 3) -> dict[str, Any]:
    try:
        return json.loads(_get(url, timeout))
    except ValueError as e:
        raise NotReadyYet(f"{url} did not return JSON") from e


def _base(hostport: str) -> str:
    return f"http://{hostport}"


def dask(role: str, ui: str, name: str | None, worker_ui: str = "127.0.0.1:8789") -> str:
    where = ui if role == "scheduler" else worker_ui
    body = _get(f"{_base(where)}/health").decode().strip()
    if body != "ok":
        raise NotReadyYet(f"{role} /health at {where} says {body!r}")
    return f"ok: {role}{' ' + name if name and role == 'worker' else ''} healthy"


def spark(role: str, ui: str, worker_ui: str) -> str:
    if role == "scheduler":
        state = fetch_json(f"{_base(ui)}/json/")
        if state.get("status") != "ALIVE":
            raise NotReadyYet(f"master is {state.get('status')!r}, not ALIVE")
        return f"ok: master ALIVE with {state.get('aliveworkers', 0)} workers"
    me = fetch_json(f"{_base(worker_ui)}/json/")
    master = str(me.get("masterwebuiurl") or _base(ui)).rstrip("/")
    state = fetch_json(f"{master}/json/")
    for worker in state.get("workers", []):
        if worker.get("id") == me.get("id") and worker.get("state") == "ALIVE":
            return f"ok: worker {worker.get('id')} ALIVE"
    raise NotReadyYet(f"worker {me.get('id')!r} is not ALIVE at the master")


def registered_workers(backend: str, ui: str) -> int:
    """How many workers the scheduler lists now, over HTTP (no ``distributed`` import)."""
    if backend == "dask":  # counts only: identity.json fails while tasks run
        return int(fetch_json(f"{_base(ui)}/json/counts.json", timeout=3).get("workers", 0))
    state = fetch_json(f"{_base(ui)}/json/", timeout=1)
    return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")


def probe(role: str, backend: str, ui: str, name: str | None = None, worker_ui: str | None = None) -> str:
    """One check; returns an ``ok`` line or raises ``NotReadyYet`` with the reason."""
    if backend == "dask":
        return dask(role, ui, name, worker_ui or "127.0.0.1:8789")
    if backend == "spark":
        return spark(role, ui, worker_ui or "127.0.0.1:8081")
    raise NotReadyYet(f"unknown backend {backend!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clusterkit probe", description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["scheduler", "worker"])
    parser.add_argument("--backend", required=True, choices=["dask", "spark"])
    parser.add_argument("--ui", default=None, help="host:port of the scheduler dashboard / master web UI")
    parser.add_argument("--name", default=None, help="Dask: this worker's name (default: host name)")
    parser.add_argument(
        "--worker-ui", default=None, help="this worker's own web UI (Dask 127.0.0.1:8789, Spark :8081)"
    )
    args = parser.parse_args(argv)
    ui = args.ui or ("127.0.0.1:8787" if args.backend == "dask" else "127.0.0.1:8080")
    try:
        print(probe(args.role, args.backend, ui, args.name or os.uname().nodename, args.worker_ui))
    except NotReadyYet as e:
        print(f"not ready: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
