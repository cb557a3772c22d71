"""JupyterLab beside a cluster: ``clusterkit up --notebook`` (or ``notebook: true`` in the spec).

The notebook is a client container (:mod:`clusterkit.jobs.container`) that
stays up: the cluster's image plus the optional JupyterLab layer
(:mod:`clusterkit.images.notebook`, built only when asked for), on the
cluster's network, with the cluster's address and credentials in its
environment, so the backend's ``connect_to_scheduler()`` (or plain
``distributed.Client()``) needs no argument in a notebook. The folder ``up``
ran in is the notebook folder. The server is published on 127.0.0.1 only, at
a port the engine picks, behind a random token; ``clusterkit status`` prints
the link. It carries the cluster's labels, so ``down`` removes it with the
cluster.

Like :mod:`clusterkit.jobs`, it starts at a :class:`~clusterkit.client_env.ClientPlace`
the front door (:mod:`clusterkit.cluster`) got from a runtime that runs
containers; this module never looks a cluster up.

    >>> find("my-cluster").url  # doctest: +SKIP
    'http://127.0.0.1:49154/lab?token=...'
"""

from __future__ import annotations

import contextlib
import secrets
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clusterkit import labels
from clusterkit.client_env import WORKDIR, ClientPlace
from clusterkit.errors import ClientStartError, StartupTimeout
from clusterkit.progress import Event, Progress, quiet
from clusterkit.spec import ClusterSpec
from clusterkit.waiting import NotReady, wait_for

#: The notebook container's role label.
ROLE = "notebook"
#: The server's port inside the container (published on a port the engine picks).
PORT = 8888
#: The label holding the host folder served as the notebook folder.
FOLDER = "clusterkit.notebook-folder"
_TOKEN = "JUPYTER_TOKEN"  # noqa: S105 - the variable jupyter_server reads its token from
#: The JupyterLab plugin whose dashboard panes show a cluster dashboard page (the
#: dask-labextension; JupyterLab ignores the settings of a plugin an image lacks).
DASHBOARD_PANES = "dask-labextension:plugin"


@dataclass(frozen=True)
class Notebook:
    """A running notebook server beside a cluster."""

    url: str  # with the token: what a browser on this machine opens
    folder: str  # the host folder it serves
    container: str


def prepare(spec: ClusterSpec, progress: Progress = quiet) -> str:
    """Check the spec allows a notebook, and build its image if missing or stale; returns the image.

    The front door checks first that the runtime runs client containers.
    """
    if spec.image:
        raise ClientStartError(
            f"the notebook layer is built on the image made from the lock, and this spec names its own "
            f"image ({spec.image}); drop `image:` or `notebook:`"
        )
    from clusterkit import images
    from clusterkit.images.client import ensure_client_image
    from clusterkit.images.notebook import ensure_notebook_image

    # On the image the nodes run (the node image plus the project's dependencies, if it has
    # any) and the client layer on it, as `clusterkit run` and `shell` have.
    node = images.ensure_image(spec.backend, progress=progress)
    base = images.with_project(node, spec.backend, spec.requirements, progress=progress)
    on = ensure_client_image(spec.backend, base, progress=progress)
    return ensure_notebook_image(spec.backend, on=on, progress=progress)


def start(
    place: ClientPlace,
    image: str,
    *,
    folder: str | Path | None = None,
    timeout: float = 120,
    progress: Progress = quiet,
) -> Notebook:
    """Start JupyterLab at ``place`` (beside its running cluster) and wait until it answers its token."""
    from clusterkit import jobs
    from clusterkit.engine import docker_client

    name = place.cluster
    user = jobs.client_user()
    folder = str(Path(folder or Path.cwd()).resolve())
    jobs.check_readable(Path(folder), user)
    mounts = jobs.shared_mounts(place, jobs.Mount(folder, WORKDIR, read_only=False))
    if place.secured:
        mounts += jobs.credential_mounts(place, user)
    token = secrets.token_hex(24)
    options = jobs.container_options(
        place,
        ["python", "-m", "clusterkit.notebook"],
        role=ROLE,
        name=f"clusterkit-{name}-notebook",
        user=user,
        mounts=mounts,
        env={_TOKEN: token},
    )
    options.update(
        image=image, ports={f"{PORT}/tcp": ("127.0.0.1", None)}, restart_policy={"Name": "unless-stopped"}
    )
    options["labels"][FOLDER] = folder
    progress(Event("notebook", f"starting JupyterLab beside cluster {name!r} (folder {folder})"))
    engine = docker_client()
    container = engine.containers.create(**options)
    try:
        jobs.add_user(container, options["user"])
        container.start()
        found = _wait_ready(container, token, timeout)
    except BaseException:
        with contextlib.suppress(Exception):
            container.remove(force=True)
        raise
    progress(Event("notebook", f"notebook: {found.url}"))
    return found


def _describe(container: Any) -> Notebook | None:
    """The notebook's link, read back from the engine (``None`` if it publishes no port yet)."""
    ports = (container.attrs["NetworkSettings"].get("Ports") or {}).get(f"{PORT}/tcp") or []
    env = dict(item.split("=", 1) for item in container.attrs["Config"].get("Env") or [] if "=" in item)
    if not ports or _TOKEN not in env:
        return None
    url = f"http://127.0.0.1:{ports[0]['HostPort']}/lab?token={env[_TOKEN]}"
    return Notebook(url=url, folder=container.labels.get(FOLDER, ""), container=container.name)


def _wait_ready(container: Any, token: str, timeout: float) -> Notebook:
    def ready() -> Notebook:
        container.reload()
        state = container.attrs["State"]
        if state["Status"] in ("exited", "dead"):
            tail = container.logs(tail=15).decode(errors="replace").rstrip()
            raise ClientStartError(
                f"the notebook container exited with code {state.get('ExitCode')}; last log lines:\n{tail}"
            )
        found = _describe(container)
        if found is None:
            raise NotReady("no published port yet")
        api = found.url.split("/lab?", 1)[0] + "/api/status"
        request = urllib.request.Request(api, headers={"Authorization": f"token {token}"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=3) as answer:  # noqa: S310 - our own loopback URL
            if answer.status != 200:
                raise NotReady(f"{api} answered {answer.status}")
        return found

    return wait_for(
        ready,
        what=f"the notebook server in {container.name}",
        timeout=timeout,
        interval=0.2,
        max_interval=1.0,
        error=StartupTimeout,
        hint=f"`docker logs {container.name}` shows why",
    )


def find(name: str) -> Notebook | None:
    """The notebook beside cluster ``name``, if one runs (found by its labels on the engine).

    Only for a cluster on a runtime that runs client containers: the front door checks.
    """
    from clusterkit.engine import docker_client

    wanted = {"label": labels.selector(cluster=name, role=ROLE)}
    for container in docker_client().containers.list(filters=wanted, ignore_removed=True):
        found = _describe(container)
        if found is not None:
            return found
    return None


# -- inside the notebook container ---------------------------------------------------------------


def serve_argv(settings_dir: str) -> list[str]:
    """The JupyterLab command line inside the container."""
    return [
        "jupyter",
        "lab",
        "--ip=0.0.0.0",
        f"--port={PORT}",
        "--no-browser",
        f"--ServerApp.root_dir={WORKDIR}",
        f"--LabApp.app_settings_dir={settings_dir}",
        # No news or update checks against the internet from inside the cluster network.
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.news_url=",
    ]


def serve() -> None:
    """The notebook container's main process: JupyterLab, with the dashboard panes on the cluster's dashboard.

    A backend whose dashboard is a page (``dashboard_path`` in
    :mod:`clusterkit.facts`) gets :data:`DASHBOARD_PANES` pointed at it. The
    panes fetch the dashboard from the server side (they proxy it), so their
    default URL is the dashboard on the cluster network;
    ``client.dashboard_link`` in a notebook is the one a browser here opens.
    """
    import json
    import os
    import tempfile

    from clusterkit import client_env
    from clusterkit.facts import facts_of

    here = client_env.target()
    settings = tempfile.mkdtemp(prefix="clusterkit-lab-settings-")
    overrides = {}
    if here is not None and here.dashboard_url and facts_of(here.backend).dashboard_path:
        overrides[DASHBOARD_PANES] = {"defaultURL": here.dashboard_url}
    with open(os.path.join(settings, "overrides.json"), "w") as f:
        json.dump(overrides, f)
    argv = serve_argv(settings)
    os.execvp(argv[0], argv)  # noqa: S606 - the container's main process becomes the server


if __name__ == "__main__":
    serve()
