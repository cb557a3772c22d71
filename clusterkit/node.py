"""A container's main process: run one scheduler or worker in the foreground.

    python -m clusterkit.node scheduler --backend dask --port 8786 --dashboard-port 8787
    python -m clusterkit.node worker --backend spark --scheduler scheduler:7077 --cores 2 --memory 2048m

Same as ``clusterkit node ...``, without the CLI's imports (click, rich, the
runtimes): every worker container pays this start-up, on 2 cores, N times.
The process execs the backend's program (or, for a Python worker program it
imported while the scheduler started, runs it in place), so signals reach it directly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from clusterkit.errors import ClusterKitError

#: The backends' own scheduler flags (``Backend.scheduler_options``).
_SCHEDULER_OPTIONS = ("connect_port", "worker_cores", "worker_memory", "cluster_cores")


def run(argv: list[str] | None = None) -> None:
    """Parse and exec; raises ``ClusterKitError`` on bad input (a taken port, a bad value)."""
    from clusterkit.backends import get_backend
    from clusterkit.spec import parse_count, parse_memory, parse_port

    parser = argparse.ArgumentParser(prog="clusterkit node", description=__doc__.splitlines()[0])
    roles = parser.add_subparsers(dest="role", required=True)
    scheduler = roles.add_parser("scheduler", help="the Dask scheduler / Spark master")
    scheduler.add_argument("--backend", required=True)
    scheduler.add_argument("--address", default="0.0.0.0", help="host to listen on (default: all)")
    scheduler.add_argument("--port", default=None, help="scheduler port (default: the backend's)")
    scheduler.add_argument("--dashboard-port", default=None)
    for option in _SCHEDULER_OPTIONS:  # Spark: its Connect server's port, the workers' size
        scheduler.add_argument(f"--{option.replace('_', '-')}", default=None, help=argparse.SUPPRESS)
    worker = roles.add_parser("worker", help="one Dask worker / Spark worker")
    worker.add_argument("--backend", required=True)
    worker.add_argument("--scheduler", required=True, help="host:port of the scheduler")
    worker.add_argument("--cores", default="1")
    worker.add_argument("--memory", default="1g")
    worker.add_argument("--name", default=None, help="worker name (default: the host name)")
    worker.add_argument(
        "--host", default=None, help="address to listen on (default: the route to the scheduler)"
    )
    for role in (scheduler, worker):
        role.add_argument(
            "--secrets",
            default=None,
            help="folder with the cluster's credentials: TLS/auth on (swarm secrets)",
        )
    args = parser.parse_args(argv)
    backend = get_backend(args.backend)
    if args.role == "scheduler":
        port = parse_port("port", args.port or backend.scheduler_port)
        dashboard_port = parse_port("dashboard_port", args.dashboard_port or backend.dashboard_port)
        options = {k: int(getattr(args, k)) for k in _SCHEDULER_OPTIONS if getattr(args, k) is not None}
        address = f"{args.address}:{port}"
        backend.start_scheduler(address, dashboard_port=dashboard_port, secrets_dir=args.secrets, **options)
    else:
        cores = parse_count("cores", args.cores, high=512)
        memory = parse_memory(args.memory)
        if backend.worker_module:
            # Most of a worker's start is importing its program: do it now, while the scheduler
            # starts, then wait for the scheduler's port, then run the program in this process
            # (launch), so it connects at once instead of backing off (Dask's retries wait up to
            # seconds between attempts). The environment first: dask reads its config on import.
            os.environ.update(backend.node_process_env("worker", None, args.secrets))
            importlib.import_module(backend.worker_module)
        await_scheduler(args.scheduler, backend.scheduler_port)
        options = {"webui_port": backend.worker_ui_port} if backend.worker_ui_port else {}
        backend.start_worker(
            args.scheduler,
            cores=cores,
            memory=memory,
            name=args.name or os.uname().nodename,
            host=args.host,
            secrets_dir=args.secrets,
            **options,
        )


def await_scheduler(address: str, default_port: int) -> None:
    """Wait until the scheduler's name resolves and its port accepts a connection.

    A worker whose scheduler was killed exits (Dask closes it; the engine
    starts it again); started while the scheduler is still away, the worker
    program fails at once ("Name or service not known") and the container
    crash-loops, each restart later than the last. Waiting here instead
    keeps the container running until the scheduler is back, and the worker
    registers as soon as it is. ``CLUSTERKIT_SCHEDULER_WAIT`` (seconds,
    default 600) bounds the wait; then the container exits and its restart
    policy decides.
    """
    from clusterkit.net import parse_address
    from clusterkit.waiting import accepts_connections, wait_for

    host, port = parse_address(address, default_port)
    said: list[str] = []

    def reachable() -> None:
        try:
            accepts_connections(host, port)
        except OSError as e:
            if not said:
                print(f"waiting for the scheduler at {host}:{port} ({e})", file=sys.stderr, flush=True)
                said.append(str(e))
            raise

    timeout = float(os.environ.get("CLUSTERKIT_SCHEDULER_WAIT", "600"))
    # On time-out, StartupTimeout: main() prints it and exits 1. Polled at least every
    # 0.25 s: a worker starts its program within that of the scheduler's port opening.
    wait_for(
        reachable, what=f"the scheduler at {host}:{port}", timeout=timeout, interval=0.1, max_interval=0.25
    )
    if said:
        print(f"the scheduler at {host}:{port} answers; starting the worker", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    try:
        run(argv)
    except ClusterKitError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0  # not reached: run() execs the node program


if __name__ == "__main__":
    sys.exit(main())
