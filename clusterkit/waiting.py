"""The one readiness mechanism: poll a probe with backoff until a deadline.

Every wait in clusterkit (a scheduler to accept connections, N workers to
register, containers to stop) goes through :func:`wait_for`, so each has a
deadline, a poll interval that backs off, and a time-out message that says
what was awaited, how often it was tried, for how long, and the last reason.
A probe says "not yet" with :class:`NotReady` (the container health probes of
:mod:`clusterkit.probe` too) or an ``OSError``.

    >>> wait_for(lambda: 42, what="the answer", timeout=1)
    42

Standard library only at import (tenacity is imported when a wait starts): a
node's start-up and every container probe import this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from clusterkit.errors import ClusterKitError, StartupTimeout

T = TypeVar("T")


class NotReady(Exception):
    """Raised by a probe to say "not yet" (it answers but is not ready, or does not answer),
    with the reason shown on time-out."""


def accepts_connections(host: str, port: int, timeout: float = 2.0) -> None:
    """A probe: returns once ``host:port`` accepts a TCP connection, else raises ``OSError``."""
    import socket  # here: the container probes import this module and never open a raw socket

    with socket.create_connection((host, port), timeout=timeout):
        pass


def wait_for(
    probe: Callable[[], T],
    *,
    what: str,
    timeout: float,
    interval: float = 0.1,
    max_interval: float = 2.0,
    retry_on: tuple[type[BaseException], ...] = (NotReady, OSError),
    error: type[ClusterKitError] = StartupTimeout,
    hint: str = "",
    on_timeout: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until it returns without raising one of ``retry_on``.

    Args:
        probe: returns the ready value, or raises ``NotReady``/``retry_on``.
        what: what is awaited, for the message ("2 workers at 127.0.0.1:8786").
        timeout: seconds until giving up.
        interval: first pause between tries; doubles up to ``max_interval``.
        retry_on: exceptions that mean "not yet"; any other (and any ``ClusterKitError``)
            propagates at once.
        error: the ``ClusterKitError`` subclass raised on time-out.
        hint: a sentence on how to fix it, appended to the message.
        on_timeout: returns extra diagnostics (exited processes, log tails).

    Returns:
        The first value ``probe`` returns.
    """
    import tenacity  # here: a node's start-up imports this module but never waits

    started = time.monotonic()
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_delay(max(timeout, 0.0)),
        wait=tenacity.wait_exponential(multiplier=interval, min=interval, max=max_interval),
        # A ClusterKitError from the probe means "give up now", even one that is also an
        # OSError (ClusterUnavailable and PortInUse are ConnectionErrors).
        retry=tenacity.retry_if_exception(
            lambda e: isinstance(e, retry_on) and not isinstance(e, ClusterKitError)
        ),
        reraise=False,
    )
    try:
        return retrying(probe)
    except tenacity.RetryError as e:
        last = e.last_attempt.exception() if e.last_attempt is not None else None
        message = _timeout_message(what, e.last_attempt, time.monotonic() - started, last)
        if hint:
            message += f". {hint}"
        extra = on_timeout() if on_timeout is not None else ""
        if extra:
            message += "\n" + extra
        raise error(message) from last


def _timeout_message(what: str, attempt: Any, waited: float, last: BaseException | None) -> str:
    """What was awaited, how often it was tried, for how long, and the last reason."""
    reason = f"{type(last).__name__}: {last}" if last is not None else "no answer"
    if isinstance(last, NotReady):
        reason = str(last)
    return (
        f"timed out after {waited:.1f}s waiting for {what} "
        f"({attempt.attempt_number} attempts; last: {reason})"
    )
