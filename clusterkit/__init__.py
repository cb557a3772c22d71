"""clusterkit: a real Dask or Spark cluster from one spec and one pinned image.

>>> from clusterkit import Cluster
>>> with Cluster(workers=2) as cluster:  # doctest: +SKIP  (the default backend: Dask)
...     print(cluster.report())

``clusterkit.dask`` and ``clusterkit.spark`` hold the seed API
(``start_scheduler``, ``start_worker``, ``connect_to_scheduler``,
``report_status``); every error is a ``ClusterKitError``.
"""

from typing import Any

from clusterkit.errors import ClusterKitError
from clusterkit.version import __version__

__all__ = ["Cluster", "ClusterKitError", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazily: a node's start-up imports ``clusterkit`` and must not pay for docker or distributed.
    if name == "Cluster":
        from clusterkit.clusters import Cluster

        return Cluster
    raise AttributeError(f"module 'clusterkit' has no attribute {name!r}")
