"""pytest plugin: fixtures for a real Dask or Spark cluster (see the README)."""
