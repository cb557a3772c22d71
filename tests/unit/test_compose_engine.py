"""The compose file as engine calls: every key `render` writes is applied, none is dropped."""

import pytest

from clusterkit.render import compose
from clusterkit.runtimes import compose_engine as engine
from clusterkit.security import NODE_FILES, NODE_SECRETS_DIR
from clusterkit.spec import resolve_spec


def spec(**overrides):
    return resolve_spec(overrides=overrides, environ={})


def test_scheduler_container_as_compose_names_and_labels_it():
    doc = engine.unescape(compose.render(spec(name="e1", env={"A": "x$y"}), "img:1"))
    options = engine.container_options(doc, "scheduler", "clusterkit-e1", 1)
    assert options["name"] == "clusterkit-e1_scheduler_1"
    assert options["labels"][engine.PROJECT] == "clusterkit-e1"
    assert options["labels"][engine.SERVICE] == "scheduler"
    assert options["labels"][engine.NUMBER] == "1"
    assert options["labels"]["clusterkit.role"] == "scheduler"
    assert options["environment"]["A"] == "x$y"  # verbatim: the file's `$$` is Compose's escape
    assert options["hostname"] == "scheduler"
    assert options["ports"] == [8786, 8787]
    assert options["stop_timeout"] == compose.STOP_GRACE
    assert options["healthcheck"]["Interval"] == 5 * 10**9


def test_worker_host_config_has_the_limits_and_isolation():
    doc = engine.unescape(compose.render(spec(name="e2", cores=2, memory="2g", user="1234:1234"), "img:1"))
    host = engine.host_options(doc, "worker")
    assert host["nano_cpus"] == 2 * 10**9
    assert host["mem_limit"] == doc["services"]["worker"]["mem_limit"]
    assert host["read_only"] is True
    assert host["cap_drop"] == ["ALL"]
    assert host["restart_policy"] == {"Name": "unless-stopped"}
    assert "port_bindings" not in host
    assert engine.container_options(doc, "worker", "p", 3)["user"] == "1234:1234"


def test_published_ports_keep_their_address():
    doc = compose.render(spec(name="e3", bind_address="::1"), "img")
    assert engine.host_options(doc, "scheduler")["port_bindings"]["8786/tcp"] == ("::1", 8786)


def test_secrets_and_shared_folders_are_bind_mounts(tmp_path):
    doc = compose.render(spec(name="e4", security="tls", mounts=(f"{tmp_path}:ro",)), "img", str(tmp_path))
    mounts = engine.host_options(doc, "worker")["mounts"]
    targets = {m["Target"]: m for m in mounts}
    assert targets[str(tmp_path)]["ReadOnly"] is True
    for name in NODE_FILES:
        assert targets[f"{NODE_SECRETS_DIR}/{name}"]["Source"] == f"{tmp_path}/{name}"


def test_a_key_render_adds_is_not_dropped_silently():
    doc = compose.render(spec(name="e5"), "img")
    doc["services"]["worker"]["shm_size"] = "1g"
    with pytest.raises(ValueError, match="shm_size"):
        engine.container_options(doc, "worker", "p", 1)
