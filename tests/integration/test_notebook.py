"""`clusterkit up --notebook` on the real engine: JupyterLab beside a Dask cluster.

Builds the optional notebook layer once if it is missing or stale (cached on
the engine afterwards: a code change costs one layer, ~15-20 s; a cold build
~1.5 min, see images/README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.conftest import free_port
from tests.integration.conftest import leftovers

pytestmark = [pytest.mark.docker, pytest.mark.slow]

#: A dependency the folder's project declares (clusterkit's lock lacks it): the notebook has it too.
DEPENDENCY = "humanize"
CELLS = [
    f"import {DEPENDENCY}\nprint('dependency', {DEPENDENCY}.__name__)",
    "from clusterkit import dask\nfrom helper import cube\nclient = dask.connect_to_scheduler()",
    "print('total', client.submit(sum, client.map(cube, range(10))).result())",
    "print('workers', len(client.scheduler_info()['workers']))\nprint('link', client.dashboard_link)",
]


def notebook_file(cells: list[str]) -> str:
    return json.dumps(
        {
            "cells": [
                {"cell_type": "code", "metadata": {}, "source": c, "outputs": [], "execution_count": None}
                for c in cells
            ],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )


def http_get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


def clusterkit(*args: str, cwd, timeout: float = 900):
    return subprocess.run(
        [sys.executable, "-m", "clusterkit", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def project_images(docker_client):
    """The project layer and the notebook on it that the test builds, removed afterwards (children first)."""
    before = {i.id for i in docker_client.images.list(filters={"label": "clusterkit.project-lock"})}
    yield
    made = [
        i
        for i in docker_client.images.list(filters={"label": "clusterkit.project-lock"})
        if i.id not in before
    ]
    for image in sorted(made, key=lambda i: i.attrs["Created"], reverse=True):
        docker_client.images.remove(image.id, force=True)


def test_a_notebook_beside_the_cluster_computes_on_it(docker_client, cluster_names, tmp_path, project_images):
    name = "ck-notebook-it"
    cluster_names.append(name)
    tmp_path = tmp_path / "notebooks"  # pytest's own folder is root's 0700; the notebook runs as uid 1000
    tmp_path.mkdir()
    (tmp_path / "helper.py").write_text("def cube(x):\n    return x ** 3\n")
    (tmp_path / "compute.ipynb").write_text(notebook_file(CELLS))
    (tmp_path / "pyproject.toml").write_text(
        f'[project]\nname = "notes"\nversion = "0.1"\ndependencies = ["{DEPENDENCY}"]\n'
    )
    ports = [str(free_port()), str(free_port())]
    up = clusterkit(
        "up",
        "--name",
        name,
        "--workers",
        "2",
        "--scheduler-port",
        ports[0],
        "--dashboard-port",
        ports[1],
        "--notebook",
        "--no-supervise",
        cwd=tmp_path,
    )
    assert up.returncode == 0, up.stderr[-3000:]

    status = clusterkit("status", "--name", name, "--json", cwd=tmp_path, timeout=120)
    url = json.loads(status.stdout)["notebook_url"]
    base, token = url.split("/lab?token=")
    assert base.startswith("http://127.0.0.1:")
    assert http_get(f"{base}/api/status")[0] == 403, "no token, no notebook"
    assert http_get(f"{base}/api/status", token)[0] == 200

    (container,) = docker_client.containers.list(
        filters={"label": [f"clusterkit.cluster={name}", "clusterkit.role=notebook"]}
    )
    bindings = container.attrs["HostConfig"]["PortBindings"]
    assert {b["HostIp"] for bs in bindings.values() for b in bs} == {"127.0.0.1"}
    assert container.exec_run(["id", "-u"]).output.decode().strip() != "0"

    code, output = container.exec_run(
        [
            "jupyter",
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "compute.ipynb",
            "--output",
            "/tmp/out.ipynb",
            "--ExecutePreprocessor.startup_timeout=300",  # a deadline for a busy machine, not a measure
        ]
    )
    assert code == 0, output.decode()[-3000:]
    executed = json.loads(container.exec_run(["cat", "/tmp/out.ipynb"]).output)
    texts = [o.get("text", "") for cell in executed["cells"] for o in cell["outputs"]]
    printed = "".join("".join(t) if isinstance(t, list) else t for t in texts)  # nbformat: str or lines
    assert "total 2025" in printed and "workers 2" in printed
    assert f"dependency {DEPENDENCY}" in printed  # the notebook is built on the project's layer

    # The dashboard link a notebook shows opens in a browser here; the Dask panes reach it from the server.
    link = next(line.split()[1] for line in printed.splitlines() if line.startswith("link "))
    assert http_get(link)[0] == 200
    inside = f"http://scheduler:{ports[1]}"
    check = http_get(f"{base}/dask/dashboard-check/{urllib.parse.quote(inside, safe='')}", token)
    assert check[0] == 200 and json.loads(check[1])["isActive"] is True

    down = clusterkit("down", "--name", name, cwd=tmp_path, timeout=120)
    assert down.returncode == 0, down.stderr
    assert leftovers(docker_client, name) == []
