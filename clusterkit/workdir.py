"""A client container's own code, sent to the nodes: ``import helper`` in a job works on the workers too.

In ``clusterkit run``, ``shell`` and the notebook the working folder
(``/work``, the folder the command ran in) holds the program and the modules
beside it; the scheduler and workers cannot import them. :func:`archive`
zips the folder's Python files, and:

* **Dask**: every client in the container sends it when it connects (a
  client preload that :mod:`clusterkit.client_env` configures, so plain
  ``distributed.Client()`` does it too). It is registered under one name, so
  the next job's code replaces it, and modules a node had imported from an
  earlier one are dropped, so tasks run the code of this job. Nothing in the
  folder is imported on the nodes (a script without a ``__main__`` guard
  would run there).
* **Spark**: ``clusterkit.spark.connect_to_scheduler()`` adds it to the
  application with ``addPyFile`` (executors belong to one application, so
  nothing is stale).

Hidden folders, ``__pycache__``, virtual environments and anything past
:data:`MAX_BYTES` stay behind. The project's installed packages
(:mod:`clusterkit.project`) ride the same two plugins under another name.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import sys
import tempfile
import zipfile
from typing import Any

try:
    from distributed.diagnostics.plugin import SchedulerPlugin, WorkerPlugin
except ImportError:  # the Spark image has no distributed
    SchedulerPlugin = WorkerPlugin = object  # type: ignore[misc,assignment]

#: The plugin name on the scheduler: one per cluster, each job's code replaces the last.
NAME = "clusterkit-workdir"
#: A working folder with more Python than this is not sent (a checkout with a vendored tree).
MAX_BYTES = 32 * 2**20
_SKIP = {"__pycache__", "site-packages", "node_modules"}


def _python_files(folder: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".")
            and d not in _SKIP
            and not os.path.exists(os.path.join(root, d, "pyvenv.cfg"))
        )
        found += [os.path.join(root, f) for f in sorted(files) if f.endswith(".py")]
    return found


def archive(folder: str | None = None) -> tuple[str, bytes, list[str]] | None:
    """``(file name, zip bytes, top-level module names)`` of the folder's Python files, or ``None``.

    The file name carries a digest of the contents, so each version is a new file on the nodes.
    """
    folder = folder or os.getcwd()
    files = _python_files(folder)
    if not files or sum(os.path.getsize(f) for f in files) > MAX_BYTES:
        return None
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            zf.write(path, os.path.relpath(path, folder))
    data = buffer.getvalue()
    names = sorted({os.path.relpath(p, folder).split(os.sep)[0].removesuffix(".py") for p in files})
    return f"{NAME}-{hashlib.sha256(data).hexdigest()[:12]}.zip", data, names


def _install(directory: str, filename: str, data: bytes, names: list[str]) -> None:
    """Put the zip first on ``sys.path`` and forget modules of these names an earlier job left."""
    path = os.path.join(directory, filename)
    with open(path, "wb") as f:
        f.write(data)
    if path not in sys.path:
        sys.path.insert(0, path)
    for module in list(sys.modules):
        if module.split(".")[0] in names:
            del sys.modules[module]
    importlib.invalidate_caches()


class WorkdirToWorkers(WorkerPlugin):  # type: ignore[misc,valid-type]
    """The working folder's zip on every worker's path, also on workers that join later."""

    name = NAME

    def __init__(self, filename: str, data: bytes, names: list[str], name: str = NAME) -> None:
        # ``name`` on the instance: the project's packages (:mod:`clusterkit.project`) ride the
        # same plugin under another name, and an older node's copy of this class still reads it.
        self.filename, self.data, self.names, self.name = filename, data, list(names), name

    def setup(self, worker: Any) -> None:
        _install(worker.local_directory, self.filename, self.data, self.names)


class WorkdirToScheduler(SchedulerPlugin):  # type: ignore[misc,valid-type]
    """The same zip on the scheduler's path: it unpickles the task graphs."""

    name = NAME

    def __init__(self, filename: str, data: bytes, names: list[str], name: str = NAME) -> None:
        self.filename, self.data, self.names, self.name = filename, data, list(names), name

    async def start(self, scheduler: Any) -> None:
        _install(tempfile.gettempdir(), self.filename, self.data, self.names)


async def dask_setup(client: Any) -> None:
    """distributed's client preload hook (``distributed.client.preload``): send the working folder."""
    found = archive()
    if found is None:
        return
    await client.register_plugin(WorkdirToScheduler(*found), name=NAME)
    await client.register_plugin(WorkdirToWorkers(*found), name=NAME)


def ship_to_spark(session: Any) -> None:
    """Add the working folder's zip to a Spark application (its executors import from it)."""
    found = archive()
    if found is None:
        return
    filename, data, _ = found
    path = os.path.join(tempfile.mkdtemp(prefix="clusterkit-workdir-"), filename)
    with open(path, "wb") as f:
        f.write(data)
    session.sparkContext.addPyFile(path)
