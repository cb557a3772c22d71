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


def test_status_is_a_lifecycle_state_and_report_the_detail():
    from distributed.core import Status as DistributedStatus

    from clusterkit.clusters import Cluster
    from clusterkit.clusters.base import Status

    assert not isinstance(vars(Cluster.classes["dask"]).get("status"), property) and not callable(
        Status.running
    )
    assert callable(Cluster.classes["dask"].report) and callable(Cluster.classes["spark"].report)
    assert Status.running == DistributedStatus.running and Status.closed != DistributedStatus.running
    assert {Status.running, DistributedStatus.running} and Status.running in (DistributedStatus.running,)


def test_the_error_base_is_importable_from_the_package():
    assert issubclass(InvalidValue, ClusterKitError)
