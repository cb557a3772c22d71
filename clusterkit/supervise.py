"""The detached supervisor's process: ``python -m clusterkit.supervise --runtime R --name N``.

An entry point above the runtimes (it looks one up by name); the loop itself,
:class:`clusterkit.supervisor.Supervisor`, takes a runtime object.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import Any

from clusterkit.runtimes import get_runtime
from clusterkit.supervisor import INTERVAL, Supervisor, say


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clusterkit.supervise", description="Keep a cluster at its spec until it is removed."
    )
    parser.add_argument("--runtime", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--interval", type=float, default=INTERVAL)
    args = parser.parse_args(argv)
    # Its stderr is the cluster's supervisor log (spawn_detached): every line, as it happens.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s clusterkit: %(message)s", stream=sys.stderr)
    supervisor = Supervisor(get_runtime(args.runtime), args.name, interval=args.interval)

    def stop(signum: int, _: Any) -> None:
        # `down` marks the cluster stopping (under its lock) before it signals: a repair that
        # holds the lock now has seen that and starts nothing, so this process may end at once.
        supervisor.request_stop()
        say(f"stopped supervising cluster {args.name!r} (signal {signum})")
        logging.shutdown()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    say(f"supervising cluster {args.name!r} ({args.runtime}), pid {os.getpid()}")
    supervisor.run()
    say(f"stopped supervising cluster {args.name!r}")
    return 0


if __name__ == "__main__":
    code = main()
    # `down` waits for this process to end: skip the interpreter's shutdown (the docker SDK's
    # pools and the rest took ~0.8 s of a 2.7 s `down` here); the log is flushed first.
    logging.shutdown()
    os._exit(code)
