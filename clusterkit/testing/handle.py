"""What a test gets from a cluster fixture: a handle on a started cluster, and the test's code shipped to it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any


def _module_archive(module: Any, scratch: Path) -> str:
    """A zip of the code a test module imports from its own tree.

    A top-level ``test_x.py`` may import its neighbours (``from helpers
    import ...``), so the zip holds every ``.py`` file of its folder; a module
    inside a package brings its whole top-level package.
    """
    import zipfile

    path = Path(module.__file__)
    parts = module.__name__.split(".")
    if len(parts) == 1:
        folder, files = path.parent, sorted(path.parent.glob("*.py"))
        arcname = lambda source: source.name  # noqa: E731
    else:
        depth = len(parts) - 1 if path.name == "__init__.py" else len(parts) - 2
        top = path.parents[depth]  # the folder of the top-level package
        folder, files = top, sorted(p for p in top.rglob("*.py") if "__pycache__" not in p.parts)
        arcname = lambda source: source.relative_to(top.parent).as_posix()  # noqa: E731
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:8]
    archive = scratch / f"clusterkit-ship-{os.getpid()}-{digest}.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for source in files:
            zf.write(source, arcname(source))
    return str(archive)


class ClusterHandle:
    """What a test gets: addresses, a ready client, ``status()`` and ``scale(n)``.

    ``cluster`` is the :class:`clusterkit.Cluster` underneath (a distributed
    cluster for Dask); the session's reference count, not this object, decides
    when it is removed.
    """

    def __init__(self, cluster: Any, scratch: Path) -> None:
        from clusterkit.backends import get_backend

        self.cluster = cluster
        self._backend = get_backend(cluster.spec.backend)
        self._client: Any = None
        self._connect: Any = None
        self._scratch = scratch
        self._shipped: set[str] = set()
        self._archives: list[str] = []
        #: A Spark handle ships to the sessions a test made: shipping starts none (a run that
        #: uses only Connect starts no driver here; pyspark runs one kind per process).
        self._lazy = self.backend == "spark"

    @property
    def spec(self) -> Any:
        return self.cluster.spec

    @property
    def backend(self) -> str:
        return self.cluster.spec.backend

    @property
    def scheduler_address(self) -> str:
        """``127.0.0.1:<port>``, reachable from the test process."""
        return self.cluster.client_spec.scheduler_address

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.cluster.client_spec.dashboard_port}"

    @property
    def client(self) -> Any:
        """A ``distributed.Client`` (Dask) or ``SparkSession`` (Spark), made once."""
        if self._client is None:
            self._client = self._with_shipped(self._backend.connect(self.cluster.client_spec, 60))
        return self._client

    @property
    def session(self) -> Any:
        """The ``SparkSession`` (alias of ``client`` for Spark clusters)."""
        return self.client

    @property
    def connect_session(self) -> Any:
        """A Spark Connect session on the cluster (its driver in the cluster), made once."""
        from clusterkit.backends.spark.connect import usable

        if self._connect is None or not usable(self._connect):
            if self._connect is not None:  # so the new one becomes pyspark's active one
                self._backend.close(self._connect, 10)
                self._connect = None
            self._connect = self._with_shipped(self._backend.connect_session(self.cluster.client_spec, 60))
        return self._connect

    def status(self) -> Any:
        return self.cluster.report()

    def ship(self, module: Any) -> None:
        """Send ``module``'s code to every worker (once), so tasks can import it."""
        name = getattr(module, "__name__", "")
        if not getattr(module, "__file__", None) or name in self._shipped:
            return
        archive = _module_archive(module, self._scratch)
        if archive not in self._archives:  # else its folder went already, with an earlier module
            made = (
                [s for s in (self._client, self._connect) if s is not None] if self._lazy else [self.client]
            )
            for session in made:
                self._backend.ship(session, archive)
            self._archives.append(archive)
        self._shipped.add(name)

    def _with_shipped(self, session: Any) -> Any:
        """``session``, once what was shipped before it was made has reached it (a Spark
        handle's sessions are made lazily); closed if that fails."""
        try:
            for archive in self._archives if self._lazy else ():
                self._backend.ship(session, archive)
        except BaseException:
            self._backend.close(session, 10)
            raise
        return session

    def scale(self, workers: int, timeout: float = 180) -> Any:
        return self.cluster.scale(workers, timeout=timeout)

    def close_client(self) -> None:
        if self._client is not None:
            self._backend.close(self._client)
            self._client = None
        if self._connect is not None:
            self._backend.close(self._connect)
            self._connect = None
