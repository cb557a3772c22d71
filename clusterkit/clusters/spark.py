"""The Spark ``Cluster``: a Spark master and workers held in Python, with ``session()``."""

from __future__ import annotations

from typing import Any

from clusterkit.clusters.base import Cluster
from clusterkit.facts import SPARK
from clusterkit.progress import Progress
from clusterkit.status import ClusterStatus


class SparkCluster(Cluster):
    """A Spark standalone cluster on a clusterkit runtime.

    >>> with Cluster(SPARK.name, workers=2) as cluster:  # doctest: +SKIP
    ...     cluster.session().range(100).count()
    100
    """

    backend = SPARK.name

    def _init(self, spec: Any, runtime: Any, *, owned: bool) -> None:
        super()._init(spec, runtime, owned=owned)
        self._session: Any = None

    def _start_cluster(self, *, timeout: float, keep: bool, progress: Progress) -> None:
        try:
            self._up(timeout, keep, progress)
        except BaseException:
            if self.owned and not keep:
                self._down()  # what a Ctrl-C between two steps left
            raise

    def session(self, timeout: float = 60, **options: Any) -> Any:
        """A ``SparkSession`` whose executors run on this cluster (made once, then reused).

        ``options`` go to ``clusterkit.spark.connect_to_scheduler`` (``conf=``, ``app_name=`` ...).
        """
        from clusterkit.backends.spark import backend, session_usable

        if self._session is None or not session_usable(self._session):
            # A session whose master restarted was stopped (it raised instead of hanging): a new one.
            self._session = backend.connect(self.client_spec, timeout, **options)
        return self._session

    def status(self) -> ClusterStatus:
        """The master's view: every worker with cores, memory and state."""
        return self.report()

    @property
    def scheduler_address(self) -> str:
        return f"spark://{self.client_spec.scheduler_address}"

    @property
    def dashboard_link(self) -> str:
        from clusterkit.net import format_host

        spec = self.client_spec
        return f"http://{format_host(spec.scheduler_host)}:{spec.dashboard_port}"

    def scale(self, n: int, timeout: float = 120) -> ClusterStatus | None:
        """Reconcile to ``n`` workers and wait until the master lists all of them ALIVE."""
        return self.runtime.scale(self.spec.name, n, timeout=timeout)

    def close(self) -> None:
        """Stop the session, and remove the cluster if this object started it."""
        if self._session is not None:
            from clusterkit.backends.spark import stop_session

            stop_session(self._session)  # bounded: an unreachable cluster must not hang close()
            self._session = None
        self._down()

    def __enter__(self) -> SparkCluster:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SparkCluster({self.spec.name!r}, {self.scheduler_address!r}, runtime={self.runtime.name!r})"
