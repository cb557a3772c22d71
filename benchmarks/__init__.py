"""Benchmarks of clusterkit against its baselines: ``python -m benchmarks`` (see ``__main__``)."""
