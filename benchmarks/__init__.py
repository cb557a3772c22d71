"""Benchmarks of clusterkit against its baselines (``python -m benchmarks.bench_cluster``)."""
