"""Spark Connect sessions in a child process, for the tests.

pyspark runs one kind of session per process: its first Connect session switches
the whole process to Connect, and a classic session after it fails. The suite's
own process makes classic sessions, so every Connect session of a test is made
here, in a ``python -m tests.integration.connect_child`` child, which prints one
JSON line of what it saw, or ends non-zero with the error on its last line.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from clusterkit.errors import ClusterUnavailable


def _session(args: argparse.Namespace) -> Any:
    if args.url:  # what any pyspark user would write, given `status --json`'s connect_url
        from pyspark.sql import SparkSession

        return SparkSession.builder.remote(args.url).create()
    if args.name:
        from clusterkit import Cluster

        return Cluster.from_name(args.name, supervise=False).session(connect=True)
    from clusterkit.backends.spark.connect import remote_session

    return remote_session("127.0.0.1", args.port, None, timeout=30)


def remainders(session: Any) -> list[int]:
    """A DataFrame job with a shuffle and a Python UDF: what runs on the executors."""
    from pyspark.sql import functions as F

    double = F.udf(lambda x: 2 * x, "long")
    df = session.range(1000).select((double("id") % 4).alias("k"))
    return sorted(r["count"] for r in df.groupBy("k").count().collect())


def hosts_until(session: Any, wanted: set[str], deadline: float) -> list[str]:
    """Where 16 slow tasks run, again until one ran on a host of ``wanted`` (or the deadline):
    each task takes a moment, so dynamic allocation asks for an executor on every worker."""
    from pyspark.sql import functions as F

    slow_host = F.udf(lambda _: time.sleep(0.5) or socket.gethostname())
    seen: set[str] = set()
    while not seen & wanted and time.monotonic() < deadline:
        seen |= {r[0] for r in session.range(0, 16, 1, 16).select(slow_host("id")).collect()}
    return sorted(seen)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url")
    parser.add_argument("--name")
    parser.add_argument("--port", type=int)
    parser.add_argument("--hosts", default="", help="run tasks until one runs on one of these hosts")
    parser.add_argument("--then-classic", action="store_true", help="then try a classic session here")
    args = parser.parse_args()
    session = _session(args)
    seen: dict[str, Any] = {
        "remainders": remainders(session),
        "timezone": session.conf.get("spark.sql.session.timeZone"),
    }
    if args.hosts:
        seen["hosts"] = hosts_until(session, set(args.hosts.split(",")), time.monotonic() + 180)
    if args.then_classic:
        from clusterkit import Cluster

        try:
            Cluster.from_name(args.name, supervise=False).session()
            seen["classic"] = "started"
        except ClusterUnavailable as e:
            seen["classic"] = str(e)
    session.stop()
    print(json.dumps(seen))


def run(*args: str, timeout: float = 400) -> dict[str, Any]:
    """Run the child with ``args``; what it saw, or ``{"error": <its last stderr line>}``."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.connect_child", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).parents[2],  # where `tests` is a package, whatever the test's folder
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit code {done.returncode}, no output"]
        return {"error": lines[-1], "stderr": done.stderr[-3000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
