"""The Python ``Cluster`` as distributed's clusters behave (issue 19), on real local processes.

``asynchronous=True`` (``await``, ``async with``, ``Client(cluster, asynchronous=True)``),
``get_logs()``, ``status`` as a state, and LocalCluster's argument names. No images needed.
"""

from __future__ import annotations

import asyncio

import pytest

from clusterkit import Cluster
from clusterkit.clusters import Status

pytestmark = pytest.mark.slow


def test_dask_async_with_an_async_client_and_aliases(teardown):
    from distributed import Client

    teardown.append("ck-api-dask-async")

    async def main():
        held = Cluster(
            "dask",
            name="ck-api-dask-async",
            runtime="local",
            asynchronous=True,
            n_workers=1,
            threads_per_worker=2,
            memory_limit="512MiB",
        )
        assert held.status == Status.created and not held.runtime.exists("ck-api-dask-async")
        async with held as c:
            assert c.status == Status.running
            async with Client(c, asynchronous=True) as client:
                assert await client.submit(sum, range(10)) == 45
                info = await client.scheduler.identity(n_workers=-1)
                (worker,) = info["workers"].values()
                assert worker["nthreads"] == 2 and worker["memory_limit"] == 512 * 2**20
            logs = await c.get_logs()
            assert {"Cluster", "Scheduler"} <= set(logs) and len(logs) == 3
            assert "Scheduler at" in logs["Scheduler"]
        return held

    held = asyncio.run(main())
    assert held.status == Status.closed and not held.runtime.exists("ck-api-dask-async")


def test_dask_await_and_await_close(teardown):
    teardown.append("ck-api-dask-await")

    async def main():
        c = await Cluster("dask", name="ck-api-dask-await", runtime="local", asynchronous=True, workers=1)
        try:
            assert c.status == Status.running and len(c.workers) == 1
            assert c.runtime.exists("ck-api-dask-await")
        finally:
            await c.close()
        return c

    c = asyncio.run(main())
    assert c.status == Status.closed and not c.runtime.exists("ck-api-dask-await")


def test_dask_get_logs_status_and_report(teardown, capsys):
    import warnings

    from clusterkit.drift import DriftWarning

    teardown.append("ck-api-dask")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        held = Cluster("dask", name="ck-api-dask", runtime="local", n_workers=2, memory_limit=2**29)
    assert [w for w in caught if issubclass(w.category, DriftWarning)] == []  # the same interpreter
    with held as c:
        assert c.status == Status.running and c.report().health == "healthy"
        assert c.spec.memory == 2**29
        one = sorted(c.workers)[0]
        logs = c.get_logs(cluster=False, scheduler=False, workers=[one])
        assert list(logs) == [one.removeprefix("ck-api-dask-")]
        assert set(c.get_logs(cluster=False, workers=False)) == {"Scheduler"}
        c.logs("scheduler")
        assert "==> Scheduler <==" in capsys.readouterr().out
    assert c.status == Status.closed


def test_spark_async_get_logs_and_repr(teardown):
    teardown.append("ck-api-spark")

    async def main():
        async with Cluster(
            "spark", name="ck-api-spark", runtime="local", asynchronous=True, n_workers=1
        ) as c:
            assert c.status == Status.running
            logs = await c.get_logs()
            assert set(logs) >= {"Scheduler", "worker-1"}, list(logs)
            html = c._repr_html_()
            assert c.scheduler_address in html and "1 registered of 1 wanted" in html
        return c

    c = asyncio.run(main())
    assert c.status == Status.closed and not c.runtime.exists("ck-api-spark")
