"""A test session's clusters on the engine: the sweep at first use, and removal by session id at the end.

Nothing here runs unless a test asked for a cluster fixture: a pytest run of a
project that merely has clusterkit installed never contacts the engine.
"""

from __future__ import annotations

from pathlib import Path

from clusterkit import labels
from clusterkit.errors import ClusterKitError

#: A file in the session's shared temp folder: some process of this session used a cluster fixture.
USED = "clusterkit-session-used"


def mark_used(root: Path) -> None:
    """Tell the session's last process (the xdist controller) that it has clusters to check for."""
    (root / USED).touch()


def was_used(root: Path) -> bool:
    return (root / USED).exists()


#: Lines for the terminal summary (a kept cluster reused or replaced), in the same folder.
NOTES = "clusterkit-session-notes.txt"


def note(root: Path, line: str) -> None:
    """A line for the terminal summary, from any process of the session (xdist workers too)."""
    with (root / NOTES).open("a") as notes:
        notes.write(line + "\n")


def notes(root: Path) -> list[str]:
    found = root / NOTES
    return list(dict.fromkeys(found.read_text().splitlines())) if found.exists() else []


def sweep() -> list[str]:
    """Remove what dead sessions (SIGKILL, OOM) left behind; an engine that does not answer: nothing."""
    from clusterkit import cluster

    try:
        return cluster.gc()
    except ClusterKitError:
        return []


def remove_session(session: str) -> list[str]:
    """Remove every cluster labelled with ``session``, whatever its reference count says.

    An xdist worker killed by SIGKILL never gives back its share of the state
    file's count, so "the last one out" never comes; the session's last
    process removes by label instead.
    """
    from clusterkit.runtimes.testcontainers import TestcontainersRuntime

    runtime = TestcontainersRuntime(session=session)
    wanted = {"label": labels.selector(session=session)}
    try:
        found = runtime.docker.containers.list(all=True, filters=wanted, ignore_removed=True)
        found += runtime.docker.networks.list(filters=wanted)
    except ClusterKitError:
        return []
    names = sorted({(r.attrs.get("Labels") or {}).get(labels.CLUSTER, "") for r in found} - {""})
    for name in names:
        runtime.remove_all(name)
    return names
