"""What ``up`` settles about shared folders and the nodes' user before anything starts.

The spec's ``mounts`` and ``user`` may be left to the runtime (``None``); here
they become what the cluster runs with and what its record keeps, so ``scale``
and healing give every later worker the same folders and user
(:mod:`clusterkit.mounts` says why the paths are the same as on the host).

* Container runtimes on this host (compose, testcontainers): the project
  folder, read-only, unless the spec names others; the nodes run as the caller.
* The local runtime: the nodes are this host's processes and see its files.
* Swarm: no default (a folder of this host is not on the other nodes); named
  folders are checked on every node (:mod:`clusterkit.runtimes.swarm`).
* A client in a container driving the host's engine (Docker-outside-of-Docker)
  cannot give same-path binds: said in one line, and refused if asked for.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import Any

from clusterkit import mounts
from clusterkit.errors import InvalidValue
from clusterkit.log import get_logger
from clusterkit.nodes import passwd_file, passwd_text
from clusterkit.spec import ClusterSpec, find_spec_file

_DOOD = (
    "this client runs in a container that drives another host's Docker engine "
    "(Docker-outside-of-Docker), so its paths are not the engine's"
)


def project_folder(spec_file: str | os.PathLike[str] | None = None) -> Path:
    """The folder shared by default: the spec file's, else the nearest ``clusterkit.yaml``'s, else this one."""
    found = Path(spec_file) if spec_file else find_spec_file()
    return (found.parent if found else Path.cwd()).resolve()


def settle(rt: Any, spec: ClusterSpec, project: str | os.PathLike[str] | None = None) -> ClusterSpec:
    """``spec`` with the runtime's ``mounts`` and ``user`` filled in and checked (``project``: its folder)."""
    if not getattr(rt, "binds_host_paths", False):
        spec = spec.replace(mounts=spec.mounts or ())
    elif mounts.engine_elsewhere(rt.docker.info().get("DockerRootDir")):
        if spec.mounts:
            raise InvalidValue(f"mounts: {_DOOD}; run clusterkit on the engine's host, or remove mounts")
        get_logger(__name__).warning("no folder is shared with the nodes: %s", _DOOD)
        return spec.replace(mounts=())
    else:
        if spec.mounts is None:
            folder = mounts.default_folder(project or project_folder())
            spec = spec.replace(mounts=(f"{folder}:ro",) if folder else ())
        if spec.user is None:
            spec = spec.replace(user=f"{os.getuid()}:{os.getgid()}")
        _write_passwd(spec.user)
    absent = mounts.missing(spec.mounts)
    if absent:
        raise InvalidValue(
            f"mounts: {', '.join(absent)} does not exist on this host; create it, or remove it from mounts"
        )
    return spec


def on_every_node(docker: Any, spec: ClusterSpec, image: str) -> None:
    """Every swarm node has every shared folder, or nothing starts: no folder is silently one node's own."""
    from clusterkit.images.push import paths_missing
    from clusterkit.labels import cluster_labels

    paths = [m.path for m in mounts.of(spec.mounts)]
    lacking = (
        paths_missing(docker, image, paths, cluster_labels(spec.name, spec.backend, "swarm")) if paths else {}
    )
    if lacking:
        where = "; ".join(f"{node} lacks {', '.join(found)}" for node, found in lacking.items())
        raise InvalidValue(
            f"mounts: a shared folder must be at the same path on every swarm node: {where}; "
            "share it there (NFS, or a copy), drain those nodes, or remove it from mounts"
        )


def _write_passwd(user: str | None) -> None:
    """The passwd file :func:`clusterkit.nodes.node_binds` binds for a uid the image does not know."""
    if not user:
        return
    uid = int(user.split(":")[0])
    try:
        login = pwd.getpwuid(uid).pw_name
    except KeyError:
        login = f"user{uid}"
    if login in ("root", "nobody", "clusterkit"):
        login = f"user{uid}"
    path = Path(passwd_file(user))
    text = passwd_text(user, login)
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}")
        tmp.write_text(text)
        tmp.chmod(0o644)
        tmp.replace(path)
