"""What every runtime checks around a start: refusals before it, a warning, readiness after it.

Written once for all runtimes (:class:`clusterkit.runtimes.base.Runtime` uses
them): a worker that asks for more memory than there is is refused before
anything starts (:func:`check_memory_fits`); a scheduler published beyond
loopback without authentication is warned about (:func:`exposure`); and a
cluster is ready once its scheduler lists every worker (:func:`wait_for_workers`,
through the one wait loop, :func:`clusterkit.waiting.wait_for`).
"""

from __future__ import annotations

from collections.abc import Callable

from clusterkit.backends import get_backend
from clusterkit.errors import StartupTimeout
from clusterkit.progress import Event, Progress, quiet
from clusterkit.spec import ClusterSpec
from clusterkit.status import ClusterStatus
from clusterkit.waiting import NotReady, wait_for


def exposure(spec: ClusterSpec) -> str:
    """A warning when the scheduler is published beyond loopback without authentication, else ``""``."""
    from clusterkit.net import loopback

    if loopback(spec.bind_address) or getattr(spec, "security", None) == "tls":
        return ""
    return (
        f"warning: the scheduler (port {spec.scheduler_port}) and dashboard (port {spec.dashboard_port}) "
        f"are published on {spec.bind_address} without authentication: anyone who can reach this "
        "address can run code on the cluster; bind to 127.0.0.1 (the default) unless that is intended"
    )


def check_memory_fits(spec: ClusterSpec, total: int, where: str) -> None:
    """Refuse a worker that asks for more memory than the machine (or engine) has in all.

    A worker given more than exists starts, then is killed by the kernel at
    the first large task; that is bad input, said before anything starts.
    """
    from clusterkit.errors import InvalidValue
    from clusterkit.spec import format_memory

    if total and spec.memory > total:
        raise InvalidValue(
            f"memory: {format_memory(spec.memory)} per worker is more than {where} has in all "
            f"({format_memory(total)}); ask for less (e.g. --memory 2g)"
        )


def scheduler_view(spec: ClusterSpec) -> tuple[ClusterStatus, str]:
    """What the scheduler of ``spec`` (as this host reaches it) reports, and ``""``; or, when it
    does not answer, an ``UNREACHABLE`` status and the reason."""
    backend = get_backend(spec.backend)
    try:
        found = backend.collect_status(
            spec.scheduler_host, spec.scheduler_port, spec.dashboard_port, **backend.status_options(spec)
        )
    except NotReady as e:
        unreachable = ClusterStatus(
            backend=spec.backend,
            scheduler_address=spec.scheduler_address,
            state="UNREACHABLE",
            dashboard_url=None,
        )
        return unreachable, str(e)
    return found, ""


def wait_for_workers(
    spec: ClusterSpec,
    *,
    expected: int,
    timeout: float,
    check: Callable[[], None] | None = None,
    diagnose: Callable[[], str] | None = None,
    progress: Progress = quiet,
) -> int:
    """Wait until the scheduler of ``spec`` (as this host reaches it) sees ``expected`` workers.

    ``check`` runs on every poll and may raise at once (a node has exited);
    ``diagnose`` adds what went wrong to a time-out message; ``progress`` hears
    "k of n workers registered" each time the count changes.
    """
    backend = get_backend(spec.backend)
    credentials = backend.status_options(spec)
    last = [0]

    def probe() -> int:
        if check is not None:
            check()
        seen = backend.count_workers(
            spec.scheduler_host, spec.scheduler_port, spec.dashboard_port, **credentials
        )
        if seen != last[0]:
            last[0] = seen
            progress(Event("registered", f"{seen} of {expected} workers registered"))
        if seen != expected:
            raise NotReady(f"{seen} of {expected} workers registered")
        return seen

    return wait_for(
        probe,
        what=f"{expected} {spec.backend} workers of cluster {spec.name!r} at {spec.scheduler_address}",
        timeout=timeout,
        interval=0.1,
        max_interval=0.25,  # readiness is what `up` is timed by: notice it promptly
        error=StartupTimeout,
        on_timeout=diagnose,
    )
