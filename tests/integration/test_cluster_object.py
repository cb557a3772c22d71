"""The Python ``Cluster`` object on the real engine: ready on return, removed on exit."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import pytest

from clusterkit import Cluster, cluster
from clusterkit.facts import DASK
from clusterkit.spec import resolve_spec
from clusterkit.waiting import NotReady, wait_for
from tests.conftest import free_port
from tests.integration.conftest import leftovers

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def ports() -> dict[str, int]:
    return {"scheduler_port": free_port(), "dashboard_port": free_port()}


def worker_containers(docker_client, name: str) -> list:
    selector = {"label": [f"clusterkit.cluster={name}", "clusterkit.role=worker"]}
    return docker_client.containers.list(all=True, filters=selector)


def test_dask_cluster_is_a_distributed_cluster(docker_client, cluster_names):
    from distributed import Client
    from distributed.core import Status
    from distributed.deploy import Cluster as DistributedCluster

    cluster_names.append("ck-obj-dask")
    with Cluster("dask", workers=2, runtime="compose", name="ck-obj-dask", **ports()) as c:
        assert isinstance(c, DistributedCluster)
        with Client(c) as client:
            assert client.submit(sum, range(10)).result() == 45
            assert len(client.scheduler_info()["workers"]) == 2
        report = c.report()
        assert report.runtime == "compose" and len(report.alive_workers) == 2
        assert c.status == Status.running  # distributed's lifecycle state
        assert str(c.client_spec.dashboard_port) in c.dashboard_link
        assert "ck-obj-dask" in c._repr_html_()
        assert "Scheduler" in c.get_logs(cluster=False, workers=False)

        scheduler = docker_client.containers.list(
            filters={"label": ["clusterkit.cluster=ck-obj-dask", "clusterkit.role=scheduler"]}
        )[0]
        started_at = scheduler.attrs["State"]["StartedAt"]
        assert len(c.scale(3).workers) == 3
        assert len(worker_containers(docker_client, "ck-obj-dask")) == 3
        scheduler.reload()
        assert scheduler.attrs["State"]["StartedAt"] == started_at, "scale must not restart the scheduler"
    assert leftovers(docker_client, "ck-obj-dask") == []


def test_a_raising_body_still_removes_everything(docker_client, cluster_names):
    cluster_names.append("ck-obj-raise")
    with pytest.raises(RuntimeError, match="the body failed"):
        with Cluster("dask", workers=1, runtime="compose", name="ck-obj-raise", **ports()):
            assert worker_containers(docker_client, "ck-obj-raise")
            raise RuntimeError("the body failed")
    assert leftovers(docker_client, "ck-obj-raise") == []


def test_adapt_grows_under_load_and_shrinks_when_idle(docker_client, cluster_names):
    from distributed import Client

    name = "ck-obj-adapt"
    cluster_names.append(name)
    with Cluster("dask", workers=1, runtime="compose", name=name, memory="512m", **ports()) as c:
        c.adapt(minimum=1, maximum=3, interval="500ms", wait_count=2)
        with Client(c) as client:
            # A queue of slow tasks: once their duration is known, the scheduler asks for more workers.
            futures = client.map(time.sleep, [1.0] * 60, pure=False)

            def grown() -> int:
                seen = len(client.scheduler_info()["workers"])
                if seen < 3:
                    raise NotReady(f"{seen} of 3 workers")
                return seen

            assert wait_for(grown, what="adaptive growth to 3 workers", timeout=180, interval=1) == 3
            assert len(worker_containers(docker_client, name)) == 3
            client.gather(futures)
            del futures

            def shrunk() -> int:
                containers = worker_containers(docker_client, name)
                seen = len(client.scheduler_info()["workers"])
                if len(containers) != 1 or seen != 1:
                    raise NotReady(f"{len(containers)} worker containers, {seen} registered")
                return seen

            assert wait_for(shrunk, what="adaptive shrink to 1 worker", timeout=120, interval=1) == 1
    assert leftovers(docker_client, name) == []


def test_from_name_attaches_without_tearing_down(docker_client, cluster_names):
    from distributed import Client

    spec = resolve_spec(overrides={"name": "ck-obj-attach", "workers": 1, **ports()}, environ={})
    cluster_names.append(spec.name)
    cluster.up(spec, "compose", timeout=180)  # as `clusterkit up` does
    with Cluster.from_name("ck-obj-attach") as attached:
        assert attached.owned is False
        with Client(attached) as client:
            assert client.submit(pow, 2, 10).result() == 1024
    assert len(cluster.status("ck-obj-attach").workers) == 1, "closing an attached cluster keeps it"
    cluster.down("ck-obj-attach")
    assert leftovers(docker_client, spec.name) == []


@pytest.mark.spark
def test_spark_cluster_session_runs_a_job(docker_client, cluster_names):
    from pyspark.sql import functions as F

    cluster_names.append("ck-obj-spark")
    with Cluster("spark", workers=2, runtime="compose", name="ck-obj-spark", **ports()) as c:
        df = c.session().range(1000).withColumn("k", F.col("id") % 4)
        counts = {r["k"]: r["count"] for r in df.groupBy("k").count().collect()}
        assert counts == {0: 250, 1: 250, 2: 250, 3: 250}
        assert [w.state for w in c.report().workers] == ["ALIVE", "ALIVE"]
        assert c.scheduler_address.startswith("spark://127.0.0.1:")
    assert leftovers(docker_client, "ck-obj-spark") == []


def hold(port: int) -> socket.socket | None:
    """Listen on ``port`` as a ``clusterkit up`` with the defaults would; ``None`` if something already does."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        return None
    s.listen()
    return s


def test_unnamed_clusters_beside_each_other_and_a_local_cluster_never_collide(docker_client, cluster_names):
    from distributed import Client, LocalCluster

    holder = hold(DASK.scheduler_port)  # the documented default is taken, one way or another
    try:
        with LocalCluster(n_workers=1, processes=False) as local, Client(local) as local_client:
            with Cluster(workers=1, runtime="compose") as first:
                cluster_names.append(first.spec.name)
                with Cluster(workers=1, runtime="compose") as second:
                    cluster_names.append(second.spec.name)
                    assert first.spec.name != second.spec.name
                    # The LocalCluster's dashboard is on 8787 unless something held it already.
                    taken = {DASK.scheduler_port, DASK.dashboard_port, urlsplit(local.dashboard_link).port}
                    ports = [c.client_spec.scheduler_port for c in (first, second)]
                    ports += [c.client_spec.dashboard_port for c in (first, second)]
                    assert len(set(ports)) == 4 and not set(ports) & taken, (ports, taken)
                    for held in (first, second):
                        with Client(held) as client:
                            assert client.submit(sum, range(10)).result() == 45
                    assert local_client.submit(sum, range(5)).result() == 10
            assert leftovers(docker_client, second.spec.name) == []
        assert leftovers(docker_client, first.spec.name) == []
    finally:
        if holder is not None:
            holder.close()
