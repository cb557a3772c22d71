"""Test clusters kept for reuse across pytest runs, as the engine holds them (``--clusterkit-reuse``).

Which cluster serves which fixture is :mod:`clusterkit.testing.reuse`; here is
what ``gc --reuse``, ``down --all`` and the plugin share: finding kept
clusters by label, and parking one (an idle lease, :data:`~clusterkit.runtimes.leases.IDLE`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clusterkit import labels
from clusterkit.runtimes import leases

#: The session label of a kept cluster: no test session's clean-up matches it.
SESSION = "reuse"


@dataclass
class Kept:
    """A kept cluster of a slot, as the engine lists it."""

    name: str
    key: str


def kept(docker: Any, slot_id: str | None = None) -> list[Kept]:
    """The kept clusters (of one slot), from their scheduler containers' labels."""
    selector = labels.selector(role="scheduler", **({"reuse_slot": slot_id} if slot_id else {}))
    found = docker.containers.list(
        all=True, filters={"label": [*selector, labels.REUSE]}, ignore_removed=True
    )
    return [Kept(c.labels[labels.CLUSTER], c.labels[labels.REUSE]) for c in found]


def park(docker: Any, name: str, idle_seconds: float) -> None:
    """Leave ``name`` for the next run: a lease nobody renews, for the idle time."""
    leases.write(docker, name, leases.IDLE, idle_seconds)
