"""The compose renderer is pure: spec in, dict out, no Docker."""

from pathlib import Path

import pytest
import yaml

from clusterkit.backends import get_backend
from clusterkit.facts import BACKENDS, DEFAULT_BACKEND
from clusterkit.render import compose, default_files
from clusterkit.spec import resolve_spec

ROOT = Path(__file__).resolve().parents[2]


def spec(**overrides):
    return resolve_spec(overrides=overrides, environ={})


@pytest.mark.parametrize("name", [f"{b}{kind}.yml" for b in BACKENDS for kind in ("", "-stack")])
def test_checked_in_files_match_render(name):
    """compose/<backend>[-stack].yml is what `clusterkit render --backend <backend> [--format stack]` writes."""
    checked_in = (ROOT / "compose" / name).read_text()
    assert checked_in == default_files()[name], f"run `make render` to refresh compose/{name}"


def test_ports_bind_to_loopback_by_default():
    doc = compose.render(spec(), "img")
    assert doc["services"]["scheduler"]["ports"] == ["127.0.0.1:8786:8786", "127.0.0.1:8787:8787"]
    assert "ports" not in doc["services"]["worker"]


def test_bind_address_is_honoured():
    doc = compose.render(spec(bind_address="0.0.0.0", scheduler_port=9000, dashboard_port=9001), "img")
    assert doc["services"]["scheduler"]["ports"] == ["0.0.0.0:9000:9000", "0.0.0.0:9001:9001"]


def test_labels_on_every_service_and_the_network():
    doc = compose.render(spec(name="lab"), "img")
    for role, service in doc["services"].items():
        assert service["labels"]["clusterkit.project"] == "clusterkit"
        assert service["labels"]["clusterkit.cluster"] == "lab"
        assert service["labels"]["clusterkit.role"] == role
    network = doc["networks"]["cluster"]
    assert network["name"] == "clusterkit-lab"
    assert network["labels"]["clusterkit.cluster"] == "lab"


def test_workers_scale_limits_and_order():
    doc = compose.render(spec(workers=4, cores=2, memory="2g"), "img")
    worker = doc["services"]["worker"]
    assert worker["scale"] == 4
    assert worker["cpus"] == 2.0
    assert worker["mem_limit"] == 2 * 2**30 + get_backend(DEFAULT_BACKEND).memory_overhead
    # No health gate: workers start with the scheduler and wait for its port themselves.
    assert worker["depends_on"] == ["scheduler"]
    assert worker["restart"] == "unless-stopped"
    assert "--cores" in worker["command"] and "2048m" in worker["command"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_healthchecks_use_the_protocol_probe(backend):
    doc = compose.render(spec(backend=backend), "img")
    for role, service in doc["services"].items():
        test = service["healthcheck"]["test"]
        assert test[:5] == ["CMD", "python", "-m", "clusterkit.probe", role]
        assert "--backend" in test and backend in test


def test_spec_rides_on_the_scheduler_label():
    import json

    s = spec(backend=BACKENDS[-1], workers=3, env={"A": "1"})
    doc = compose.render(s, "img")
    recorded = json.loads(doc["services"]["scheduler"]["labels"]["clusterkit.spec"])
    assert resolve_spec(overrides=recorded, environ={}) == s
    assert doc["services"]["worker"]["environment"]["A"] == "1"


def test_no_keys_that_compose_v1_or_v2_reject():
    text = compose.dump(compose.render(spec(), "img"))
    doc = yaml.safe_load(text)
    assert set(doc) == {"services", "networks"}  # no version:, no name:
    assert "start_interval" not in text
