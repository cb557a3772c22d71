"""The two axes are looked up by name; the Python Cluster class comes from a table by backend name."""

from __future__ import annotations

import pytest

from clusterkit import Cluster, ClusterKitError
from clusterkit.errors import InvalidValue
from clusterkit.runtimes import RUNTIMES, get_runtime
from clusterkit.runtimes.base import Runtime


def test_every_runtime_is_listed_and_a_runtime():
    assert set(RUNTIMES) == {"compose", "local", "swarm", "testcontainers"}
    for name in RUNTIMES:
        runtime = get_runtime(name)
        assert isinstance(runtime, Runtime) and runtime.name == name
    with pytest.raises(InvalidValue, match="expected one of compose, local, swarm, testcontainers"):
        get_runtime("kubernetes")


def test_each_backend_has_its_cluster_class():
    from distributed.deploy import Cluster as DistributedCluster

    from clusterkit.facts import BACKENDS

    assert sorted(Cluster.classes) == sorted(BACKENDS)
    dask_class, spark_class = Cluster.classes["dask"], Cluster.classes["spark"]
    assert issubclass(dask_class, Cluster) and issubclass(dask_class, DistributedCluster)
    assert issubclass(spark_class, Cluster) and not issubclass(spark_class, DistributedCluster)


def test_status_is_a_lifecycle_state_and_a_call():
    from distributed.core import Status

    from clusterkit.clusters.dask import _StatusView

    class Fake:
        def report(self):
            return "report"

    view = _StatusView(Fake(), Status.running)  # type: ignore[arg-type]
    assert view == Status.running and view in (Status.running, Status.closed)
    assert view != Status.closed and view.name == "running"
    assert view() == "report"


def test_the_error_base_is_importable_from_the_package():
    assert issubclass(InvalidValue, ClusterKitError)
