"""The Python ``Cluster`` classes, one per backend, chosen from a table by backend name.

``Cluster(backend, ...)`` returns that backend's class: for Dask a
``distributed`` cluster, for Spark one with ``session()``; ``Status`` is the
lifecycle state both report as ``cluster.status``. Each class registers
itself in ``Cluster.classes`` when its module is imported, so this package
imports every backend's class; nothing below this layer imports it.

    >>> from clusterkit.facts import BACKENDS
    >>> sorted(Cluster.classes) == sorted(BACKENDS)
    True
"""

from clusterkit.clusters.base import Cluster, Status
from clusterkit.clusters.dask import DaskCluster
from clusterkit.clusters.spark import SparkCluster

__all__ = ["Cluster", "DaskCluster", "SparkCluster", "Status"]
