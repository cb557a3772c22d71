import json

from rich.console import Console

from clusterkit.status import ClusterStatus, WorkerStatus, local_versions


def make() -> ClusterStatus:
    return ClusterStatus(
        backend="dask",
        scheduler_address="127.0.0.1:8786",
        state="RUNNING",
        dashboard_url="http://127.0.0.1:8787/status",
        workers=(
            WorkerStatus("w1", "tcp://10.0.0.2:1", 2, 2**30, "RUNNING"),
            WorkerStatus("w2", "tcp://10.0.0.3:1", 2, 2**30, "CLOSING"),
        ),
        versions={"client": {"python": "3.11.7"}},
        name="demo",
        runtime="local",
    )


def test_json_round_trip():
    data = json.loads(make().to_json())
    assert data["workers"][0] == {
        "name": "w1",
        "address": "tcp://10.0.0.2:1",
        "cores": 2,
        "memory": 2**30,
        "state": "RUNNING",
        "node": None,  # only a swarm says which machine a worker runs on
    }
    assert data["name"] == "demo"


def test_table_shows_workers_and_alive_count():
    console = Console(record=True, width=120)
    make().render(console)
    text = console.export_text()
    assert "w1" in text and "1.0 GiB" in text and "1 of 2 workers alive" in text


def test_local_versions_has_python_and_dask():
    versions = local_versions()
    assert versions["python"].startswith("3.11")
    assert "distributed" in versions


def test_tracked_packages_come_from_the_facts_in_a_fixed_order():
    from clusterkit.status import TRACKED_PACKAGES

    assert TRACKED_PACKAGES == (
        "dask",
        "distributed",
        "cloudpickle",
        "msgpack",
        "tornado",
        "numpy",
        "pandas",
        "pyarrow",
        "pyspark",
        "py4j",
    )
