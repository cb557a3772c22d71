"""Test clusters kept across pytest runs (``--clusterkit-reuse``): a warm start for a test loop.

A kept cluster is an ordinary testcontainers cluster with two more labels: its
slot (the project folder, backend and fixture arguments it serves) and its key
(a digest of its spec, names and ports aside, and of its image's id). It
belongs to no session: between runs its lease (:mod:`clusterkit.runtimes.leases`)
says :data:`~clusterkit.runtimes.leases.IDLE` and lasts the idle time, so
sweeps leave it until it has been idle that long (the engine side:
:mod:`clusterkit.runtimes.kept`). A run that finds its slot's
cluster with the same key, healthy and idle, takes it as it is; a changed spec
or image replaces it. ``clusterkit down --all`` and ``clusterkit gc --reuse``
remove it. Never under ``CI``: a CI run starts clean.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import pytest

from clusterkit import labels
from clusterkit.spec import ClusterSpec

#: Seconds a kept cluster may stay unused before a sweep removes it (ini ``clusterkit_reuse_idle``).
DEFAULT_IDLE = 3600.0


def refused_by_environment(environ: dict[str, str] | None = None) -> str | None:
    """Why reuse is off here: ``CI`` is set (a CI run must start from nothing)."""
    environ = dict(os.environ) if environ is None else environ
    if environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        return "CI is set"
    return None


def idle_seconds(config: Any) -> float:
    """The ini's ``clusterkit_reuse_idle``; a bad value is a usage error."""
    value = str(config.getini("clusterkit_reuse_idle"))
    try:
        return float(value)
    except ValueError:
        raise pytest.UsageError(f"clusterkit_reuse_idle must be a number of seconds, not {value!r}") from None


def refusal(config: Any) -> str | None:
    """``None``: reuse not asked; ``""``: asked and on; else why it is off though asked (``CI``)."""
    if not (config.getoption("clusterkit_reuse") or config.getini("clusterkit_reuse")):
        return None
    return refused_by_environment() or ""


def slot(rootdir: str, backend: str, arguments: str) -> str:
    """Which fixture a kept cluster serves: one project's folder, backend and fixture arguments.

    >>> slot("/src/app", "dask", "x") == slot("/src/app", "dask", "x") != slot("/src/b", "dask", "x")
    True
    """
    return hashlib.sha256(json.dumps([rootdir, backend, arguments]).encode()).hexdigest()[:12]


def key(spec: ClusterSpec, image_id: str) -> str:
    """What must match for a kept cluster to serve: the spec (name and ports aside) and the image.

    >>> a = ClusterSpec(name="a", scheduler_port=1)
    >>> key(a, "sha256:1") == key(a.replace(name="b", scheduler_port=2), "sha256:1") != key(a, "sha256:2")
    True
    """
    record = spec.to_dict()
    for field in ("name", "scheduler_port", "dashboard_port", "connect_port", "bind_address"):
        record.pop(field, None)
    return hashlib.sha256(json.dumps([record, image_id], sort_keys=True).encode()).hexdigest()[:12]


def cluster_name(backend: str, slot_id: str, key_id: str) -> str:
    """The kept cluster's name: its slot and key, so a new key is a new cluster."""
    return f"reuse-{backend}-{slot_id[:8]}-{key_id[:8]}"


def acquire(
    runtime: Any, spec: ClusterSpec, slot_id: str, *, restart: bool, progress: Any
) -> tuple[Any, list[str]] | None:
    """The slot's kept cluster for ``spec`` (started and kept if there is none), and what happened.

    ``None`` when the slot's cluster is in use by another live session: the
    caller starts one of its own. ``restart``: the workers are restarted first.
    """
    from clusterkit import Cluster
    from clusterkit.runtimes import kept, leases
    from clusterkit.runtimes.containers import node_image

    docker = runtime.docker
    image = node_image(spec, progress)
    spec = spec.replace(image=image)
    key_id = key(spec, docker.images.get(image).id)
    name = cluster_name(spec.backend, slot_id, key_id)
    notes = []
    found = kept.kept(docker, slot_id)
    for other in found:
        if other.name != name and leases.idle(docker, other.name):
            runtime.remove_all(other.name)
            notes.append(f"removed kept cluster {other.name}: its spec or image changed")
    runtime.extra_labels[name] = {
        labels.SESSION: kept.SESSION,
        labels.REUSE: key_id,
        labels.REUSE_SLOT: slot_id,
    }
    if name in {k.name for k in found}:
        if not leases.idle(docker, name):
            return None  # another live session uses it now
        status = runtime.status(name)
        if status.health == "healthy":
            runtime.hold(name)
            if restart:
                runtime.restart_workers(name)
            notes.append(f"reused kept cluster {name}" + (" (workers restarted)" if restart else ""))
            return Cluster.from_name(name, runtime=runtime), notes
        runtime.remove_all(name)
        notes.append(f"replaced kept cluster {name}: {'; '.join(status.problems) or status.health}")
    cluster = Cluster(spec=spec.replace(name=name), runtime=runtime, timeout=180, progress=progress)
    cluster.owned = False  # parked at the end of the run, not removed
    notes.append(f"started {name} and kept it for the next run (`clusterkit gc --reuse` removes it)")
    return cluster, notes
