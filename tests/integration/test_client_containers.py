"""`clusterkit run` and `clusterkit shell` on the real engine: the client in the cluster's image and network.

One compose cluster per backend, shared by the module's tests; every test
checks that its client container is gone afterwards, and the module removes
the clusters by label, pass or fail.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from clusterkit import cluster
from clusterkit.errors import ClusterKitError
from clusterkit.spec import resolve_spec
from tests.conftest import free_port
from tests.integration.conftest import leftovers

pytestmark = [pytest.mark.docker, pytest.mark.slow]

#: What distributed prints when client and nodes differ, and clusterkit's own one-line note.
MISMATCH_NOTES = ("Mismatched versions", "VersionMismatchWarning", "version drift")


def clusterkit(*args: str, cwd: Path, input: str | None = None, timeout: float = 300):
    """The real command line, from ``cwd``, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "clusterkit", *args],
        cwd=cwd,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("__", ".")).write_text(textwrap.dedent(text))
    return folder


def client_containers(docker_client, name: str) -> list[str]:
    selector = {"label": ["clusterkit.project=clusterkit", f"clusterkit.cluster={name}"]}
    found = docker_client.containers.list(all=True, filters=selector)
    return [c.name for c in found if c.labels.get("clusterkit.role") not in ("scheduler", "worker")]


def remove_cluster(docker_client, name: str) -> None:
    selector = {"label": ["clusterkit.project=clusterkit", f"clusterkit.cluster={name}"]}
    for container in docker_client.containers.list(all=True, filters=selector):
        container.remove(force=True)
    for network in docker_client.networks.list(filters=selector):
        network.remove()


def start(docker_client, backend: str, name: str, timeout: float):
    spec = resolve_spec(
        overrides={
            "backend": backend,
            "name": name,
            "workers": 2,
            "scheduler_port": free_port(),
            "dashboard_port": free_port(),
        },
        environ={},
    )
    remove_cluster(docker_client, name)  # what a killed earlier session left
    cluster.up(spec, "compose", timeout=timeout)
    return spec


@pytest.fixture(scope="module")
def dask_spec(docker_client):
    name = "ck-client-dask"
    try:
        yield start(docker_client, "dask", name, timeout=240)
    finally:
        remove_cluster(docker_client, name)
    assert leftovers(docker_client, name) == []


@pytest.fixture(scope="module")
def spark_spec(docker_client):
    name = "ck-client-spark"
    try:
        yield start(docker_client, "spark", name, timeout=300)
    finally:
        remove_cluster(docker_client, name)


def interrupt_after_start(
    args: list[str], cwd: Path, err: Path, marker: str = "started", timeout: float = 180
):
    """Run the CLI, wait until the program printed ``marker``, SIGINT the CLI (only), return (code, stdout)."""
    with open(err, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "clusterkit", *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    try:
        while marker not in "".join(seen):  # readiness is the program's own word, with a deadline
            line = lines.get(timeout=timeout)
            assert line is not None, f"the CLI ended before {marker!r}: {err.read_text()[-2000:]}"
            seen.append(line)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    while (line := lines.get(timeout=30)) is not None:
        seen.append(line)
    return code, "".join(seen)


# -- Dask -------------------------------------------------------------------------------------------


JOB = """
    import os, sys
    from clusterkit import dask
    from helper import square

    client = dask.connect_to_scheduler()
    n = int(sys.argv[1])
    total = client.submit(sum, client.map(square, range(n))).result()
    print(f"total={total} workers={len(client.scheduler_info()['workers'])} uid={os.getuid()}")
    with open(os.path.join(os.environ["CLUSTERKIT_OUTPUT"], "total.txt"), "w") as f:
        f.write(str(total))
"""


def test_a_dask_job_runs_in_the_cluster_image_with_its_helper_module(dask_spec, docker_client, tmp_path):
    project = write(tmp_path / "project", job__py=JOB, helper__py="def square(x):\n    return x * x\n")
    result = clusterkit(
        "run", "--name", dask_spec.name, "-o", "results", "--", "python", "job.py", "100", cwd=project
    )
    assert result.returncode == 0, result.stderr
    assert "total=328350 workers=2" in result.stdout
    output = result.stdout + result.stderr
    assert not [note for note in MISMATCH_NOTES if note in output], output
    assert f"uid={os.getuid()}" in result.stdout, "a job runs as its caller"
    written = project / "results" / "total.txt"
    assert written.read_text() == "328350"
    assert written.stat().st_uid == os.getuid(), "the caller owns what the job wrote"

    # The next job runs its own helper, not the one the workers imported before.
    (project / "helper.py").write_text("def square(x):\n    return x * x + 1\n")
    again = clusterkit(
        "run", "--name", dask_spec.name, "-o", "results", "--", "python", "job.py", "100", cwd=project
    )
    assert again.returncode == 0, again.stderr
    assert "total=328450" in again.stdout

    readonly = clusterkit(
        "run", "--name", dask_spec.name, "--", "python", "-c", "open('x', 'w')", cwd=project
    )
    assert readonly.returncode == 1 and "Read-only file system" in readonly.stderr
    assert not (project / "x").exists()
    assert client_containers(docker_client, dask_spec.name) == []


PRIVATE_JOB = """
    import os
    from clusterkit import dask

    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    try:
        open("other.txt").read()
        other = "read"
    except PermissionError:
        other = "denied"
    n = int(open("n.txt").read())
    total = dask.connect_to_scheduler().submit(sum, range(n)).result()
    print(f"total={total} uid={os.getuid()} gid={os.getgid()} other={other}")
    print("CapEff", status["CapEff"].strip(), "CapPrm", status["CapPrm"].strip())
    print("NoNewPrivs", status["NoNewPrivs"].strip())
    with open(os.path.join(os.environ["CLUSTERKIT_OUTPUT"], "total.txt"), "w") as f:
        f.write(str(total))
"""


def test_a_job_runs_from_a_private_folder_as_its_caller_without_capabilities(
    dask_spec, docker_client, tmp_path
):
    """A 0700 folder (root's home, say) works; the job holds no capability, so it reads only what its caller owns."""
    private = write(tmp_path / "home", job__py=PRIVATE_JOB, n__txt="10\n", other__txt="not yours\n")
    private.chmod(0o700)
    os.chown(private / "other.txt", 4242, 4242)  # another user's file: root on the host could read it
    (private / "other.txt").chmod(0o600)
    result = clusterkit(
        "run", "--name", dask_spec.name, "-o", "results", "--", "python", "job.py", cwd=private
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"total=45 uid={os.getuid()} gid={os.getgid()} other=denied" in result.stdout
    assert "CapEff 0000000000000000 CapPrm 0000000000000000" in result.stdout
    assert "NoNewPrivs 1" in result.stdout
    written = private / "results" / "total.txt"
    assert written.read_text() == "45"
    info = written.stat()
    assert (info.st_uid, info.st_gid) == (os.getuid(), os.getgid()), "the caller owns what the job wrote"
    assert [p.name for p in (private / "results").iterdir()] == ["total.txt"], "nothing staged beside it"
    piped = "print(open('n.txt').read().strip(), client.submit(sum, [1, 2]).result())\n"
    shell = clusterkit("shell", "--name", dask_spec.name, cwd=private, input=piped)
    assert shell.returncode == 0, shell.stderr[-3000:]
    assert shell.stdout.strip() == "10 3", "the shell works from the private folder too"
    assert client_containers(docker_client, dask_spec.name) == []


def test_a_root_job_reads_the_credentials_of_a_tls_cluster_from_their_0600_files(docker_client, tmp_path):
    """The caller's own 0600 credential files are mounted as they are: the job runs as their owner."""
    from clusterkit import security

    name = "ck-client-tls"
    remove_cluster(docker_client, name)  # what a killed earlier session left
    spec = resolve_spec(
        overrides={
            "name": name,
            "workers": 1,
            "security": "tls",
            "scheduler_port": free_port(),
            "dashboard_port": free_port(),
        },
        environ={},
    )
    try:
        cluster.up(spec, "compose", timeout=240)
        key = security.client_dir(name) / security.CLIENT_KEY
        assert key.stat().st_mode & 0o077 == 0, "the key stays private to its owner"
        job = "from clusterkit import dask; print('sum', dask.connect_to_scheduler().submit(sum, [2, 3]).result())"
        result = clusterkit("run", "--name", name, "--", "python", "-c", job, cwd=write(tmp_path / "project"))
        assert result.returncode == 0, result.stderr[-3000:]
        assert "sum 5" in result.stdout
        assert client_containers(docker_client, name) == []
    finally:
        with contextlib.suppress(ClusterKitError):  # a failed `up` removed itself already
            cluster.down(name, "compose")
        remove_cluster(docker_client, name)
        security.forget(name)
    assert leftovers(docker_client, name) == []


def test_a_failing_dask_job_shows_its_traceback_and_exit_code(dask_spec, docker_client, tmp_path):
    project = write(
        tmp_path / "project",
        fail__py="""
            from clusterkit import dask

            def boom(x):
                raise ValueError(f"bad value {x}")

            client = dask.connect_to_scheduler()
            client.submit(boom, 7).result()
        """,
    )
    result = clusterkit("run", "--name", dask_spec.name, "--", "python", "fail.py", cwd=project)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ValueError: bad value 7" in result.stderr
    assert client_containers(docker_client, dask_spec.name) == []


def test_ctrl_c_stops_a_dask_job_and_leaves_no_container(dask_spec, docker_client, tmp_path):
    project = write(
        tmp_path / "project",
        slow__py="""
            import time
            from clusterkit import dask

            client = dask.connect_to_scheduler()
            print("started", flush=True)
            try:
                client.submit(time.sleep, 600).result()
            finally:
                print("the job saw the interrupt", flush=True)
        """,
    )
    code, stdout = interrupt_after_start(
        ["run", "--name", dask_spec.name, "--", "python", "slow.py"], project, tmp_path / "err"
    )
    assert code == 130
    assert "the job saw the interrupt" in stdout, "Ctrl-C reaches the program, which may clean up"
    assert client_containers(docker_client, dask_spec.name) == []


def test_shell_answers_a_piped_command_with_a_ready_client(dask_spec, docker_client, tmp_path):
    result = clusterkit(
        "shell",
        "--name",
        dask_spec.name,
        cwd=write(tmp_path / "project"),
        input="print(client.submit(sum, [1, 2]).result())\n",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"
    assert client_containers(docker_client, dask_spec.name) == []


def test_doctor_from_inside_the_cluster_finds_no_drift(dask_spec, tmp_path):
    result = clusterkit("doctor", "--name", dask_spec.name, "--in-cluster", cwd=write(tmp_path / "project"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no version drift" in result.stdout
    assert "compared 4 nodes" in result.stdout  # this client, the scheduler and two workers


def test_run_says_what_is_wrong(dask_spec, tmp_path):
    missing = clusterkit("run", "--name", "ck-client-nonesuch", "--", "true", cwd=write(tmp_path / "project"))
    assert missing.returncode == 2 and "no running cluster named 'ck-client-nonesuch'" in missing.stderr
    nothing = clusterkit("run", "--name", dask_spec.name, cwd=write(tmp_path / "project"))
    assert nothing.returncode == 2 and "Missing argument" in nothing.stderr
    unknown = clusterkit(
        "run", "--name", dask_spec.name, "--", "no-such-program", cwd=write(tmp_path / "project")
    )
    assert unknown.returncode != 0 and "no-such-program" in unknown.stderr


def run_as_stranger(docker_client, spec, argv: list[str]) -> str:
    """Run ``argv`` as a uid the image has no user for (a caller who is not uid 1000); its output."""
    from clusterkit import jobs

    place = cluster.client_place(spec.name, "compose")
    options = jobs.container_options(
        place, argv, role=jobs.JOB, name=f"{spec.name}-stranger-{os.getpid()}", user=(4321, 4321)
    )
    container = docker_client.containers.create(**options)
    try:
        jobs.add_user(container, options["user"])
        container.start()
        code = container.wait(timeout=180)["StatusCode"]
        output = container.logs().decode()
    finally:
        container.remove(force=True)
    assert code == 0, output
    return output


def test_a_uid_the_image_does_not_know_gets_a_name_and_a_home(dask_spec, docker_client):
    script = "import getpass, os, pwd; print(getpass.getuser(), pwd.getpwuid(os.getuid()).pw_dir, os.environ['HOME'])"
    assert run_as_stranger(docker_client, dask_spec, ["python", "-c", script]).split() == [
        "user4321",
        "/tmp",
        "/tmp",
    ]
    status = run_as_stranger(
        docker_client, dask_spec, ["grep", "-E", "^(CapEff|NoNewPrivs):", "/proc/self/status"]
    )
    assert status.split() == ["CapEff:", "0000000000000000", "NoNewPrivs:", "1"]


# -- Spark ------------------------------------------------------------------------------------------


@pytest.mark.spark
def test_a_spark_driver_can_run_as_a_uid_the_image_does_not_know(spark_spec, docker_client):
    # Java reads its user name and home from /etc/passwd; without an entry a driver cannot start.
    output = run_as_stranger(docker_client, spark_spec, ["java", "-XshowSettings:properties", "-version"])
    assert "user.name = user4321" in output and "user.home = /tmp" in output


SPARK_JOB = """
    from pyspark.sql import functions as F, types as T
    from clusterkit import spark
    from keys import bucket

    session = spark.connect_to_scheduler()
    df = session.range(1000).withColumn("k", F.udf(bucket, T.LongType())("id"))
    print("counts", sorted((r["k"], r["count"]) for r in df.groupBy("k").count().collect()))
    print("driver", session.sparkContext.getConf().get("spark.driver.host"))
    print("gateway entries", [line for line in open("/etc/hosts") if "host.docker.internal" in line])
    session.stop()
"""


@pytest.mark.spark
def test_a_spark_job_runs_its_driver_inside_the_cluster_network(spark_spec, docker_client, tmp_path):
    project = write(tmp_path / "project", job__py=SPARK_JOB, keys__py="def bucket(i):\n    return i % 3\n")
    result = clusterkit("run", "--name", spark_spec.name, "--", "python", "job.py", cwd=project)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "counts [(0, 334), (1, 333), (2, 333)]" in result.stdout
    assert "gateway entries []" in result.stdout, "no host-gateway routing"
    network = docker_client.networks.get(f"clusterkit-{spark_spec.name}")
    (pool,) = network.attrs["IPAM"]["Config"]
    driver = next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("driver "))
    assert ipaddress.ip_address(driver) in ipaddress.ip_network(pool["Subnet"])
    assert driver != pool["Gateway"], "the driver is a container on the cluster network, not the host"
    assert client_containers(docker_client, spark_spec.name) == []


@pytest.mark.spark
def test_a_failing_spark_job_shows_its_traceback_and_exit_code(spark_spec, docker_client, tmp_path):
    project = write(
        tmp_path / "project",
        fail__py="""
            from pyspark.sql import functions as F
            from clusterkit import spark

            def boom(i):
                raise ValueError(f"bad row {i}")

            session = spark.connect_to_scheduler()
            session.range(3).select(F.udf(boom, "long")("id")).collect()
        """,
    )
    result = clusterkit("run", "--name", spark_spec.name, "--", "python", "fail.py", cwd=project)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ValueError: bad row" in result.stderr
    assert client_containers(docker_client, spark_spec.name) == []


@pytest.mark.spark
def test_ctrl_c_stops_a_spark_job_and_leaves_no_container(spark_spec, docker_client, tmp_path):
    project = write(
        tmp_path / "project",
        slow__py="""
            import time
            from clusterkit import spark

            session = spark.connect_to_scheduler()
            print("started", flush=True)
            time.sleep(600)
        """,
    )
    code, _ = interrupt_after_start(
        ["run", "--name", spark_spec.name, "--", "python", "slow.py"], project, tmp_path / "err"
    )
    assert code == 130
    assert client_containers(docker_client, spark_spec.name) == []


@pytest.mark.spark
def test_shell_has_a_ready_spark_session(spark_spec, docker_client, tmp_path):
    result = clusterkit(
        "shell",
        "--name",
        spark_spec.name,
        cwd=write(tmp_path / "project"),
        input="print(spark.range(10).count())\n",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "10"
    assert client_containers(docker_client, spark_spec.name) == []


# -- the client layer -------------------------------------------------------------------------------

#: The host command line's packages: never on a node, always in a client container.
CLI_MODULES = ("docker", "testcontainers", "rich", "paramiko", "IPython", "cryptography")
FIND = "import importlib.util as u, sys; print(' '.join(m for m in sys.argv[1:] if u.find_spec(m)))"
FREEZE = "import importlib.metadata as m; print('\\n'.join(sorted(f'{d.metadata[\"Name\"].lower()}=={d.version}' for d in m.distributions())))"


def in_image(docker_client, image: str, *argv: str) -> str:
    """``argv`` in a throw-away container of ``image`` (no network); its output."""
    out = docker_client.containers.run(image, list(argv), entrypoint=[], network_mode="none", remove=True)
    return out.decode().strip()


@pytest.mark.parametrize("backend", ["dask", pytest.param("spark", marks=pytest.mark.spark)])
def test_nodes_carry_no_command_line_and_the_client_layer_adds_it_without_changing_theirs(
    backend, docker_client
):
    from clusterkit import images
    from clusterkit.images.client import ensure_client_image

    node = images.ensure_image(backend)
    assert in_image(docker_client, node, "python", "-c", FIND, *CLI_MODULES) == ""
    # What a node runs imports without them.
    assert "usage: clusterkit node" in in_image(
        docker_client, node, "python", "-m", "clusterkit.node", "--help"
    )
    client = ensure_client_image(backend, node)
    assert ensure_client_image(backend, node) == client  # built once per node image
    assert in_image(docker_client, client, "python", "-c", FIND, *CLI_MODULES).split() == list(CLI_MODULES)
    assert in_image(docker_client, client, "clusterkit", "--version").startswith("clusterkit")
    node_has = dict(
        line.split("==") for line in in_image(docker_client, node, "python", "-c", FREEZE).split()
    )
    client_has = dict(
        line.split("==") for line in in_image(docker_client, client, "python", "-c", FREEZE).split()
    )
    assert {n: client_has.get(n) for n in node_has} == node_has  # every node package, same version
    labels = docker_client.images.get(client).labels
    assert (
        labels["clusterkit.project"] == "clusterkit" and labels["clusterkit.backend"] == f"{backend}-client"
    )
    assert labels["clusterkit.node-image"] == docker_client.images.get(node).id
