"""The Spark backend's seed API as module functions: ``clusterkit.spark.connect_to_scheduler(...)``.

They are bound methods of one ready object, ``clusterkit.backends.spark.backend``.
"""

from clusterkit.backends.spark import backend

start_scheduler = backend.start_scheduler
start_worker = backend.start_worker
connect_to_scheduler = backend.connect_to_scheduler
report_status = backend.report_status

__all__ = ["backend", "connect_to_scheduler", "report_status", "start_scheduler", "start_worker"]
