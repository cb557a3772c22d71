import pytest

from clusterkit import drift
from clusterkit.errors import InvalidValue, VersionMismatch

CLIENT = {
    "python": "3.11.7",
    "dask": "2026.8.0",
    "distributed": "2026.8.0",
    "cloudpickle": "3.1.3",
    "numpy": "2.4.6",
    "pyspark": "4.3.0",
    "lock": "abc",
}


def node(**changes):
    found = dict(CLIENT)
    found.update(changes)
    return {k: v for k, v in found.items() if v is not None}


def grades(versions, backend="dask", tolerance=None):
    return {
        (d.node, d.package): d.severity for d in drift.compare(versions, backend=backend, tolerance=tolerance)
    }


def test_same_environment_has_no_difference():
    assert drift.compare({"client": CLIENT, "w1": node()}, backend="dask") == []


def test_python_micro_is_info_minor_an_error():
    assert grades({"client": CLIENT, "w1": node(python="3.11.2")}) == {("w1", "python"): "info"}
    assert grades({"client": CLIENT, "w1": node(python="3.12.1")}) == {("w1", "python"): "error"}


@pytest.mark.parametrize("package", ["dask", "distributed", "cloudpickle"])
def test_serialising_packages_are_errors(package):
    assert grades({"client": CLIENT, "w1": node(**{package: "0.1"})}) == {("w1", package): "error"}


def test_other_packages_and_lock_are_warnings():
    found = grades({"client": CLIENT, "w1": node(numpy="1.26.4", lock="def")})
    assert found == {("w1", "numpy"): "warning", ("w1", "lock"): "warning"}


def test_missing_critical_package_is_an_error_other_backend_packages_ignored():
    # a Dask node without pyspark is fine; without distributed it is not
    assert grades({"client": CLIENT, "w1": node(pyspark=None)}) == {}
    assert grades({"client": CLIENT, "w1": node(distributed=None)}) == {("w1", "distributed"): "error"}
    # a Spark executor has no dask at all
    assert grades({"client": CLIENT, "e1": node(dask=None, distributed=None)}, backend="spark") == {}


def test_tolerance_shifts_the_line():
    versions = {"client": CLIENT, "w1": node(python="3.11.2", cloudpickle="3.0.0")}
    assert grades(versions, tolerance="strict") == {("w1", "python"): "error", ("w1", "cloudpickle"): "error"}
    assert grades(versions, tolerance="lenient") == {("w1", "cloudpickle"): "error"}
    with pytest.raises(InvalidValue, match="tolerance"):
        drift.compare(versions, backend="dask", tolerance="sloppy")


def test_raise_names_node_package_and_fix():
    found = drift.compare({"client": CLIENT, "w1": node(cloudpickle="3.0.0")}, backend="dask")
    with pytest.raises(VersionMismatch, match=r"w1: cloudpickle 3.0.0 \(client 3.1.3\).*make images venv"):
        drift.raise_on_errors(found)
    drift.raise_on_errors([d for d in found if d.severity == "warning"])  # warnings alone pass
