"""What a Dask cluster says about itself: its workers and the versions every node runs.

Read over the scheduler's own protocol (msgpack, which carries the tuple keys of
worker metrics that its ``/json/identity.json`` fails on) or through a client,
and compared with this client's versions (:mod:`clusterkit.drift`).
"""

from __future__ import annotations

from typing import Any

from clusterkit.facts import DASK
from clusterkit.status import WorkerStatus, local_versions


async def identity(address: str, timeout: float, security: Any = None, n_workers: int = -1) -> dict[str, Any]:
    """The scheduler's ``identity`` over its own protocol; ``n_workers=0``: counts only."""
    from distributed.core import rpc

    args = security.get_connection_args("client") if security is not None else {}
    async with rpc(address, timeout=timeout, connection_args=args) as scheduler:
        return await scheduler.identity(n_workers=n_workers)


def worker_statuses(info: dict[str, Any]) -> tuple[WorkerStatus, ...]:
    """Workers from the scheduler's ``identity`` / ``scheduler_info`` answer."""
    return tuple(
        WorkerStatus(
            name=str(w.get("name", addr)),
            address=addr,
            cores=int(w.get("nthreads", 0)),
            memory=int(w.get("memory_limit") or 0),
            state=str(w.get("status", "running")).upper(),
        )
        for addr, w in info.get("workers", {}).items()
    )


def node_versions(client: Any) -> dict[str, dict[str, str]]:
    """Versions of the client, scheduler and every worker, keyed by worker name."""
    versions = {"client": local_versions()}
    try:
        versions["scheduler"] = client.run_on_scheduler(local_versions)
        names = {a: str(w.get("name", a)) for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
        for addr, found in client.run(local_versions).items():
            versions[names.get(addr, addr)] = found
    except Exception:  # noqa: BLE001 - nodes without clusterkit: fall back
        raw = client.get_versions(check=False)
        versions["scheduler"] = flatten(raw.get("scheduler", {}))
        for addr, found in raw.get("workers", {}).items():
            versions[addr] = flatten(found)
    return versions


def quiet_version_warning() -> None:
    """Hide distributed's ``VersionMismatchWarning`` (a table on every connection, also for the
    Python micro version); :func:`warn_drift` says the same once per client, graded."""
    import warnings

    from distributed.versions import VersionMismatchWarning

    warnings.filterwarnings("ignore", category=VersionMismatchWarning)


def warn_drift(client: Any) -> None:
    """One graded line (:mod:`clusterkit.drift`) if this client and the cluster differ, once per client."""
    import warnings

    from clusterkit import drift

    if getattr(client, "_clusterkit_drift_checked", False):
        return
    client._clusterkit_drift_checked = True
    try:
        raw = client.get_versions(check=False)
    except Exception:  # noqa: BLE001 - a drift note is never worth failing a connection
        return
    summary = drift_summary(raw)
    if summary:
        warnings.warn(drift.DriftWarning(summary), stacklevel=3)


def drift_summary(raw: dict[str, Any]) -> str:
    """:func:`clusterkit.drift.summarize` of distributed's ``get_versions`` answer (scheduler, workers)."""
    from clusterkit import drift

    versions = {"client": local_versions(), "scheduler": flatten(raw.get("scheduler") or {})}
    versions.update({str(a): flatten(v or {}) for a, v in (raw.get("workers") or {}).items()})
    return drift.summarize(drift.compare(versions, backend=DASK.name))


def flatten(raw: dict[str, Any]) -> dict[str, str]:
    """One node's packages (and micro Python version) from distributed's ``get_versions``."""
    found = {k: str(v) for k, v in raw.get("packages", {}).items() if v is not None}
    python = raw.get("host", {}).get("python")
    if python:
        # distributed reports "3.11.2.final.0": the micro version is what the drift check compares.
        found["python"] = ".".join(str(python).split()[0].split(".")[:3])
    return found
