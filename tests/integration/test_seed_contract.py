"""The seed module's contract (``unified_map``'s cluster setup), run against clusterkit, both backends.

Code written against the seed catches ``ConnectionError`` when a scheduler
cannot be reached, when a port is taken and when ``connect_to_scheduler``
is given an address it cannot use; asks ``report_status()`` before any
connection and gets a status that says so; and runs a scheduler and a
worker with ``start_scheduler`` / ``start_worker``, connects, computes and
reports. Local processes only: no Docker.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket

import pytest

from clusterkit.errors import ClusterKitError, SpecError
from clusterkit.waiting import NotReady, wait_for
from tests.conftest import free_port

pytestmark = pytest.mark.slow

BACKENDS = ["dask", pytest.param("spark", marks=pytest.mark.spark)]


@pytest.fixture(params=BACKENDS)
def seed(request):
    """The seed API of one backend: ``clusterkit.dask`` or ``clusterkit.spark``."""
    return importlib.import_module(f"clusterkit.{request.param}")


def test_the_error_base_and_the_connection_errors():
    from clusterkit import ClusterKitError as FromPackage
    from clusterkit.errors import BadAddress, ClusterUnavailable, PortInUse

    assert FromPackage is ClusterKitError
    for error in (ClusterUnavailable, PortInUse, BadAddress):
        assert issubclass(error, ConnectionError) and issubclass(error, ClusterKitError)
    assert issubclass(PortInUse, SpecError) and issubclass(BadAddress, SpecError)  # exit 2 in the CLI


def test_report_status_with_no_connection_says_so(seed):
    fresh = type(seed.backend)()  # no connection made yet
    found = fresh.report_status()
    assert found.state == "NOT CONNECTED" and found.health == "down" and found.workers == ()
    assert "connect_to_scheduler" in found.problems[0]


def test_an_unreachable_scheduler_is_a_connection_error(seed):
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(ConnectionError, match=address):
        seed.connect_to_scheduler(address, timeout=2)


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1:1111111111", "expected 1 to 65535"),
        ("127.0.0.1:0", "expected 1 to 65535"),
        ("not an address", "expected host:port"),
        ("http://127.0.0.1:8786", "has scheme 'http'"),
    ],
)
def test_an_address_that_cannot_be_used_is_a_connection_error_that_says_why(seed, address, why):
    with pytest.raises(ConnectionError, match=why) as caught:
        seed.connect_to_scheduler(address, timeout=2)
    assert isinstance(caught.value, SpecError)


def test_a_taken_port_is_a_connection_error(seed):
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        with pytest.raises(ConnectionError, match=f"port {port} on 127.0.0.1 is already in use"):
            seed.start_scheduler(f"127.0.0.1:{port}", dashboard_port=free_port(), detach=True)


def _stop(procs) -> None:
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    for proc in procs:
        try:
            proc.wait(30)
        except Exception:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_start_connect_compute_report(seed, tmp_path):
    port, ui = free_port(), free_port()
    address = f"127.0.0.1:{port}"
    name = seed.backend.name
    procs = []
    try:
        with open(tmp_path / "scheduler.log", "ab") as log:
            procs.append(
                seed.start_scheduler(
                    address, dashboard_port=ui, detach=True, log=log, work_dir=str(tmp_path / "s")
                )
            )
        with open(tmp_path / "worker.log", "ab") as log:
            options = {"webui_port": 0} if name == "spark" else {}
            procs.append(
                seed.start_worker(
                    address,
                    cores=1,
                    memory="1g",
                    name="w1",
                    host="127.0.0.1",
                    detach=True,
                    log=log,
                    work_dir=str(tmp_path / "w"),
                    **options,
                )
            )
        connection = seed.connect_to_scheduler(address, timeout=90, ui_port=ui)
        try:

            def one_worker():
                found = seed.report_status()
                if len(found.alive_workers) != 1:
                    raise NotReady(f"{len(found.alive_workers)} workers")
                return found

            found = wait_for(one_worker, what="the worker", timeout=90, interval=0.5)
            worker = found.workers[0]
            assert worker.cores == 1 and worker.memory == 2**30 and worker.address
            assert found.state in ("RUNNING", "ALIVE")
            if name == "dask":
                assert worker.name == "w1"
                assert connection.submit(sum, range(10)).result(timeout=60) == 45
            else:
                assert connection.sparkContext.parallelize(range(10), 2).sum() == 45
        finally:
            seed.backend.close(connection)
    finally:
        _stop(procs)
