"""The driver's JVM, started by clusterkit so that a script's terminal stays quiet.

pyspark starts the driver JVM (``spark-submit``) with the terminal as its output: every
script then shows "Using incubator modules", the loopback warning, log4j's banner and
"Setting default log level". clusterkit starts that JVM itself, once per process, with its
output appended to ``<run root>/logs/spark-driver.log`` (:func:`driver_log`);
``CLUSTERKIT_SPARK_LOG=INFO`` (``DEBUG``, ``WARN``, ``ERROR``) puts it back on the
terminal at that level. The JVM also starts with ``SPARK_LOCAL_IP`` and ``SPARK_PUBLIC_DNS``
at 127.0.0.1: Spark binds the application UI to the first and names it with the second
(the driver's RPC has its own ``spark.driver.bindAddress``), and the first spares the
"resolves to a loopback address" warning.

    >>> log_level({"CLUSTERKIT_SPARK_LOG": "info"})
    'INFO'
    >>> log_level({}) is None
    True
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clusterkit.errors import ClusterUnavailable, InvalidValue
from clusterkit.paths import run_root

#: The variable that puts the driver's JVM output on the terminal, at one of these levels.
LOG_ENV = "CLUSTERKIT_SPARK_LOG"
LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")

#: The JVM's environment while it starts (a value the user set wins).
JVM_ENV = {"SPARK_LOCAL_IP": "127.0.0.1", "SPARK_PUBLIC_DNS": "127.0.0.1"}

#: Settings ``spark-submit`` must have when the JVM starts; a context set up later ignores them.
LAUNCH_KEYS = ("spark.driver.memory", "spark.driver.extra", "spark.driver.defaultJavaOptions", "spark.jars")

#: ``os.environ`` is changed only while the JVM starts (pyspark hands the JVM a copy of it).
_environ_lock = threading.Lock()
#: The log this process's JVM writes to, once clusterkit started it quiet.
_quiet_log: Path | None = None


def log_level(environ: Mapping[str, str] | None = None) -> str | None:
    """The level ``CLUSTERKIT_SPARK_LOG`` asks for; ``None`` (unset or empty): a quiet driver.

    Raises:
        InvalidValue: a value that is not one of :data:`LEVELS`.
    """
    value = (os.environ if environ is None else environ).get(LOG_ENV, "").strip()
    if not value:
        return None
    if value.upper() not in LEVELS:
        raise InvalidValue(
            f"{LOG_ENV}={value!r} is not a log level; use one of {', '.join(LEVELS)}, "
            f"or unset it to keep the driver's output in {driver_log()}"
        )
    return value.upper()


def driver_log() -> Path:
    """Where a quiet driver JVM writes: ``<run root>/logs/spark-driver.log`` (every process appends)."""
    return run_root() / "logs" / "spark-driver.log"


def start_jvm(settings: Mapping[str, str]) -> None:
    """Start this process's driver JVM, once; a no-op when one runs (pyspark keeps one per process).

    Its output goes to :func:`driver_log`, or with ``CLUSTERKIT_SPARK_LOG`` to the terminal.
    Of ``settings`` only :data:`LAUNCH_KEYS` go to ``spark-submit``: they would be defaults
    for every later session of the process, and a session sets the others itself.

    Raises:
        ClusterUnavailable: the JVM exited before it answered; names the log and its last lines.
        InvalidValue: a bad ``CLUSTERKIT_SPARK_LOG``.
    """
    global _quiet_log
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    level = log_level()
    with SparkContext._lock:
        if SparkContext._gateway is not None:
            return
        conf = SparkConf(loadDefaults=False)
        for key, value in settings.items():
            if key.startswith(LAUNCH_KEYS):
                conf.set(key, value)
        with _output(level) as (popen_kwargs, where), _jvm_environment():
            try:
                gateway = launch_gateway(conf=conf, popen_kwargs=popen_kwargs)
            except Exception as e:  # pyspark's JAVA_GATEWAY_EXITED, or spark-submit missing
                raise ClusterUnavailable(f"the Spark driver's JVM did not start ({e}); {where()}") from e
        SparkContext._gateway = gateway
        SparkContext._jvm = gateway.jvm
        _quiet_log = None if level else driver_log()
        if level:
            _console_at(gateway.jvm, level)


def log_hint() -> str:
    """``"; the driver's log: PATH"`` when clusterkit started this process's JVM quiet, else ``""``."""
    return f"; the driver's log: {_quiet_log}" if _quiet_log is not None else ""


def _console_at(jvm: Any, level: str) -> None:
    """Log at ``level`` on the console from now on, also below WARN.

    ``spark-submit`` takes pyspark for a shell: its console drops what is below WARN
    (``Logging.sparkShellThresholdLevel``), and ``setLogLevel`` does not lift that in Spark 4.
    Spark internals: a Spark without them keeps its own threshold.
    """
    from py4j.protocol import Py4JError

    try:
        logging = getattr(getattr(jvm, "org.apache.spark.internal.Logging$"), "MODULE$")
        getattr(logging, "sparkShellThresholdLevel_$eq")(None)
        log4j = jvm.org.apache.logging.log4j
        log4j.core.config.Configurator.setRootLevel(log4j.Level.toLevel(level))
    except Py4JError:
        pass


@contextmanager
def _output(level: str | None) -> Iterator[tuple[dict[str, object], Callable[[], str]]]:
    """``popen_kwargs`` for the JVM, and a function that says where its output went."""
    if level is not None:
        yield {}, lambda: "its output is above"
        return
    path = driver_log()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"--- Spark driver JVM of process {os.getpid()}, {stamp}\n".encode())
        log.flush()
        start = log.tell()
        yield {"stdout": log, "stderr": log}, lambda: _tail(path, start)


def _tail(path: Path, start: int, lines: int = 15) -> str:
    """What the JVM wrote since ``start``: its error lines, else its last lines (spark-submit
    follows an error with its whole usage text)."""
    with open(path, "rb") as f:
        f.seek(start)
        text = [line for line in f.read().decode(errors="replace").splitlines() if line.strip()]
    errors = [line for line in text if line.startswith("Error") or "Exception" in line or " ERROR " in line]
    shown = errors[:lines] if errors else text[-lines:]
    what = "its errors" if errors else "its last lines"
    body = "\n  ".join(shown) if shown else "(it wrote nothing)"
    return f"its output is in {path}; {what}:\n  {body}"


@contextmanager
def _jvm_environment() -> Iterator[None]:
    """:data:`JVM_ENV` in ``os.environ`` while the JVM starts, under a lock, and back afterwards."""
    with _environ_lock:
        added = {k: v for k, v in JVM_ENV.items() if k not in os.environ}
        os.environ.update(added)
        try:
            yield
        finally:
            for key in added:
                os.environ.pop(key, None)
