"""Client containers: ``clusterkit run`` and ``clusterkit shell``, in the cluster's image and network.

A program that sends work to a cluster runs best where the nodes run: the
same locked environment (no Python or cloudpickle drift, no version warning),
on the cluster's network (a Spark driver the executors reach without host
routing), with the cluster's credentials. :func:`run` starts such a container
at a :class:`~clusterkit.client_env.ClientPlace` (which cluster, image and
network: the front door's :func:`clusterkit.cluster.client_place` asks the
runtime for it; this package never looks a cluster up by name):

* the image is the cluster's own (by ID) plus the client layer (the command line, the
  Docker SDK, IPython: :mod:`clusterkit.images.client`), the network the cluster's;
* the current folder is mounted read-only at its own path (the working
  directory), an ``output`` folder read-write at its own path, and the cluster's
  shared folders as the nodes see them (:mod:`clusterkit.mounts`): a path that
  works here works in the job and on the nodes; the container runs as the
  caller's uid and gid (root too, which reads its own 0700 home), with every
  capability dropped and ``no-new-privileges``: it reaches what the caller
  owns and nothing more, and the caller owns what it writes;
* the scheduler is in the environment (:mod:`clusterkit.client_env`), the
  client credentials of a ``security: tls`` cluster are mounted read-only;
* output streams live; the exit code is the command's; the container is
  removed afterwards, also on Ctrl-C (:mod:`clusterkit.jobs.attach`).

What a client container is (user, mounts, options) is in
:mod:`clusterkit.jobs.container`; the notebook builds on the same pieces.

    >>> from clusterkit import cluster
    >>> code = run(cluster.client_place(None), ["python", "job.py"])  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from clusterkit.client_env import ClientPlace
from clusterkit.errors import InvalidValue
from clusterkit.jobs.attach import GRACE, run_container
from clusterkit.jobs.container import (
    JOB,
    SHELL,
    Mount,
    add_user,
    caller_groups,
    caller_user,
    check_readable,
    client_user,
    container_options,
    credential_mounts,
    shared_mounts,
)
from clusterkit.progress import Progress, quiet

__all__ = [
    "GRACE",
    "JOB",
    "OUTPUT_ENV",
    "SHELL",
    "Mount",
    "add_user",
    "caller_groups",
    "caller_user",
    "check_readable",
    "client_layer",
    "client_user",
    "container_options",
    "credential_mounts",
    "run",
    "shared_mounts",
    "shell",
]

#: Tells the program where its writable folder is.
OUTPUT_ENV = "CLUSTERKIT_OUTPUT"


def run(
    place: ClientPlace,
    argv: Sequence[str],
    *,
    folder: str | os.PathLike[str] | None = None,
    output: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    interactive: bool = False,
    role: str = JOB,
    progress: Progress = quiet,
) -> int:
    """Run ``argv`` in a client container at ``place``; returns its exit code.

    Args:
        place: where the cluster's clients run (:func:`clusterkit.cluster.client_place`).
        argv: the command, e.g. ``["python", "job.py", "--n", "10"]``.
        folder: mounted read-only at its own path, the working directory (default: the current folder).
        output: a folder mounted read-write (created if missing) at its own path;
            ``$CLUSTERKIT_OUTPUT`` names it.
        env: more variables (they win over the cluster's).
        interactive: pass stdin (and a terminal, if this is one), as ``shell`` does.
        progress: where the client layer's build (the first time, per node image) reports.

    Raises:
        ClientStartError: the container could not be created or started.
        KeyboardInterrupt: on Ctrl-C or SIGTERM, after the container is stopped and removed.
    """
    if not argv:
        raise InvalidValue("command: nothing to run; give it after `--`, e.g. `-- python job.py`")
    user, groups = caller_user(), caller_groups()
    folder = Path(folder or Path.cwd()).resolve()
    check_readable(folder, user, groups)
    variables = dict(env or {})
    mounts = [Mount(str(folder), str(folder), read_only=True)]  # at its own path, as on the nodes
    if output is not None:
        host, target = _output_mount(folder, Path(output))
        check_readable(host, user, groups, write=True)
        mounts.append(Mount(str(host), target, read_only=False))
        variables.setdefault(OUTPUT_ENV, target)
    mounts = shared_mounts(place, *mounts)
    if place.secured:
        mounts += credential_mounts(place, user)
    place = client_layer(place, progress)
    tty = interactive and sys.stdin.isatty() and sys.stdout.isatty()
    options = container_options(
        place,
        argv,
        role=role,
        name=f"clusterkit-{place.cluster}-{role}-{secrets.token_hex(3)}",
        user=user,
        groups=groups,
        mounts=mounts,
        env=variables,
        interactive=interactive,
        tty=tty,
        working_dir=str(folder),
    )
    return run_container(options, interactive=interactive)


def shell(place: ClientPlace, *, folder: str | None = None, progress: Progress = quiet) -> int:
    """An interactive Python (IPython) with the backend's ready client objects.

    Piped input runs as a script: ``echo 'print(client)' | clusterkit shell``.
    """
    argv = ["python", "-m", "clusterkit.shell"]
    return run(place, argv, folder=folder, interactive=True, role=SHELL, progress=progress)


def client_layer(place: ClientPlace, progress: Progress = quiet) -> ClientPlace:
    """``place`` with the client layer on the cluster's image: the nodes' environment plus
    the command line, the Docker SDK and IPython (:mod:`clusterkit.images.client`)."""
    from clusterkit.images.client import ensure_client_image

    return dataclasses.replace(
        place, image=ensure_client_image(place.backend, place.image, progress=progress)
    )


# -- the output folder -------------------------------------------------------------------------


def _output_mount(folder: Path, output: Path) -> tuple[Path, str]:
    """The host folder and where the container sees it."""
    host = output if output.is_absolute() else Path.cwd() / output
    host.mkdir(parents=True, exist_ok=True)
    host = host.resolve()
    if host == folder:
        raise InvalidValue(
            f"output: {str(output)!r} is the current folder itself, which stays read-only; "
            "give a folder for the results, e.g. `-o results`"
        )
    return host, str(host)  # at its own path, as the current folder
