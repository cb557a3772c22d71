"""Send a test suite's own code to the Dask scheduler and workers.

Both need it: the scheduler unpickles the task graph, the workers run it.
No pytest import here, since this module runs on the nodes.
"""

from __future__ import annotations

import functools
import os
import pickle
import re
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


# -- the project's own packages (clusterkit.project), on every client's connection -------------

#: The project zip each scheduler (by its id) got from this process: a reconnect sends nothing new.
_SENT: dict[str, str] = {}
#: Pickle opcodes naming the modules pickled by value (what :func:`_dumps` looks for).
_NEEDLES: set[bytes] = set()


@functools.cache
def _compiled(needles: frozenset[bytes]) -> re.Pattern[bytes]:
    return re.compile(b"|".join(re.escape(n) for n in sorted(needles)))


def _pattern() -> re.Pattern[bytes]:
    """One scan of a pickle for every by-value module, however many there are."""
    return _compiled(frozenset(_NEEDLES))


def _dumps(original: Any) -> Any:
    """distributed's ``dumps``, also by value when a graph names a by-value module.

    distributed falls back to cloudpickle for ``__main__`` and for a *top-level* object of a
    module registered with ``cloudpickle.register_pickle_by_value``; a function inside a task
    (``Task(key, f, ...)``) is pickled by reference, and the workers cannot import its module.
    """
    import cloudpickle

    def dumps(x: Any, *, buffer_callback: Any = None, protocol: Any = pickle.HIGHEST_PROTOCOL) -> bytes:
        buffers: list[Any] = []
        callback = buffers.append if buffer_callback is not None else None
        result = original(x, buffer_callback=callback, protocol=protocol)
        if _NEEDLES and _pattern().search(result):
            buffers.clear()
            result = cloudpickle.dumps(x, protocol=protocol or pickle.HIGHEST_PROTOCOL)
        for buffer in buffers:
            buffer_callback(buffer)
        return result

    dumps._clusterkit = True  # type: ignore[attr-defined]
    return dumps


def pickle_by_value(modules: list[str]) -> None:
    """Send these modules' functions as code, not as a name to import (test modules: nodes
    have no pytest to import them with); as ``LocalCluster`` runs them in this interpreter."""
    import cloudpickle
    from distributed.protocol import pickle as dask_pickle

    registered = cloudpickle.list_registry_pickle_by_value()
    for name in modules:
        if name in sys.modules and name not in registered and len(name.encode()) < 256:
            cloudpickle.register_pickle_by_value(sys.modules[name])
            _NEEDLES.add(b"\x8c" + bytes([len(name.encode())]) + name.encode() + b"\x94")
    if _NEEDLES and not getattr(dask_pickle.dumps, "_clusterkit", False):
        dask_pickle.dumps = _dumps(dask_pickle.dumps)


async def _register(scheduler: Any, found: Any) -> list[str]:
    """Both plugins under one name (the next version replaces this one); the workers that failed."""
    from distributed.protocol.pickle import dumps

    from clusterkit import project, workdir

    args = (found.filename, found.data, list(found.names), project.NAME)
    plugin = dumps(workdir.WorkdirToScheduler(*args))
    await scheduler.register_scheduler_plugin(plugin=plugin, name=project.NAME, idempotent=False)
    plugin = dumps(workdir.WorkdirToWorkers(*args))
    answers = await scheduler.register_worker_plugin(plugin=plugin, name=project.NAME, idempotent=False)
    return sorted(w for w, a in (answers or {}).items() if a.get("status") == "error")


async def send_project(scheduler: Any) -> str | None:
    """Put the project's packages (:mod:`clusterkit.project`) on the scheduler and every worker,
    also those that join later (a registered worker plugin); ``scheduler`` is an rpc to it.

    Once per scheduler and content; returns the zip's digest, or ``None`` when nothing was sent.
    A failure is a warning: code that could not be sent must not fail the connection itself.
    """
    import warnings

    from clusterkit import project

    if not project.enabled():
        return None
    found = project.archive()
    pickle_by_value(project.unshipped_modules(found.names if found else ()))
    if found is None:
        return None
    try:
        scheduler_id = (await scheduler.identity(n_workers=0))["id"]
        if _SENT.get(scheduler_id) == found.digest:
            return None
        failed = await _register(scheduler, found)
    except Exception as e:  # noqa: BLE001 - see the docstring
        warnings.warn(f"clusterkit: could not send the project's code to the cluster: {e}", stacklevel=2)
        return None
    if failed:
        warnings.warn(f"clusterkit: the project's code did not reach {failed}", stacklevel=2)
    _SENT[scheduler_id] = found.digest
    return found.digest
