"""The stack renderer is pure: spec in, a swarm stack dict out, no Docker. Every spec field shows."""

from __future__ import annotations

import json

import pytest

from clusterkit import labels
from clusterkit.backends import get_backend
from clusterkit.facts import BACKENDS, DEFAULT_BACKEND
from clusterkit.render import stack
from clusterkit.spec import resolve_spec


def spec(**overrides):
    return resolve_spec(overrides={"security": "tls", **overrides}, environ={})


def services(doc):
    return doc["services"]["scheduler"], doc["services"]["worker"]


def test_format_and_keys_the_stack_schema_accepts():
    doc = stack.render(spec(), "img:1")
    assert doc["version"] == "3.8"
    for svc in services(doc):
        assert svc["init"] is True and svc["image"] == "img:1"
        assert "depends_on" not in svc and "scale" not in svc and "cpus" not in svc and "mem_limit" not in svc
        assert svc["deploy"]["restart_policy"] == {"condition": "any", "delay": "1s"}
        assert svc["deploy"]["endpoint_mode"] == "dnsrr"
        assert svc["healthcheck"]["test"][:4] == ["CMD", "python", "-m", "clusterkit.probe"]


def test_workers_cores_memory_become_replicas_and_resources():
    _, worker = services(stack.render(spec(workers=5, cores=2, memory="2g"), "img"))
    assert worker["deploy"]["replicas"] == 5
    assert worker["deploy"]["resources"]["limits"] == {
        "cpus": "2.0",
        "memory": "2560M",
    }  # + the default backend's 512m
    assert worker["deploy"]["resources"]["reservations"] == {"memory": "2048M"}
    assert worker["command"][worker["command"].index("--cores") + 1] == "2"


def test_scheduler_on_a_manager_workers_spread():
    scheduler, worker = services(stack.render(spec(), "img", scheduler_node="abc123"))
    assert scheduler["deploy"]["placement"]["constraints"] == ["node.role == manager", "node.id == abc123"]
    assert scheduler["deploy"]["replicas"] == 1
    assert worker["deploy"]["placement"] == {"preferences": [{"spread": "node.id"}]}
    _, capped = services(stack.render(spec(max_replicas_per_node=1), "img"))
    assert capped["deploy"]["placement"]["max_replicas_per_node"] == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_scheduler_port_in_host_mode_or_forwarded_and_no_dashboard_published(backend):
    rendered = stack.render(spec(backend=backend, scheduler_port=9000, dashboard_port=9001), "img")
    scheduler, worker = services(rendered)
    if get_backend(backend).listens_on_all_interfaces:
        assert scheduler["ports"] == [{"target": 9000, "published": 9000, "protocol": "tcp", "mode": "host"}]
    else:
        assert "ports" not in scheduler  # it binds only its overlay address: the runtime forwards it
    assert "ports" not in worker


def test_network_is_an_attachable_overlay_encrypted_on_request():
    doc = stack.render(spec(name="lab"), "img")
    net = doc["networks"]["cluster"]
    assert net["driver"] == "overlay" and net["attachable"] is True and net["name"] == "clusterkit-lab"
    assert "driver_opts" not in net
    assert stack.render(spec(encrypted=True), "img")["networks"]["cluster"]["driver_opts"] == {
        "encrypted": ""
    }


def test_labels_on_services_containers_and_network_and_the_spec_is_recorded():
    doc = stack.render(spec(name="lab", workers=3), "img")
    scheduler, worker = services(doc)
    for svc, role in ((scheduler, "scheduler"), (worker, "worker")):
        expected = labels.cluster_labels("lab", DEFAULT_BACKEND, "swarm", role)
        assert expected.items() <= svc["labels"].items()
        assert expected.items() <= svc["deploy"]["labels"].items()
    assert json.loads(scheduler["deploy"]["labels"][labels.SPEC])["workers"] == 3
    assert doc["networks"]["cluster"]["labels"][labels.CLUSTER] == "lab"


def test_secrets_are_external_per_deployment_and_owned_by_the_node_user():
    doc = stack.render(spec(name="lab"), "img", deployment="d1")
    assert set(doc["secrets"]) == set(stack.secret_names("lab", "d1").values())
    assert all(s == {"external": True} for s in doc["secrets"].values())  # never inline in the file
    mounted = doc["services"]["worker"]["secrets"]
    assert {m["target"] for m in mounted} >= {
        "clusterkit-ca.pem",
        "clusterkit-node.pem",
        "clusterkit-node-key.pem",
    }
    assert all(m["uid"] == "1000" and m["mode"] == 0o400 for m in mounted)
    assert "--secrets" in doc["services"]["scheduler"]["command"]
    assert stack.secret_names("lab", "d1") != stack.secret_names("lab", "d2")


def test_without_security_there_are_no_secrets():
    doc = stack.render(spec(security="none"), "img")
    assert "secrets" not in doc and "--secrets" not in doc["services"]["scheduler"]["command"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_env_reaches_every_node_verbatim(backend):
    """`docker stack deploy` interpolates `$`: the file doubles it, so the node gets the value as given."""
    doc = stack.render(spec(backend=backend, env={"A": "x$y", "B": "p$$q"}), "img")
    for svc in services(doc):
        assert svc["environment"] == {**svc["environment"], "A": "x$$y", "B": "p$$$$q"}
    assert '"A": "x$$y"' in doc["services"]["scheduler"]["deploy"]["labels"][labels.SPEC]
