"""Send a test suite's own code to the Dask scheduler and workers.

Both need it: the scheduler unpickles the task graph, the workers run it.
No pytest import here, since this module runs on the nodes.
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any

try:
    from distributed.diagnostics.plugin import SchedulerPlugin, WorkerPlugin
except ImportError:  # the Spark image has no distributed
    SchedulerPlugin = WorkerPlugin = object  # type: ignore[misc,assignment]


def _install(folder: str, filename: str, data: bytes) -> None:
    path = os.path.join(folder, filename)
    with open(path, "wb") as f:
        f.write(data)
    if path not in sys.path:
        sys.path.insert(0, path)


class ShipCode(WorkerPlugin):  # type: ignore[misc,valid-type]
    """Puts a zip of modules on each worker's ``sys.path``, also on workers that join later."""

    def __init__(self, filename: str, data: bytes) -> None:
        self.filename = filename
        self.data = data
        self.name = f"clusterkit-ship-{filename}"

    def setup(self, worker: Any) -> None:
        _install(worker.local_directory, self.filename, self.data)


class ShipCodeToScheduler(SchedulerPlugin):  # type: ignore[misc,valid-type]
    """Puts the same zip on the scheduler's ``sys.path``."""

    def __init__(self, filename: str, data: bytes) -> None:
        self.filename = filename
        self.data = data
        self.name = f"clusterkit-ship-{filename}"

    async def start(self, scheduler: Any) -> None:
        _install(tempfile.gettempdir(), self.filename, self.data)
