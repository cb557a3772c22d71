"""Run a node program, then end the process at once: ``python -m clusterkit.leave MODULE ARGS...``.

A node program that returned has closed what matters (a Dask scheduler its
comms, a worker its unregistering); the interpreter's own shutdown after it
(finalizers, thread pools, a large heap) took 1.5-7 s of CPU here, and every
``down`` waited for it. Nothing of a node outlives its container or process
group, so the process ends with the program's exit code as soon as it returns,
its output flushed. The standard library only: a node pays for no more imports.
"""

from __future__ import annotations

import logging
import os
import runpy
import sys
from typing import NoReturn


def run_and_leave(module: str) -> NoReturn:
    """Run ``module`` as ``__main__`` (``sys.argv`` set by the caller), then ``os._exit`` with its code."""
    code = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as e:
        if isinstance(e.code, int) or e.code is None:
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> NoReturn:
    if len(sys.argv) < 2:
        print("usage: python -m clusterkit.leave MODULE [ARGS...]", file=sys.stderr)
        os._exit(2)
    sys.argv = sys.argv[1:]
    run_and_leave(sys.argv[0])


if __name__ == "__main__":
    main()
