"""A failing test's report carries the recent logs of the clusters it used, one section per node.

The plugin's ``pytest_runtest_makereport`` wrapper (:mod:`clusterkit.testing.plugin`)
calls :func:`log_sections` for a failed setup or call. Only the clusters the
test itself had (a ``dask_cluster``/``spark_cluster`` handle among its
fixtures, or the session's clusters when it used the ``clusterkit_cluster``
factory) are read: a test without a cluster fixture makes no engine call.
Reading the logs never fails the report: an error becomes the section's text.
"""

from __future__ import annotations

from typing import Any

from clusterkit.testing.handle import ClusterHandle

#: Lines per node attached to a failing test's report.
TAIL = 200
#: What a section's title starts with (then the node, and the cluster).
TITLE = "clusterkit logs"


def clusters_of(item: Any) -> list[ClusterHandle]:
    """The cluster handles among the test's fixture values (none computed: none used)."""
    values = dict(getattr(item, "funcargs", None) or {})
    found = [v for v in values.values() if isinstance(v, ClusterHandle)]
    if not found and "clusterkit_cluster" in values and "_clusterkit_clusters" in values:
        found = list(getattr(values["_clusterkit_clusters"], "handles", {}).values())
    unique: dict[int, ClusterHandle] = {}
    for handle in found:
        unique.setdefault(id(handle.cluster), handle)
    return list(unique.values())


def log_sections(item: Any, tail: int = TAIL) -> list[tuple[str, str]]:
    """``(title, text)`` per node of each cluster the test used: its last ``tail`` log lines."""
    sections = []
    for handle in clusters_of(item):
        cluster = handle.cluster
        name = getattr(cluster.spec, "name", "?")
        try:
            found = cluster.runtime.node_logs(name, tail=tail)
        except Exception as e:  # noqa: BLE001 - a report never fails over its logs
            sections.append((f"{TITLE}: {name}", f"(the logs could not be read: {e})"))
            continue
        for node, text in found.items():
            sections.append((f"{TITLE}: {node} [{name}]", text or "(empty log)"))
    return sections


def sharing_hints(item: Any, text: str) -> list[tuple[str, str]]:
    """A section naming each path the failure says a node could not write or read, and the mount that fixes it."""
    from clusterkit.mounts import explain, refused_paths

    refused = refused_paths(text)
    lines = [
        explain(path, getattr(handle.cluster.spec, "mounts", None), write=write)
        for handle in clusters_of(item)[:1]
        for path, write in refused
    ]
    return [("clusterkit: shared folders", "\n".join(lines))] if lines else []


def attach(item: Any, report: Any) -> None:
    """Add the logs to ``report`` if it is a failed setup or call of a test that used a cluster."""
    if not report.failed or report.when not in ("setup", "call"):
        return
    try:
        report.sections.extend(sharing_hints(item, getattr(report, "longreprtext", "") or ""))
        report.sections.extend(log_sections(item))
    except Exception as e:  # noqa: BLE001 - never turn a report into an internal error
        report.sections.append((TITLE, f"(the logs could not be read: {e})"))
