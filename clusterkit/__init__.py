"""clusterkit: a real Dask or Spark cluster from one spec and one pinned image.

>>> import clusterkit
>>> client = clusterkit.dask.connect_to_scheduler("127.0.0.1:8786")  # doctest: +SKIP
"""

__version__ = "0.1.0"
