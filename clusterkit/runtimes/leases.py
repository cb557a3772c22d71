"""Engine-side ownership of held container clusters: a lease the owner keeps renewing.

A PID names a process only inside one PID namespace on one machine; two test
sessions in different containers (or ``unshare --pid``) that share an engine
would each think the other's owner dead. The engine is what they surely share,
so the owner keeps a small file, ``/tmp/.clusterkit-lease``, in its cluster's
scheduler container (``put_archive``: works on a stopped or restarting
container too), holding the engine's clock at each renewal and how long the
lease lasts. A sweeper compares it with the engine's clock again: one clock,
whatever the machines' clocks say. Resources under a lease carry
:data:`LEASE`; their owner PID is then not consulted.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import threading
from contextlib import suppress
from datetime import datetime
from typing import Any

from clusterkit import labels

#: ``1`` on every resource of a cluster whose owner holds it by a lease.
LEASE = labels.LEASE
#: The lease file, in the scheduler container.
LEASE_DIR, LEASE_FILE = "/tmp", ".clusterkit-lease"
#: Seconds a lease lasts without renewal; the owner renews every third of it.
#: ``CLUSTERKIT_LEASE_SECONDS`` shortens it (tests); never above 60, so a dead
#: owner's cluster goes within 90 s of its death (lease, plus the next sweep).
DEFAULT_TTL = 60.0
#: The lease of a cluster kept on purpose (``--clusterkit-keep``): ten years; ``clusterkit down`` ends it.
KEPT = 10 * 365 * 86400.0
#: The session of a lease nobody renews on purpose: a test cluster kept for reuse, idle
#: (:mod:`clusterkit.testing.reuse`). Its ``ttl`` is the idle time after which sweeps remove it.
IDLE = "idle"
#: Seconds a leased cluster may have no readable lease (its scheduler is still being created).
GRACE = 60.0


def ttl() -> float:
    try:
        value = float(os.environ.get("CLUSTERKIT_LEASE_SECONDS", DEFAULT_TTL))
    except ValueError:
        value = DEFAULT_TTL
    return min(max(value, 3.0), DEFAULT_TTL)


def engine_time(text: str) -> float:
    """An engine timestamp (RFC 3339, nanoseconds) as epoch seconds.

    >>> engine_time("1970-01-01T00:01:00.123456789Z")
    60.123456
    """
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.strip()).replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


def engine_now(client: Any) -> float:
    """The engine's clock, in epoch seconds."""
    return engine_time(client.info()["SystemTime"])


def _scheduler(client: Any, name: str) -> Any | None:
    selector = labels.selector(cluster=name, role="scheduler")
    found = client.containers.list(all=True, filters={"label": selector}, ignore_removed=True)
    return found[0] if found else None


def write(client: Any, name: str, session: str, seconds: float) -> bool:
    """Renew cluster ``name``'s lease for ``seconds``; ``False`` while it has no scheduler container."""
    scheduler = _scheduler(client, name)
    if scheduler is None:
        return False
    body = json.dumps({"renewed": engine_now(client), "ttl": seconds, "session": session}).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(LEASE_FILE)
        info.size, info.mode = len(body), 0o644
        tar.addfile(info, io.BytesIO(body))
    return bool(scheduler.put_archive(LEASE_DIR, buffer.getvalue()))


def read(client: Any, name: str) -> dict[str, Any] | None:
    """The lease of cluster ``name``, or ``None`` if it has no scheduler or no lease yet."""
    from docker.errors import APIError

    scheduler = _scheduler(client, name)
    if scheduler is None:
        return None
    try:
        stream, _ = scheduler.get_archive(f"{LEASE_DIR}/{LEASE_FILE}")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile(LEASE_FILE)
            return json.loads(member.read()) if member else None
    except (APIError, tarfile.TarError, ValueError, KeyError):
        return None


def expired(client: Any, name: str, created: float, now: float | None = None) -> bool:
    """Has cluster ``name``'s owner stopped renewing? ``created``: its newest resource, engine clock."""
    now = engine_now(client) if now is None else now
    lease = read(client, name)
    if lease is None:
        return now - created > GRACE
    return now - float(lease["renewed"]) > float(lease.get("ttl", DEFAULT_TTL))


def idle(client: Any, name: str) -> bool:
    """Is cluster ``name`` parked for reuse, with no session renewing its lease?"""
    lease = read(client, name)
    return bool(lease) and lease.get("session") == IDLE


class Renewer:
    """A daemon thread renewing one cluster's lease until :meth:`stop` (or the process dies)."""

    def __init__(self, client: Any, name: str, session: str) -> None:
        self.client, self.name, self.session = client, name, session
        self.seconds = ttl()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"clusterkit-lease-{name}", daemon=True)

    def start(self) -> Renewer:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            with suppress(Exception):  # an engine hiccup: the next renewal tries again
                write(self.client, self.name, self.session, self.seconds)
            self._stop.wait(self.seconds / 3 if self.seconds > 9 else 1.0)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
