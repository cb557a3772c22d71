"""The front door: a cluster is a backend (what runs) times a runtime (where it runs).

The CLI, the pytest plugin and the Python :class:`Cluster` go through this
module and never reach into a runtime's internals, so "which runtime holds
cluster X" and "what does a client connect to" are decided in one place.

    >>> from clusterkit import Cluster
    >>> with Cluster(workers=2) as cluster:  # doctest: +SKIP
    ...     print(cluster.report())
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from clusterkit import listing, runtimes
from clusterkit import status as status_mod
from clusterkit.backends import get_backend
from clusterkit.client_env import ClientPlace
from clusterkit.errors import ClientStartError, ClusterExists, ClusterNotFound, InvalidValue
from clusterkit.facts import BACKENDS
from clusterkit.log import get_logger
from clusterkit.progress import Progress, quiet
from clusterkit.runtimes.base import Runtime
from clusterkit.spec import ClusterSpec, find_spec_file, parse_count, resolve_spec
from clusterkit.status import ClusterStatus


def default_runtime_name() -> str:
    """``compose`` where a Docker engine answers, ``local`` otherwise (with a notice)."""
    from clusterkit.engine import engine_available

    if engine_available():
        return "compose"
    get_logger(__name__).warning("no Docker engine answers; running the cluster as local processes")
    return "local"


def up(
    spec: ClusterSpec,
    runtime: str | Runtime | None = None,
    *,
    timeout: float = 120,
    keep: bool = False,
    progress: Progress = quiet,
    held: bool = False,
    project: str | os.PathLike[str] | None = None,
) -> ClusterStatus:
    """Start ``spec`` on ``runtime`` and wait until every worker is registered.

    A name is unique across runtimes, so ``status`` and ``down --name`` always
    know which cluster is meant. ``held``: this process keeps the cluster for
    its whole life (``clusterkit gc`` removes it once the process is gone).
    ``project``: the folder shared with the nodes when the spec names none
    (default: the nearest ``clusterkit.yaml``'s, else the current one).
    """
    from clusterkit.runtimes.sharing import settle

    check_timeout(timeout)
    rt = runtimes.get_runtime(runtime or default_runtime_name())
    spec = settle(rt, spec, project)
    for other in _runtimes(None):
        if other.name != rt.name and spec.name in other.clusters():
            raise ClusterExists(
                f"a cluster named {spec.name!r} already runs on the {other.name} runtime; "
                f"choose another --name or `clusterkit down --name {spec.name}` first"
            )
    image = _notebook_image(rt, spec, progress) if spec.notebook else None  # before anything starts
    status = rt.up(spec, timeout=timeout, keep=keep, progress=progress, held=held)
    if image is None:
        return status
    from clusterkit import notebook

    try:
        found = notebook.start(_place_on(rt, spec.name), image, timeout=timeout, progress=progress)
    except BaseException:
        if not keep:
            rt.down(spec.name)
        raise
    return dataclasses.replace(status, notebook_url=found.url)


def _notebook_image(rt: Runtime, spec: ClusterSpec, progress: Progress) -> str:
    """Check ``rt`` runs client containers, and build the notebook image; returns it."""
    from clusterkit import notebook

    if not rt.runs_clients:
        raise ClientStartError(
            f"a notebook runs in a container beside the cluster; the {rt.name} runtime has none "
            "(use --runtime compose, or run `jupyter lab` in this venv: it is the cluster's environment)"
        )
    return notebook.prepare(spec, progress)


def _with_notebook(rt: Runtime, name: str, status: ClusterStatus) -> ClusterStatus:
    """The status with the link (and token) of the notebook beside the cluster, if one runs."""
    if not rt.runs_clients:
        return status  # no client containers there, so no notebook either
    from clusterkit import notebook

    found = notebook.find(name)
    return dataclasses.replace(status, notebook_url=found.url) if found else status


def client_place(name: str | None, runtime: str | Runtime | None = None) -> ClientPlace:
    """Where clients of the running cluster ``name`` run (``clusterkit run``, ``shell``, a notebook).

    The runtime must run containers: for a cluster of local processes this
    venv is the cluster's environment, and a program runs directly.
    """
    rt, found = find(name, runtime)
    return _place_on(rt, found)


def _place_on(rt: Runtime, name: str) -> ClientPlace:
    if not rt.runs_clients:
        connects = " / ".join(f"`clusterkit.{b}.connect_to_scheduler()`" for b in BACKENDS)
        raise ClientStartError(
            f"cluster {name!r} runs on the {rt.name} runtime, which has no image or network to run a "
            "client in; there this venv is the cluster's environment: run the program directly "
            f"({connects} with the address `clusterkit status` shows)"
        )
    return rt.client_place(name)


def check_timeout(timeout: Any) -> float:
    """A deadline in seconds: a positive number."""
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        value = float("nan")
    if not value > 0:  # also NaN
        raise InvalidValue(f"timeout: {timeout!r} is not valid; expected a number of seconds above 0")
    return value


def _runtimes(runtime: str | Runtime | None) -> list[Runtime]:
    return listing.runtimes_of(runtime)


#: The variable that names the cluster a command means when no ``--name`` is given.
NAME_ENV = "CLUSTERKIT_NAME"


def resolve_name(name: str | None) -> tuple[str | None, str]:
    """The cluster a command means, and where that name came from (``""``: given, or none found).

    In this order: ``name`` (``--name``); ``$CLUSTERKIT_NAME``; inside a client
    container (``clusterkit run``, ``shell``, the notebook) its own cluster;
    the name ``clusterkit up`` gives a cluster here, from the nearest
    ``clusterkit.yaml`` (this folder or one above it, as Compose finds its
    file); else ``None``: the only running cluster (:func:`find`). A name
    that no cluster could have is refused (``InvalidValue``, exit 2).
    """
    from clusterkit.client_env import CLUSTER

    source = ""
    if not name and os.environ.get(NAME_ENV):
        name, source = os.environ[NAME_ENV], f"from ${NAME_ENV}"
    elif not name and os.environ.get(CLUSTER):
        name = os.environ[CLUSTER]
    elif not name:
        path = find_spec_file()
        if path is None:
            return None, ""
        name, source = resolve_spec(path).name, f"the name {str(path)!r} gives"
    ClusterSpec(name=name)  # validates the name as `up` does
    return name, source


def _matches(name: str | None, runtime: str | Runtime | None) -> list[tuple[Runtime, str]]:
    return [(rt, c) for rt, c in listing.running(runtime) if name in (None, c)]


def find(name: str | None, runtime: str | Runtime | None = None) -> tuple[Runtime, str]:
    """The runtime holding cluster ``name`` (resolved by :func:`resolve_name`; else the only one running)."""
    name, source = resolve_name(name)
    found = _matches(name, runtime)
    if not found:
        which = f"named {name!r}" + (f" ({source}; --name chooses another)" if source else "")
        raise ClusterNotFound(
            f"no running cluster {which if name else 'at all'}; start one with `clusterkit up`"
            + (f" --name {name}" if name else "")
        )
    if len(found) > 1:
        listed = ", ".join(f"{c} ({rt.name})" for rt, c in found)
        raise ClusterNotFound(f"several clusters are running ({listed}); choose one with --name")
    return found[0]


def status(name: str | None = None, runtime: str | None = None, *, repair: bool = False) -> ClusterStatus:
    """A running cluster compared with its spec: ``health`` is ``healthy``, ``degraded`` or ``down``.

    ``repair=True`` also starts ended nodes again (:meth:`Runtime.heal`).
    """
    rt, found = find(name, runtime)
    return _with_notebook(rt, found, rt.status(found, repair=repair))


def down(
    name: str | None = None, runtime: str | None = None, *, volumes: bool = False, missing_ok: bool = False
) -> str | None:
    """Remove a cluster; returns its name.

    ``missing_ok``: no cluster of that name (or none at all, with no name) is
    ``None``, not ``ClusterNotFound``; several running with no name still is one.
    """
    removed = remove(name, runtime, volumes=volumes, missing_ok=missing_ok)
    return removed["name"] if removed else None


def remove(
    name: str | None = None, runtime: str | None = None, *, volumes: bool = False, missing_ok: bool = False
) -> dict[str, str] | None:
    """:func:`down`, returning ``{"name", "runtime"}`` of what went (``down --json``)."""
    name, _ = resolve_name(name)
    if name is not None:
        # A half-started cluster has no scheduler to be found by; `down` removes it all the same.
        for rt in _runtimes(runtime):
            if rt.exists(name) and name not in rt.clusters():
                rt.down(name, volumes=volumes)
                return {"name": name, "runtime": rt.name}
    found = _matches(name, runtime)
    if missing_ok and not found:
        return None
    rt, which = found[0] if len(found) == 1 else find(name, runtime)  # find says what is wrong
    rt.down(which, volumes=volumes)
    return {"name": which, "runtime": rt.name}


def down_all(
    runtime: str | None = None, *, volumes: bool = False
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Remove every running cluster (what ``clusterkit ls`` lists) but those a live owner holds.

    Returns what was removed and what was kept, as ``{"name", "runtime"}``: a
    cluster a live test session or Python ``Cluster`` holds
    (:func:`listing.held_by_live_owner`) stays; ``down --name`` removes it anyway.
    """
    removed: list[dict[str, str]] = []
    kept: list[dict[str, str]] = []
    for rt, name in listing.running(runtime):
        which = {"name": name, "runtime": rt.name}
        if listing.held_by_live_owner(rt, name):
            kept.append(which)
            continue
        try:
            rt.down(name, volumes=volumes)
        except ClusterNotFound:
            continue  # gone meanwhile
        removed.append(which)
    return removed, kept


def scale(
    name: str | None, workers: int | str, runtime: str | None = None, *, timeout: float = 120
) -> ClusterStatus:
    """Reconcile a running cluster to ``workers`` workers and wait until all are registered."""
    count = parse_count("workers", workers)  # a bad count fails before any lookup
    rt, found = find(name, runtime)
    result = rt.scale(found, count, timeout=timeout)
    assert result is not None
    return result


def logs(
    name: str | None = None,
    service: str | None = None,
    runtime: str | None = None,
    *,
    to: str | None = None,
    **options: Any,
) -> list[str]:
    """Print a cluster's logs (``follow``, ``tail``, ``since``, ``timestamps`` as keywords); ``service``:
    scheduler or worker. ``to``: write one file per node into that folder instead; returns their paths."""
    if service is not None and service not in SERVICES:
        raise InvalidValue(f"service: {service!r} is not valid; expected one of {', '.join(SERVICES)}")
    from clusterkit.runtimes import nodelogs

    options["since"] = nodelogs.parse_since(options.get("since"))  # bad input fails before any lookup
    rt, found = find(name, runtime)
    if to is None:
        rt.logs(found, service, **options)
        return []
    options.pop("follow", None)
    chosen = {k: v for k, v in rt.node_logs(found, **options).items() if nodelogs.wanted(k, service)}
    return [str(p) for p in nodelogs.write(chosen, to)]


#: What ``logs SERVICE`` accepts.
SERVICES = ("scheduler", "worker")


def render(spec: ClusterSpec, fmt: str = "compose") -> str:
    """The file a runtime's tool reads for ``spec`` (``compose``, ``stack``), or the resolved spec (``spec``)."""
    import yaml

    if fmt == "spec":
        return yaml.safe_dump(spec.to_dict(), sort_keys=False)
    from clusterkit import images
    from clusterkit.render import render_text

    return render_text(spec, spec.image or images.image_tag(spec.backend), fmt)


def gc(everything: bool = False, *, dry_run: bool = False, reuse: bool = False) -> list[str]:
    """Remove the clusters whose owner died before it was done with them; returns what went.

    An owner is the process that ran ``up`` (until the cluster was ready) or
    that held the cluster (a Python ``Cluster``, a test session): a killed
    ``clusterkit up`` (SIGKILL, a closed terminal) and a killed test session
    leave such clusters. A held container cluster's owner is whoever renews
    its lease on the engine (:mod:`clusterkit.runtimes.leases`), not a PID:
    a session in another PID namespace is never taken for dead. A finished
    ``clusterkit up``'s cluster is never removed, nor one this machine has no
    record of. ``everything`` also removes live test sessions' clusters;
    ``dry_run`` removes nothing and says what would go. ``reuse`` also removes
    the test clusters kept for reuse (``--clusterkit-reuse``), idle or not.
    """
    found = sweep(everything, dry_run=dry_run, reuse=reuse)
    return [f"cluster {c['name']} ({c['runtime']})" for c in found]


def sweep(everything: bool = False, *, dry_run: bool = False, reuse: bool = False) -> list[dict[str, str]]:
    """:func:`gc`, as ``{"name", "runtime"}`` items (``gc --json``)."""
    found = listing.abandoned(everything)
    if reuse:
        found += [
            ("testcontainers", name)
            for name in listing.kept_for_reuse()
            if ("testcontainers", name) not in found
        ]
    if not dry_run:
        for runtime_name, name in found:
            runtimes.get_runtime(runtime_name).remove_all(name)
    return [{"name": name, "runtime": runtime_name} for runtime_name, name in found]


def connect(name: str | None = None, runtime: str | None = None, timeout: float = 60) -> Any:
    """A client for a running cluster: a Dask ``Client`` or a ``SparkSession``."""
    rt, found = find(name, runtime)
    return get_backend(rt.spec_of(found).backend).connect(rt.client_spec(found), timeout)


def drift(
    name: str | None = None, runtime: str | None = None, *, tolerance: str | None = None
) -> tuple[list[Any], dict[str, dict[str, str]]]:
    """The graded version differences between this client and every node of a cluster.

    Inside ``clusterkit run``, ``shell`` or the notebook the client is that
    container (the cluster's own image), found by its environment.
    """
    from clusterkit import client_env
    from clusterkit import drift as drift_check

    here = client_env.target()
    if here is not None and runtime is None and name in (None, here.cluster):
        backend = get_backend(here.backend)
        connection = backend.connect_to_scheduler(timeout=60)
    else:
        rt, found = find(name, runtime)
        backend = get_backend(rt.spec_of(found).backend)
        connection = backend.connect(rt.client_spec(found), 60)
    try:
        versions = backend.node_versions(connection)
    finally:
        backend.close(connection)
    project = _project_packages(versions)
    versions["client"] = {**status_mod.package_versions(project), **versions.get("client", {})}
    found = drift_check.compare(versions, backend=backend.name, tolerance=tolerance, project=project)
    return found, versions


def _project_packages(versions: dict[str, dict[str, str]]) -> list[str]:
    """The packages the nodes report beyond clusterkit's own list: the project's dependencies."""
    reported = {p for node, found in versions.items() if node != "client" for p in found}
    return sorted(reported - set(status_mod.TRACKED_PACKAGES) - {"python", "lock", "java"})
