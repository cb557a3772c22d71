"""The Spark scheduler node: the master, and beside it the Spark Connect server.

    python -m clusterkit.backends.spark.pair --port 7077 --webui-port 8080 --connect-port 15002 ...

One node, two JVMs with one lifetime: the master starts first, the Connect
server (:mod:`clusterkit.backends.spark.connect`) once the master accepts
connections. When either ends, the other is stopped and this process exits
with the first one's code, so the engine's restart policy, the supervisor's
healing and ``status`` treat a dead Connect server as a dead scheduler node.
SIGTERM and SIGINT reach both.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys

from clusterkit.errors import ClusterKitError, NodeStartError

#: Seconds the master gets to accept connections before the node gives up.
MASTER_WAIT = 180.0
#: The Connect server's heap: its driver's.
DRIVER_MEMORY = "640m"
#: Seconds a JVM gets between SIGTERM and SIGKILL when its partner ended.
STOP_GRACE = 5.0


def _own_address(bind: str | None) -> str:
    """The address executors reach this node's driver at: the master's, else this host's."""
    if bind:
        return bind
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def _private_file(text: str) -> str:
    """A file only this user reads, in the node's scratch: the server's configuration holds the secret."""
    import tempfile

    fd, path = tempfile.mkstemp(prefix="spark-connect-", suffix=".conf")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m clusterkit.backends.spark.pair")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--webui-port", type=int, required=True)
    parser.add_argument("--host", default=None)
    parser.add_argument("--connect-port", type=int, required=True)
    parser.add_argument("--worker-cores", type=int, default=1)
    parser.add_argument("--worker-memory", type=int, default=2**30)
    parser.add_argument("--cluster-cores", type=int, default=2, help="every worker's cores, at start")
    parser.add_argument("--python", default=None, help="the executors' Python (default: python3)")
    parser.add_argument("--secrets", default=None)
    return parser


def _server_properties(args: argparse.Namespace, here: str, secret: str | None) -> str:
    """The Connect server's configuration file's text (:func:`~clusterkit.backends.spark.connect.server_conf`)."""
    from clusterkit.backends.spark.connect import properties_text, server_conf

    conf = server_conf(
        f"spark://{here}:{args.port}",
        args.connect_port,
        bind=args.host or "0.0.0.0",
        driver_host=here,
        worker_cores=args.worker_cores,
        worker_memory=args.worker_memory,
        cluster_cores=args.cluster_cores,
        python=args.python or "python3",
        secured=bool(secret),
    )
    if secret:  # the driver reads it from its configuration only (executors from the environment)
        conf["spark.authenticate.secret"] = secret
    return properties_text(conf)


def run(argv: list[str] | None = None) -> int:
    """Start both, wait for the first to end, stop the other; the exit code of the first."""
    from clusterkit.backends.spark import backend, spark_home
    from clusterkit.backends.spark.connect import TOKEN_ENV, server_argv
    from clusterkit.net import ensure_port_free
    from clusterkit.security import connect_token
    from clusterkit.waiting import accepts_connections, wait_for

    args = _parser().parse_args(argv)

    bind = args.host or "0.0.0.0"
    ensure_port_free(bind, args.connect_port, "Spark Connect")
    master_argv = backend.scheduler_argv(args.host, args.port, args.webui_port, args.secrets)
    env = dict(os.environ)
    secret = env.get("_SPARK_AUTH_SECRET")
    if secret:
        env[TOKEN_ENV] = connect_token(secret)
    here = _own_address(args.host)
    properties = _private_file(_server_properties(args, here, secret))
    submit = str(spark_home() / "bin" / "spark-submit")
    procs: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, _frame: object) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        master = subprocess.Popen(master_argv, env=env, stdin=subprocess.DEVNULL)
        procs.append(master)

        def master_answers() -> None:
            if master.poll() is not None:
                raise NodeStartError(f"the Spark master exited with code {master.returncode}")
            accepts_connections(here, args.port)  # the master binds the address it advertises

        wait_for(master_answers, what="the Spark master", timeout=MASTER_WAIT, interval=0.1, max_interval=0.5)
        # Spark's launcher sizes the Connect server's JVM as a daemon's (SPARK_DAEMON_MEMORY, which
        # the node sets small for the master), and a driver needs more than 450 MiB.
        server_env = {**env, "SPARK_DAEMON_MEMORY": DRIVER_MEMORY}
        procs.append(
            subprocess.Popen(server_argv(submit, properties), env=server_env, stdin=subprocess.DEVNULL)
        )
    except OSError as e:
        raise NodeStartError(f"cannot start the Spark scheduler node: {e}") from e
    finally:
        if len(procs) < 2:
            for proc in procs:
                _stop(proc)
    return _until_one_ends(procs)


def _until_one_ends(procs: list[subprocess.Popen[bytes]]) -> int:
    """Block until a child ends (no polling), stop the others, return its code."""
    pid, status = os.wait()
    code = os.waitstatus_to_exitcode(status)
    first = next(p for p in procs if p.pid == pid)
    first.returncode = code
    which = "master" if first is procs[0] else "Spark Connect server"
    print(f"the {which} ended (code {code}); stopping the scheduler node", file=sys.stderr, flush=True)
    for proc in procs:
        if proc is not first:
            _stop(proc)
    return code if code >= 0 else 128 - code  # killed by a signal: as a shell says it


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except ClusterKitError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
