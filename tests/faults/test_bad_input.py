"""Bad input through the real command: one clear line, exit 2, nothing left, no healthy cluster harmed.

A healthy "bystander" cluster runs through the whole module: cases aim at
it (its name on another runtime, its port, its logs, its scale) and at
the end it must still be healthy. Every other case names a cluster of its
own, and nothing of it may exist afterwards.
"""

from __future__ import annotations

import pytest

from clusterkit import cluster, images
from clusterkit.spec import resolve_spec
from tests.conftest import free_port
from tests.faults.conftest import leftovers, remove_cluster

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.faults]

BYSTANDER = "ck-bystander"
#: What Compose would have rewritten (``$`` interpolation): the bystander's nodes get it verbatim.
ENV = {
    "DOLLAR": "abc$def",
    "DOUBLE": "x$$y",
    "BRACES": "${HOME}",
    "QUOTES": 'it\'s "quoted"',
    "SPACES": "  two  spaces  ",
    "NEWLINE": "line1\nline2",
}
#: Filled in from the running bystander: "{port}" is its scheduler port.
PORT = "{port}"

# (arguments, message fragment); every one must exit 2 with exactly one line on stderr.
UP = [
    (["--backend", "ray"], "backend: 'ray' is not a known backend"),
    (["--backend", "dsak"], "did you mean 'dask'"),
    (["--workers", "0"], "workers: 0 is not valid"),
    (["--workers", "-3"], "workers: -3 is not valid"),
    (["--workers", "1000"], "workers: 1000 is not valid"),
    (["--workers", "two"], "workers: 'two' is not valid"),
    (["--workers", "1.5"], "workers: '1.5' is not valid"),
    (["--cores", "0"], "cores: 0 is not valid"),
    (["--cores", "two"], "cores: 'two' is not valid"),
    (["--cores", "1000"], "cores: 1000 is not valid"),
    (["--memory", "lots"], "memory: 'lots' is not valid"),
    (["--memory", "1k"], "at least 128m"),
    (["--memory", "-1g"], "memory: '-1g' is not valid"),
    (["--memory", "10t"], "more than this machine has"),
    (["--runtime", "compose", "--memory", "10t"], "more than the Docker engine has"),
    (["--scheduler-port", "70000"], "scheduler_port: 70000 is not valid"),
    (["--scheduler-port", "0"], "scheduler_port: 0 is not valid"),
    (["--scheduler-port", "http"], "scheduler_port: 'http' is not valid"),
    (["--dashboard-port", "-1"], "dashboard_port: -1 is not valid"),
    (["--scheduler-port", "19000", "--dashboard-port", "19000"], "different from scheduler_port"),
    (["--name", "Bad Name"], "name: 'Bad Name' is not valid"),
    (["--name=-x"], "name: '-x' is not valid"),
    (["--name", "x" * 50], "at most 41 characters"),
    (["--bind", "10.1.2.3"], "10.1.2.3 is not an address of this machine"),
    (["--runtime", "compose", "--bind", "10.1.2.3"], "10.1.2.3 is not an address of this machine"),
    (["--bind", "localhost"], "bind_address: 'localhost' is not valid"),
    (["--bind", "999.1.1.1"], "bind_address: '999.1.1.1' is not valid"),
    (["--env", "NOEQUALS"], "expected NAME=value"),
    (["--env", "1BAD=x"], "variable names"),
    (["--env", "A-B=x"], "variable names"),
    (["--timeout", "-5"], "timeout: -5 is not valid"),
    (["--timeout", "0"], "timeout: 0 is not valid"),
    (["--timeout", "abc"], "timeout: 'abc' is not valid"),
    (["--timeout", "nan"], "timeout: 'nan' is not valid"),
    (["--runtime", "compose", "--image", ""], "image: '' is not valid"),
    (["--runtime", "compose", "--image", "clusterkit/nope:missing"], "is not present on the engine"),
    (["--runtime", "compose", "--image", "{base}"], "not a clusterkit node image"),
    (["--runtime", "compose", "--image", "{spark}"], "is a clusterkit spark image, not a dask node image"),
    (["--runtime", "compose", "--image", "Not A Reference"], "cannot be looked up"),
    (["--file", "does-not-exist.yaml"], "does not exist"),
    (["--file", "{binary}"], "is not text"),
    (["--file", "{bad_yaml}"], "not valid YAML at line"),
    (["--file", "{unknown_key}"], "unknown key 'wrokers'"),
    (["--file", "{a_list}"], "must be a mapping"),
    (["--file", "{folder}"], "is a directory"),
    (["--runtime", "kubernetes"], "'kubernetes' is not one of"),
    (["--no-such-flag"], "No such option"),
    (
        ["--runtime", "local", "--name", BYSTANDER],
        f"a cluster named '{BYSTANDER}' already runs on the compose",
    ),
    (["--runtime", "compose", "--scheduler-port", PORT], "is already in use"),
]

# Commands on clusters: (arguments, message fragment).
OTHER = [
    (["logs", "nosuchservice", "--name", BYSTANDER], "service: 'nosuchservice' is not valid"),
    (["scale", "-1", "--name", BYSTANDER], "workers: '-1' is not valid"),
    (["scale", "0", "--name", BYSTANDER], "workers: '0' is not valid"),
    (["scale", "abc", "--name", BYSTANDER], "workers: 'abc' is not valid"),
    (["scale", "2", "--name", BYSTANDER, "--timeout", "-1"], "timeout: -1 is not valid"),
    (["status", "--name", "ck-nothere"], "no running cluster named 'ck-nothere'"),
    (["down", "--name", "Bad Name"], "name: 'Bad Name' is not valid"),  # a missing name: exit 0
    (["logs", "--name", "ck-nothere"], "no running cluster named 'ck-nothere'"),
    (["doctor", "--tolerance", "bogus"], "'bogus' is not one of"),
    (["render", "--format", "bogus"], "'bogus' is not one of"),
]


@pytest.fixture(scope="module")
def bystander(docker_client, node_images):
    remove_cluster(docker_client, BYSTANDER)
    spec = resolve_spec(
        overrides={
            "name": BYSTANDER,
            "workers": 1,
            "scheduler_port": free_port(),
            "dashboard_port": free_port(),
            "env": ENV,
        },
        environ={},
    )
    try:
        cluster.up(spec, "compose", timeout=300)
        yield spec
        assert cluster.status(BYSTANDER, "compose").health == "healthy", (
            "a bad input harmed a healthy cluster"
        )
    finally:
        remove_cluster(docker_client, BYSTANDER)


@pytest.fixture
def files(tmp_path):
    (tmp_path / "binary.yaml").write_bytes(bytes(range(256)))
    (tmp_path / "bad.yaml").write_text("backend: dask\nworkers: [1\n")
    (tmp_path / "unknown.yaml").write_text("backend: dask\nwrokers: 2\n")
    (tmp_path / "list.yaml").write_text("- dask\n- spark\n")
    (tmp_path / "folder").mkdir()
    return {
        "binary": str(tmp_path / "binary.yaml"),
        "bad_yaml": str(tmp_path / "bad.yaml"),
        "unknown_key": str(tmp_path / "unknown.yaml"),
        "a_list": str(tmp_path / "list.yaml"),
        "folder": str(tmp_path / "folder"),
        "base": images.base_tag(False),
        "spark": images.image_tag("spark"),
    }


def _filled(args, files, bystander):
    return [a.format(port=bystander.scheduler_port, **files) if "{" in a else a for a in args]


def _one_clear_line(result, message):
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(("args", "message"), UP, ids=[" ".join(a)[:40] for a, _ in UP])
def test_bad_up_is_one_line_exit_2_and_leaves_nothing(
    args, message, cli, run_dir, files, bystander, docker_client
):
    own = [] if "--name" in args or any(a.startswith("--name=") for a in args) else ["--name", "ck-bad"]
    defaults = ["--runtime", "local"] if "--runtime" not in args else []
    ports = []
    if "--scheduler-port" not in args:
        ports += ["--scheduler-port", str(free_port())]
    if "--dashboard-port" not in args:
        ports += ["--dashboard-port", str(free_port())]
    result = cli("up", *defaults, *own, *ports, *_filled(args, files, bystander))
    _one_clear_line(result, message)
    assert leftovers(docker_client, "ck-bad") == []
    assert not list(run_dir.glob("*/state.json")), "a local cluster was started"


@pytest.mark.parametrize(("args", "message"), OTHER, ids=[" ".join(a)[:40] for a, _ in OTHER])
def test_bad_command_on_a_cluster_is_one_line_exit_2(args, message, cli, bystander):
    _one_clear_line(cli(*args), message)


def test_env_values_reach_the_nodes_verbatim(bystander, docker_client):
    for role in ("scheduler", "worker"):
        selector = {"label": [f"clusterkit.cluster={BYSTANDER}", f"clusterkit.role={role}"]}
        container = docker_client.containers.list(filters=selector)[0]
        env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])
        assert {k: env.get(k) for k in ENV} == ENV, role
    assert dict(cluster.find(BYSTANDER)[0].spec_of(BYSTANDER).env) == ENV  # the recorded spec, too


def test_there_are_at_least_40_cases():
    assert len(UP) + len(OTHER) >= 40


def test_bind_ipv6_wildcard_publishes_there_polls_there_and_warns(cli, run_dir, docker_client, node_images):
    """``--bind ::`` used to poll 127.0.0.1 until the deadline and then remove a healthy cluster."""
    name = "ck-bind-v6"
    remove_cluster(docker_client, name)
    try:
        result = cli(
            "up",
            "--runtime",
            "compose",
            "--name",
            name,
            "--workers",
            "1",
            "--bind",
            "::",
            "--no-supervise",
            "--scheduler-port",
            str(free_port()),
            "--dashboard-port",
            str(free_port()),
            "--timeout",
            "240",
        )
        assert result.returncode == 0, result.stderr
        assert "published on :: without authentication" in result.stderr
        found = cluster.status(name)
        assert found.health == "healthy" and found.scheduler_address.startswith("[::1]:")
        container = docker_client.containers.list(
            filters={"label": [f"clusterkit.cluster={name}", "clusterkit.role=scheduler"]}
        )[0]
        bound = {b["HostIp"] for p in container.attrs["NetworkSettings"]["Ports"].values() for b in p or []}
        assert bound == {"::"}, bound
    finally:
        remove_cluster(docker_client, name)
    assert leftovers(docker_client, name) == []


def test_a_node_that_cannot_start_is_named_with_its_logs(cli, run_dir, docker_client, node_images):
    """Compose alone says "Encountered errors while bringing up the project"; the kit adds the nodes'
    states and last log lines, names the project, and removes what started."""
    name = "ck-broken-node"
    remove_cluster(docker_client, name)
    try:
        result = cli(
            "up",
            "--runtime",
            "compose",
            "--name",
            name,
            "--workers",
            "1",
            "--env",
            "DASK_DISTRIBUTED__COMM__DEFAULT_SCHEME=nosuchscheme",
            "--scheduler-port",
            str(free_port()),
            "--dashboard-port",
            str(free_port()),
            "--timeout",
            "45",
        )
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr.split("last log lines:")[0]
        if "-f compose.yml" in result.stderr:  # the Compose command is shown: with its project
            assert f"-p clusterkit-{name} " in result.stderr, result.stderr
        assert "scheduler" in result.stderr and "last log lines:" in result.stderr
        assert "nosuchscheme" in result.stderr  # the scheduler's own words
        assert leftovers(docker_client, name) == []
    finally:
        remove_cluster(docker_client, name)
