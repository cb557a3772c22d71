"""The pytest plugin on a shared engine: sessions that own their clusters, and touch nothing else.

Each test runs pytest in a subprocess on a small generated project, as a user runs it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from clusterkit.runtimes import leases
from clusterkit.waiting import NotReady, wait_for
from tests.integration.conftest import leftovers
from tests.integration.test_pytest_plugin import RECORD, names_seen

PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"]


def run_suite(cwd: Path, record_dir: Path, *args: str, env: dict | None = None, prefix=(), timeout=600):
    full = {**os.environ, "CK_RECORD_DIR": str(record_dir), **(env or {})}
    return subprocess.run(
        [*prefix, *PYTEST, *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout
    )


class CountingSocket:
    """A unix socket standing in for the engine: it counts connections and answers none."""

    def __init__(self, path: Path) -> None:
        self.path, self.connections = path, 0
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(path))
        self.server.listen(16)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.server.close()


def test_a_session_without_cluster_fixtures_never_calls_the_engine(pytester, tmp_path):
    pytester.makepyfile(
        test_plain="def test_one():\n    assert 1 + 1 == 2\n",
        test_cluster="def test_cluster(dask_cluster):\n    raise AssertionError('no engine here')\n",
    )
    engine = CountingSocket(tmp_path / "engine.sock")
    try:
        env = {"DOCKER_HOST": f"unix://{engine.path}", "CLUSTERKIT_REQUIRE_DOCKER": "0"}
        plain = run_suite(pytester.path, tmp_path / "rec", "test_plain.py", env=env)
        assert "1 passed" in plain.stdout, plain.stdout + plain.stderr
        assert "clusterkit" not in plain.stdout + plain.stderr
        assert engine.connections == 0, "the plugin contacted the engine in a session without a cluster"
        # The counter works: a session that asks for a cluster does reach the socket (and skips).
        used = run_suite(pytester.path, tmp_path / "rec", "test_cluster.py", "-rs", env=env)
        assert "1 skipped" in used.stdout, used.stdout + used.stderr
        assert engine.connections > 0
    finally:
        engine.close()


def test_the_spec_file_is_read_only_when_named(pytester, tmp_path):
    pytester.makefile(".yaml", clusterkit="env: {CK_FROM: cwd}\n", named="env: {CK_FROM: ini}\n")
    pytester.makefile(".yaml", other="env: {CK_FROM: option}\n")
    pytester.makepyfile(
        test_spec="""
import os
from clusterkit.spec import resolve_spec
from clusterkit.testing.plugin import spec_file

def test_which(request):
    found = dict(resolve_spec(spec_file(request.config), environ={}).env).get("CK_FROM")
    assert found == os.environ["CK_EXPECT"]
"""
    )
    for expect, args in (("ini", ()), ("option", ("--clusterkit-spec", "other.yaml"))):
        pytester.makeini("[pytest]\nclusterkit_spec = named.yaml\n")
        result = run_suite(pytester.path, tmp_path / "rec", *args, env={"CK_EXPECT": expect})
        assert "1 passed" in result.stdout, (expect, result.stdout + result.stderr)
    (pytester.path / "tox.ini").unlink()
    pytester.makeini("[pytest]\n")
    result = run_suite(pytester.path, tmp_path / "rec", "-k", "which", env={"CK_EXPECT": ""})
    assert "1 failed" in result.stdout and "None == ''" in result.stdout, "./clusterkit.yaml must not be read"


@pytest.mark.docker
@pytest.mark.slow
def test_fixtures_keep_testcontainers_settings_and_ignore_the_cwd_spec(pytester, docker_client, tmp_path):
    pytester.makefile(".yaml", clusterkit="env: {CK_FROM: cwd}\n")
    pytester.makepyfile(
        record=RECORD,
        test_settings="""
from testcontainers.core.config import testcontainers_config as tc
from record import record

BEFORE = dict(vars(tc))

def test_cluster(dask_cluster):
    record(dask_cluster, "c")
    assert dask_cluster.client.submit(pow, 3, 2).result() == 9
    assert dict(dask_cluster.spec.env).get("CK_FROM") is None

def test_settings_unchanged():
    assert dict(vars(tc)) == BEFORE
    assert not tc.ryuk_disabled and tc.tc_host_override is None
""",
    )
    result = run_suite(pytester.path, tmp_path / "rec", env={"TESTCONTAINERS_RYUK_DISABLED": "false"})
    try:
        assert "2 passed" in result.stdout, result.stdout + result.stderr
    finally:
        for name in names_seen(tmp_path / "rec"):
            assert leftovers(docker_client, name) == []


HOLD = """
import os, pathlib, time
from record import record

def test_holds(dask_cluster):
    record(dask_cluster, "held")
    go = pathlib.Path(os.environ["CK_GO"])
    deadline = time.monotonic() + 600
    while not go.exists() and time.monotonic() < deadline:  # the outer test says when
        time.sleep(0.2)
    assert dask_cluster.client.submit(pow, 2, 5).result() == 32
"""


def _swept(cli) -> str:
    swept = cli("gc")
    assert swept.returncode == 0, swept.stderr
    return swept.stdout


@pytest.mark.docker
@pytest.mark.slow
def test_a_session_in_another_pid_namespace_keeps_its_cluster_until_killed(
    pytester, docker_client, tmp_path, cli
):
    pytester.makepyfile(record=RECORD, test_hold=HOLD)
    go = tmp_path / "go"
    env = {
        **os.environ,
        "CK_RECORD_DIR": str(tmp_path / "rec"),
        "CK_GO": str(go),
        "CLUSTERKIT_LEASE_SECONDS": "10",
    }
    unshare = ["unshare", "--pid", "--fork", "--mount-proc"]
    proc = subprocess.Popen(
        [*unshare, *PYTEST],
        cwd=pytester.path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    name = ""
    try:

        def recorded() -> str:
            seen = names_seen(tmp_path / "rec")
            if not seen:
                raise NotReady("the namespaced session has not started its cluster yet")
            return seen.pop()

        name = wait_for(recorded, what="the namespaced session's cluster", timeout=300, interval=0.5)
        scheduler = docker_client.containers.list(
            filters={"label": [f"clusterkit.cluster={name}", "clusterkit.role=scheduler"]}
        )[0]
        created = leases.engine_time(scheduler.attrs["Created"])

        def renewed_past_its_ttl() -> None:
            lease = leases.read(docker_client, name)
            if not lease or lease["renewed"] < created + 2 * lease["ttl"]:
                raise NotReady(f"the lease has not been renewed beyond two lease periods yet ({lease})")

        wait_for(renewed_past_its_ttl, what="the owner to renew its lease", timeout=120, interval=1)
        assert name not in _swept(cli), "a live session's cluster was swept"
        assert leftovers(docker_client, name), "the live session's cluster must survive the sweep"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    if not name:
        return

    def removed() -> None:
        if leftovers(docker_client, name):
            _swept(cli)
            raise NotReady("the killed session's cluster is still there")

    try:
        wait_for(removed, what="gc to remove the killed session's cluster", timeout=90, interval=2)
    finally:
        selector = {"label": [f"clusterkit.cluster={name}"]}
        for container in docker_client.containers.list(all=True, filters=selector):
            container.remove(force=True)
        for network in docker_client.networks.list(filters=selector):
            network.remove()


@pytest.mark.docker
@pytest.mark.slow
def test_a_sigkilled_xdist_worker_does_not_keep_the_cluster_alive(pytester, docker_client, tmp_path):
    pytester.makepyfile(
        record=RECORD,
        test_crash="""
import os, signal
import pytest
from record import record

@pytest.mark.parametrize("i", range(4))
def test_uses(dask_cluster, i):
    record(dask_cluster, f"t{i}")
    assert dask_cluster.client.submit(pow, i, 2).result() == i * i
    if i == 1:
        os.kill(os.getpid(), signal.SIGKILL)  # this worker never gives its share back
""",
    )
    result = run_suite(pytester.path, tmp_path / "rec", "-n", "2")
    names = names_seen(tmp_path / "rec")
    try:
        assert "crashed" in result.stdout + result.stderr, result.stdout + result.stderr
        assert len(names) == 1, names
    finally:
        for name in names:
            assert leftovers(docker_client, name) == []


@pytest.mark.docker
@pytest.mark.slow
def test_a_python_cluster_on_testcontainers_holds_a_lease(docker_client, cluster_names, run_dir):
    from clusterkit import Cluster, cluster
    from clusterkit.facts import DASK

    name = "ck-lease-object"
    cluster_names.append(name)
    with Cluster(DASK.name, runtime="testcontainers", workers=2, name=name, supervise=False) as held:
        lease = leases.read(docker_client, name)
        assert lease is not None and lease["session"] == held.runtime.session
        assert not leases.expired(docker_client, name, created=0.0)
        assert f"cluster {name} (testcontainers)" not in cluster.gc(), "a live holder's cluster was swept"
        assert leftovers(docker_client, name)
    assert leftovers(docker_client, name) == []


@pytest.mark.docker
@pytest.mark.slow
def test_a_kept_cluster_outlives_its_session_and_the_sweep(pytester, docker_client, tmp_path, cli):
    pytester.makepyfile(
        record=RECORD,
        test_keep="""
from record import record

def test_cluster(dask_cluster):
    record(dask_cluster, "k")
    assert dask_cluster.client.submit(pow, 2, 3).result() == 8
""",
    )
    result = run_suite(pytester.path, tmp_path / "rec", "--clusterkit-keep")
    names = names_seen(tmp_path / "rec")
    try:
        assert "1 passed" in result.stdout, result.stdout + result.stderr
        (name,) = names
        lease = leases.read(docker_client, name)
        assert lease is not None and lease["ttl"] == leases.KEPT
        assert name not in _swept(cli), "a kept cluster is the user's until `clusterkit down`"
        assert leftovers(docker_client, name)
    finally:
        for name in names:
            cli("down", "--name", name)
            assert leftovers(docker_client, name) == []
