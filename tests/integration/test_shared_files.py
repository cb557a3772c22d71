"""The same files on the client and on every node (issue: local data, ``tmp_path``, no silent loss on write).

Each test starts real clusters on the real engine from a folder of its own,
the way a user works: relative paths that work on the client work on the
nodes, a write into a shared read-write folder is read back on the host, and
a write anywhere else fails instead of landing on a node's own disk.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.integration.conftest import leftovers

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROWS = {"a": 3, "b": 3}
JOB = """
import dask.dataframe as dd
from distributed import Client
client = Client()  # the cluster's address is in the job's environment
print("sums", dd.read_csv("data/*.csv").groupby("k").v.sum().compute().to_dict())
"""


def project(folder: Path) -> Path:
    """A user's folder: three CSV parts under ``data/`` and a job that reads them by a relative path."""
    (folder / "data").mkdir(parents=True)
    for i in range(3):
        (folder / "data" / f"part{i}.csv").write_text(f"k,v\na,{i}\nb,1\n")
    (folder / "job.py").write_text(textwrap.dedent(JOB))
    return folder


def clusterkit(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clusterkit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_dask_on_compose_sees_the_project_folder_and_refuses_unshared_writes(
    docker_client, cluster_names, run_dir, tmp_path, monkeypatch
):
    import dask.dataframe as dd
    from distributed import Client

    def write_text(path: str) -> str:  # runs on a worker (a local function: pickled by value)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("x")
        return path

    folder = project(tmp_path / "probe")
    name = f"shared-{os.getpid()}"
    cluster_names.append(name)
    port, dash = free_port(), free_port()
    up = clusterkit(
        "up", "--name", name, "--workers", "2", "--scheduler-port", str(port),
        "--dashboard-port", str(dash), "--no-supervise", cwd=folder,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    try:
        worker = docker_client.containers.list(
            filters={"label": [f"clusterkit.cluster={name}", "clusterkit.role=worker"]}
        )[0]
        host = worker.attrs["HostConfig"]
        assert host["ReadonlyRootfs"] is True, "a worker's own disk takes no writes"
        assert worker.attrs["Config"]["User"] == f"{os.getuid()}:{os.getgid()}", "nodes run as the caller"
        binds = {m["Destination"]: m for m in worker.attrs["Mounts"] if m["Type"] == "bind"}
        assert binds[str(folder)]["Source"] == str(folder) and binds[str(folder)]["RW"] is False

        monkeypatch.chdir(folder)
        with Client(f"127.0.0.1:{port}", timeout=60) as client:
            sums = dd.read_csv("data/*.csv").groupby("k").v.sum().compute()
            assert sums.to_dict() == ROWS, "relative paths on the client are the nodes' paths"
            elsewhere = tmp_path.parent / f"unshared-{os.getpid()}" / "out.txt"
            with pytest.raises(OSError, match="Read-only file system"):
                client.submit(write_text, str(elsewhere), pure=False).result()
            with pytest.raises(OSError, match="Read-only file system"):
                client.submit(write_text, str(folder / "new" / "x.txt"), pure=False).result()
        assert not elsewhere.exists() and not (folder / "new").exists()

        run = clusterkit("run", "--name", name, "--", "python", "job.py", cwd=folder)
        assert run.returncode == 0, run.stderr
        assert f"sums {ROWS}" in run.stdout, "`run` works in the current folder at its own path"

        scaled = clusterkit("scale", "--name", name, "3", cwd=folder)
        assert scaled.returncode == 0, scaled.stderr
        workers = docker_client.containers.list(
            filters={"label": [f"clusterkit.cluster={name}", "clusterkit.role=worker"]}
        )
        assert len(workers) == 3
        for added in workers:
            assert str(folder) in {m["Destination"] for m in added.attrs["Mounts"]}, "added workers too"
    finally:
        down = clusterkit("down", "--name", name, cwd=folder)
    assert down.returncode == 0, down.stderr
    assert leftovers(docker_client, name) == []


def test_spark_on_compose_writes_parquet_the_host_reads_and_refuses_unshared_paths(
    docker_client, cluster_names, run_dir, tmp_path, monkeypatch
):
    import pandas as pd

    from clusterkit import Cluster

    out = tmp_path / "shared"
    out.mkdir()
    monkeypatch.chdir(tmp_path)
    name = f"sparkshare-{os.getpid()}"
    cluster_names.append(name)
    with Cluster(
        "spark", name=name, runtime="compose", workers=2, mounts=[f"{out}:rw"], supervise=False
    ) as c:
        session = c.session()
        session.range(1000).write.parquet(str(out / "numbers"))
        assert len(pd.read_parquet(out / "numbers")) == 1000, "every row is on the host"
        parts = list((out / "numbers").glob("part-*.parquet"))
        assert parts and all(p.stat().st_uid == os.getuid() for p in parts), (
            "the caller owns what nodes wrote"
        )

        unshared = tmp_path.parent / f"unshared-spark-{os.getpid()}"
        try:
            with pytest.raises(Exception, match=r"(?i)mkdirs failed|read-only file system"):
                session.range(1000).repartition(2).write.parquet(str(unshared))
        finally:
            subprocess.run(["rm", "-rf", str(unshared)], check=False)
    assert leftovers(docker_client, name) == []


def test_local_runtime_reads_relative_paths(teardown, tmp_path, monkeypatch):
    import dask.dataframe as dd
    from distributed import Client

    from clusterkit import cluster
    from clusterkit.spec import resolve_spec

    folder = project(tmp_path / "probe")
    monkeypatch.chdir(folder)
    name = f"localshare-{os.getpid()}"
    port, dash = free_port(), free_port()
    spec = resolve_spec(
        os.devnull, overrides={"name": name, "workers": 1, "scheduler_port": port, "dashboard_port": dash}
    )
    teardown.append(name)
    status = cluster.up(spec, "local", timeout=120)
    assert status.health == "healthy" and len(status.workers) == 1
    with Client(f"127.0.0.1:{port}", timeout=60) as client:
        assert client.submit(os.getcwd).result() is not None
        assert dd.read_csv("data/*.csv").groupby("k").v.sum().compute().to_dict() == ROWS


FIXTURE_SUITE = """
import os, pathlib
import pandas as pd
import dask.dataframe as dd


def record(handle):
    pathlib.Path(os.environ["CK_RECORD"], handle.spec.name).write_text("")


def test_dask_writes_tmp_path(dask_cluster, tmp_path):
    record(dask_cluster)
    frame = dd.from_pandas(pd.DataFrame({"x": range(100)}), npartitions=4)
    frame.to_parquet(str(tmp_path / "dask"))
    assert len(pd.read_parquet(tmp_path / "dask")) == 100


def test_spark_writes_tmp_path(spark_cluster, tmp_path):
    record(spark_cluster)
    spark_cluster.session.range(100).write.parquet(str(tmp_path / "spark"))
    assert len(pd.read_parquet(tmp_path / "spark")) == 100
"""


def test_fixture_suite_writes_into_tmp_path_and_reads_every_row(pytester, docker_client, tmp_path):
    pytester.makepyfile(FIXTURE_SUITE)
    record = tmp_path / "names"
    record.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=pytester.path,
        env={**os.environ, "CK_RECORD": str(record)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 passed" in result.stdout
    names = [p.name for p in record.iterdir()]
    assert len(names) == 2
    for name in names:
        assert leftovers(docker_client, name) == []
