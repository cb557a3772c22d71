"""The Python ``Cluster`` classes, one per backend, chosen from a table by backend name.

``Cluster("dask", ...)`` returns the Dask class (a ``distributed`` cluster),
``Cluster("spark", ...)`` the Spark one (``session()``). Each class registers
itself in ``Cluster.classes`` when its module is imported, so this package
imports every backend's class; nothing below this layer imports it.

    >>> sorted(Cluster.classes)
    ['dask', 'spark']
"""

from clusterkit.clusters.base import Cluster
from clusterkit.clusters.dask import DaskCluster
from clusterkit.clusters.spark import SparkCluster

__all__ = ["Cluster", "DaskCluster", "SparkCluster"]
