"""The Python ``Cluster`` takes a unique name and free ports where nothing set them; the CLI keeps its own."""

from __future__ import annotations

import socket

import pytest

from clusterkit.clusters.base import fresh_defaults
from clusterkit.errors import BadAddress
from clusterkit.facts import DASK, DEFAULT_BACKEND, SPARK
from clusterkit.net import ensure_port_free, free_ports
from clusterkit.spec import resolve_spec


def held(port: int) -> socket.socket:
    """A listener on ``port``, as a running ``LocalCluster`` holds 8786/8787."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen()
    return s


def test_the_cli_keeps_the_documented_name_and_ports():
    spec = resolve_spec(overrides={"backend": DASK.name}, environ={})
    assert (spec.name, spec.scheduler_port, spec.dashboard_port) == (
        DASK.name,
        DASK.scheduler_port,
        DASK.dashboard_port,
    )


@pytest.mark.parametrize("backend", [DASK.name, SPARK.name])
def test_two_python_clusters_get_distinct_names_and_free_ports(backend):
    first = resolve_spec(overrides={"backend": backend}, environ={}, defaults=fresh_defaults)
    second = resolve_spec(overrides={"backend": backend}, environ={}, defaults=fresh_defaults)
    assert first.name != second.name and first.name.startswith(f"{backend}-")
    ports = {first.scheduler_port, first.dashboard_port, second.scheduler_port, second.dashboard_port}
    assert len(ports) == 4
    for port in ports:
        ensure_port_free("127.0.0.1", port, "picked")


def test_free_ports_never_hand_out_a_port_something_holds():
    listener = held(0)
    try:
        taken = listener.getsockname()[1]
        picked = free_ports("127.0.0.1", 20, avoid={taken + 1})
        assert taken not in picked and taken + 1 not in picked
        assert len(set(picked)) == 20
    finally:
        listener.close()
    with pytest.raises(BadAddress, match="not an address of this machine"):
        free_ports("192.0.2.1", 1)  # TEST-NET-1: never this machine's


def test_arguments_environment_and_file_still_win(tmp_path):
    spec_file = tmp_path / "clusterkit.yaml"
    spec_file.write_text("name: from-yaml\ndashboard_port: 9101\n")
    from_file = resolve_spec(
        spec_file, overrides={"backend": DEFAULT_BACKEND}, environ={}, defaults=fresh_defaults
    )
    assert (from_file.name, from_file.dashboard_port) == ("from-yaml", 9101)
    assert from_file.scheduler_port not in (DASK.scheduler_port, 9101), "only the missing port is picked"

    environ = {"CLUSTERKIT_NAME": "from-env", "CLUSTERKIT_SCHEDULER_PORT": "9100"}
    from_env = resolve_spec(spec_file, overrides={}, environ=environ, defaults=fresh_defaults)
    assert (from_env.name, from_env.scheduler_port, from_env.dashboard_port) == ("from-env", 9100, 9101)

    given = {"name": "mine", "scheduler_port": 9200, "dashboard_port": 9201}
    argued = resolve_spec(spec_file, overrides=given, environ=environ, defaults=fresh_defaults)
    assert (argued.name, argued.scheduler_port, argued.dashboard_port) == ("mine", 9200, 9201)


def test_a_bad_bind_address_is_reported_by_the_spec_not_by_the_port_picker():
    from clusterkit.errors import InvalidValue

    with pytest.raises(InvalidValue, match="bind_address"):
        resolve_spec(overrides={"bind_address": "not-an-ip"}, environ={}, defaults=fresh_defaults)
