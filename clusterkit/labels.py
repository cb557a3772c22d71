"""Label keys put on every container, network and volume clusterkit creates.

Tear-down and the ``clusterkit gc`` sweep find resources by these labels,
never by name, so nothing the kit made can be missed.
"""

from __future__ import annotations

import os
import uuid

PROJECT = "clusterkit.project"
CLUSTER = "clusterkit.cluster"
ROLE = "clusterkit.role"
BACKEND = "clusterkit.backend"
RUNTIME = "clusterkit.runtime"
SPEC = "clusterkit.spec"
SESSION = "clusterkit.session"
SESSION_PID = "clusterkit.session-pid"
#: ``1`` on a held cluster whose owner is whoever renews its lease (:mod:`clusterkit.runtimes.leases`).
LEASE = "clusterkit.lease"
#: On a test cluster kept for reuse across pytest runs: the digest of its spec and image
#: (:mod:`clusterkit.testing.reuse`); it belongs to no session.
REUSE = "clusterkit.reuse"
#: The fixture a kept cluster serves (project folder, backend, fixture arguments): one per slot.
REUSE_SLOT = "clusterkit.reuse-slot"

PROJECT_VALUE = "clusterkit"


def cluster_labels(name: str, backend: str, runtime: str, role: str | None = None) -> dict[str, str]:
    """The labels of one cluster's resource; ``role`` is scheduler or worker."""
    labels = {PROJECT: PROJECT_VALUE, CLUSTER: name, BACKEND: backend, RUNTIME: runtime}
    if role:
        labels[ROLE] = role
    return labels


def new_session_id() -> str:
    """An id for one test session (pytest plugin); resources carry it with the PID."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


def selector(**labels: str) -> list[str]:
    """Docker filter list: ``selector(cluster="x")`` -> ``["clusterkit.project=clusterkit", ...]``."""
    keys = {
        "cluster": CLUSTER,
        "role": ROLE,
        "backend": BACKEND,
        "runtime": RUNTIME,
        "session": SESSION,
        "reuse_slot": REUSE_SLOT,
    }
    found = [f"{PROJECT}={PROJECT_VALUE}"]
    found += [f"{keys[k]}={v}" for k, v in labels.items()]
    return found
