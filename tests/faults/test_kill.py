"""Nodes killed with ``docker kill`` come back with no user action; ``status`` is honest meanwhile.

One supervised cluster per backend (a Python ``Cluster``: its reconciler
runs while the object is open), shared by the tests of this module. Each
test starts by waiting until the cluster is healthy again, so a test that
failed half-way does not fail the next one. How long a replacement takes is
measured by ``python -m benchmarks.faults`` (benchmarks/RESULTS.md), not
asserted here: the tests wait with a generous deadline and assert behaviour.
"""

from __future__ import annotations

import threading
import time

import pytest

from clusterkit import Cluster
from clusterkit.waiting import NotReady, wait_for
from tests.conftest import free_port
from tests.faults.conftest import remove_cluster, status_cli

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.faults]

WORKERS = 2
#: Generous: the machine has 2 cores and other suites run beside this one.
DEADLINE = 180


def make_busy():
    """A task that holds a core for ``seconds``; nested, so it is pickled by value (the workers
    cannot import this test module)."""

    def busy(seconds: float) -> float:
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            pass
        return seconds

    return busy


@pytest.fixture(scope="module", params=["dask", pytest.param("spark", marks=pytest.mark.spark)])
def held(request, docker_client, node_images):
    backend = request.param
    name = f"ck-fault-{backend}"
    remove_cluster(docker_client, name)  # what an interrupted run left
    cluster = None
    try:
        cluster = Cluster(
            backend,
            workers=WORKERS,
            runtime="compose",
            name=name,
            scheduler_port=free_port(),  # never the default ports: the address alone must suffice
            dashboard_port=free_port(),
            timeout=300,
        )
        yield cluster
    finally:
        if cluster is not None:
            cluster.close()
        remove_cluster(docker_client, name)


def spark_stop(session) -> None:
    """Stop a session without hanging on a cluster that does not answer."""
    from clusterkit.backends.spark import stop_session

    stop_session(session, timeout=60)


def containers(docker_client, name: str, role: str) -> list:
    selector = {"label": [f"clusterkit.cluster={name}", f"clusterkit.role={role}"]}
    return docker_client.containers.list(all=True, filters=selector)


def wait_healthy(cluster, timeout: float = DEADLINE):
    def healthy():
        found = cluster.report()
        if found.health != "healthy":
            raise NotReady(f"{found.health}: {'; '.join(found.problems)}")
        return found

    return wait_for(healthy, what=f"cluster {cluster.spec.name} healthy", timeout=timeout, interval=0.5)


def container_health(docker_client, name: str) -> dict[str, str]:
    found = {}
    for role in ("scheduler", "worker"):
        for c in containers(docker_client, name, role):
            found[c.name] = (c.attrs["State"].get("Health") or {}).get("Status", c.status)
    return found


def test_a_30s_computation_keeps_every_node_healthy(held, docker_client):
    """The probes read each node's own health, not the scheduler's JSON of every worker (which
    answered 500 while tasks ran, so every Dask worker turned "unhealthy" mid-job)."""
    wait_healthy(held)
    name = held.spec.name
    busy = make_busy()

    def all_healthy() -> None:
        found = container_health(docker_client, name)
        if set(found.values()) != {"healthy"}:
            raise NotReady(f"container health: {found}")

    wait_for(all_healthy, what="every container healthy", timeout=DEADLINE, interval=0.5)
    samples: list[tuple[dict, str]] = []
    done = threading.Event()
    tasks = [0.5] * 60 * WORKERS  # ~30 s on WORKERS single-core workers
    if held.spec.backend == "dask":
        from clusterkit import dask

        client = dask.connect_to_scheduler(held.client_spec.scheduler_address, timeout=60)

        def run() -> float:
            return client.submit(sum, client.map(busy, tasks, pure=False)).result()
    else:
        session = held.session()

        def run() -> float:
            return session.sparkContext.parallelize(tasks, len(tasks)).map(busy).sum()

    result: dict = {}
    job = threading.Thread(target=lambda: result.update(total=run()))
    job.start()
    try:
        while job.is_alive():  # a sample about every second, for the ~30 s the job runs
            samples.append((container_health(docker_client, name), held.report().health))
            done.wait(1)
        job.join()
    finally:
        if held.spec.backend == "dask":
            client.close()
        else:
            spark_stop(session)
    assert result.get("total") == pytest.approx(0.5 * 60 * WORKERS)
    assert len(samples) >= 10, "the job ended too early to show anything"
    unhealthy = [s for s in samples if "unhealthy" in s[0].values() or s[1] != "healthy"]
    assert unhealthy == [], unhealthy[:3]
    all_healthy()


def test_a_killed_worker_mid_computation_is_replaced_and_the_result_is_right(held, docker_client):
    wait_healthy(held)
    name = held.spec.name
    busy = make_busy()
    victim = containers(docker_client, name, "worker")[0]
    if held.spec.backend == "dask":
        from clusterkit import dask

        client = dask.connect_to_scheduler(held.client_spec.scheduler_address, timeout=60)
        try:
            futures = client.map(busy, [0.3] * 60, pure=False)

            def started() -> None:
                if not any(client.processing().values()):
                    raise NotReady("no task is running yet")

            wait_for(started, what="tasks to run", timeout=60, interval=0.1)
            victim.kill()
            code, shown = status_cli(name, "--no-repair")
            total = client.submit(sum, futures).result(timeout=DEADLINE)
        finally:
            client.close()
        assert total == pytest.approx(0.3 * 60)
    else:
        session = held.session()
        try:
            sc = session.sparkContext
            result: dict = {}
            job = threading.Thread(
                target=lambda: result.update(
                    total=sc.parallelize(range(40), 40).map(lambda x: busy(0.3) and x * x).sum()
                )
            )
            job.start()

            def started() -> None:
                if not sc.statusTracker().getActiveStageIds():
                    raise NotReady("no stage is running yet")

            wait_for(started, what="a stage to run", timeout=60, interval=0.1)
            victim.kill()
            code, shown = status_cli(name, "--no-repair")
            job.join(DEADLINE)
            assert not job.is_alive(), "the job hangs after a worker was killed"
        finally:
            spark_stop(session)
        assert result.get("total") == sum(x * x for x in range(40))
    assert code == 3, shown
    assert shown["health"] == "degraded" and shown["wanted"] == WORKERS
    assert any("registered" in p or "exited" in p for p in shown["problems"]), shown["problems"]

    found = wait_healthy(held)  # no user action: the cluster's supervisor starts it again
    assert len(found.alive_workers) == WORKERS
    victim.reload()
    assert victim.status == "running", "the killed container itself is started again"
    restarted = [n for n in found.nodes if n.name == victim.name]
    assert restarted and restarted[0].restarts >= 1
    code, shown = status_cli(name)
    assert code == 0 and shown["health"] == "healthy"


def test_a_killed_scheduler_comes_back_and_clients_do_not_hang(held, docker_client):
    wait_healthy(held)
    name = held.spec.name
    busy = make_busy()
    scheduler = containers(docker_client, name, "scheduler")[0]
    if held.spec.backend == "dask":
        from clusterkit import dask

        client = dask.connect_to_scheduler(held.client_spec.scheduler_address, timeout=60)
        try:
            assert client.submit(pow, 2, 5).result(timeout=60) == 32
            pending = client.submit(busy, 60, pure=False)
            scheduler.kill()
            with pytest.raises(Exception, match="lost the connection to the scheduler"):
                pending.result(timeout=DEADLINE)
            found = wait_healthy(held)  # no user action
            assert len(found.alive_workers) == WORKERS
            # The client connected before the kill reconnects by itself.
            assert client.submit(pow, 2, 10, pure=False).result(timeout=DEADLINE) == 1024
        finally:
            client.close()
    else:
        from clusterkit.backends.spark import session_usable

        session = held.session()
        try:
            assert session.range(100).count() == 100
            scheduler.kill()
            found = wait_healthy(held)  # no user action: master back, every worker registered
            assert len(found.alive_workers) == WORKERS

            def noticed() -> None:
                if session_usable(session):
                    raise NotReady("the session has not noticed the restarted master yet")

            wait_for(noticed, what="the session to notice", timeout=DEADLINE, interval=0.5)
            with pytest.raises(Exception, match="no longer knows this application"):
                session.range(1000).count()  # raises instead of hanging
        finally:
            spark_stop(session)
        fresh = held.session()
        try:
            assert fresh is not session and fresh.range(1000).count() == 1000
        finally:
            spark_stop(fresh)
    scheduler.reload()
    assert scheduler.status == "running"


def test_the_scheduler_address_alone_is_enough_on_non_default_ports(held):
    """Spark: the driver's settings come from the running cluster (its web UI port, its workers'
    network), not from defaults that fit one port layout."""
    wait_healthy(held)
    address = held.client_spec.scheduler_address
    assert held.client_spec.scheduler_port != 7077 and held.client_spec.dashboard_port != 8080
    if held.spec.backend == "dask":
        from clusterkit import dask

        client = dask.connect_to_scheduler(address, timeout=60)
        try:
            assert client.submit(sum, range(100)).result(timeout=60) == 4950
        finally:
            client.close()
        return
    from clusterkit import spark

    session = spark.connect_to_scheduler(address, timeout=60)  # no ui_port, no driver_host
    try:
        assert session.sparkContext.getConf().get("spark.driver.host") != "127.0.0.1"
        assert session.sparkContext.parallelize(range(1000), 4).map(lambda x: x * 2).sum() == 999000
    finally:
        spark_stop(session)


@pytest.mark.parametrize("held", [pytest.param("spark", marks=pytest.mark.spark)], indirect=True)
def test_a_job_whose_executors_cannot_reach_the_driver_fails_and_says_where(held):
    """Spark only: a Dask client needs no connection from the workers."""
    from clusterkit import spark

    wait_healthy(held)
    # A loopback driver address: executors in containers can never reach it.
    session = spark.connect_to_scheduler(
        held.client_spec.scheduler_address, timeout=10, driver_host="127.0.0.1", python="python3"
    )
    try:
        with pytest.raises(Exception, match=r"connect back to this driver at 127\.0\.0\.1:\d+"):
            session.sparkContext.parallelize(range(10), 2).sum()
    finally:
        spark_stop(session)
