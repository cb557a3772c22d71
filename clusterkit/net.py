"""Addresses and ports: parsing ``[scheme://]host[:port]``, loopback, whether a port is free, free ports.

Standard library only: a node's entry point and the probes use it at start-up.
"""

from __future__ import annotations

import contextlib
import errno
import re
import socket
from collections.abc import Collection

from clusterkit.errors import BadAddress, PortInUse

_ADDRESS_RE = re.compile(
    r"^(?:(?P<scheme>[a-z][a-z0-9+.-]*)://)?(?P<host>\[[^\]]+\]|[^:/\s]+)(?::(?P<port>\d+))?/?$"
)


def parse_address(address: str, default_port: int, scheme: str | None = None) -> tuple[str, int]:
    """Split ``[scheme://]host[:port]`` into ``(host, port)``.

    Host names (``scheduler:8786``) work as well as IPv4 and bracketed IPv6.
    An address that cannot be used raises ``BadAddress``: bad input (exit 2)
    and a ``ConnectionError``, as the seed API's callers expect.

    >>> parse_address("tcp://scheduler:8786", 8786, "tcp")
    ('scheduler', 8786)
    >>> parse_address("10.0.0.5", 7077, "tls")
    ('10.0.0.5', 7077)
    """
    match = _ADDRESS_RE.match(str(address).strip())
    if not match:
        raise BadAddress(
            f"address: {address!r} is not valid; expected host:port, e.g. 127.0.0.1:{default_port}"
        )
    given = match.group("scheme")
    if given and scheme and given != scheme:
        raise BadAddress(f"address: {address!r} has scheme {given!r}; expected {scheme}://host:port")
    port = int(match.group("port") or default_port)
    if not 1 <= port <= 65535:
        raise BadAddress(f"address: {address!r} has port {port}; expected 1 to 65535")
    return match.group("host").strip("[]"), port


def format_host(host: str) -> str:
    """``host`` as it goes before ``:port`` (IPv6 in brackets).

    >>> format_host("::1"), format_host("scheduler")
    ('[::1]', 'scheduler')
    """
    return f"[{host}]" if ":" in host else host


def ensure_port_free(host: str, port: int, what: str) -> None:
    """Raise ``PortInUse`` if ``host:port`` cannot be bound now.

    Checked before starting anything, because Spark silently moves to the next
    port and Dask fails deep inside its start-up.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # As servers do: a port in TIME_WAIT is free, one with a listener is not.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortInUse(
                    f"{what} port {port} on {host} is already in use; stop what holds it "
                    f"(e.g. `ss -ltnp 'sport = :{port}'`) or choose another port"
                ) from e
            if e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                raise BadAddress(
                    f"bind_address: {host} is not an address of this machine ({e.strerror}); use "
                    "127.0.0.1 (the default), ::1, 0.0.0.0, :: or one of this machine's addresses"
                ) from e
            raise


def free_ports(host: str, count: int, avoid: Collection[int] = ()) -> list[int]:
    """``count`` distinct ports that can be bound on ``host`` now (the kernel's picks).

    As distributed's ``LocalCluster`` does: a cluster started from Python
    takes ports nothing holds, so a second one (or a ``LocalCluster`` on
    8786/8787) never collides. All are held open until every one is picked,
    so they differ from each other; ``avoid`` are ports already chosen
    elsewhere (an explicit scheduler port).

    >>> a, b = free_ports("127.0.0.1", 2)
    >>> a != b and 0 < a < 65536
    True
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with contextlib.ExitStack() as held:
        ports: list[int] = []
        while len(ports) < count:
            s = held.enter_context(socket.socket(family, socket.SOCK_STREAM))
            try:
                s.bind((host, 0))
            except OSError as e:
                raise BadAddress(
                    f"bind_address: {host} is not an address of this machine ({e.strerror}); use "
                    "127.0.0.1 (the default), ::1, 0.0.0.0, :: or one of this machine's addresses"
                ) from e
            port = s.getsockname()[1]
            if port not in avoid:
                ports.append(port)
        return ports


def loopback(host: str) -> bool:
    """Whether ``host`` names this machine's loopback.

    >>> loopback("127.0.0.1"), loopback("localhost"), loopback("10.0.0.5")
    (True, True, False)
    """
    return host in ("localhost", "::1") or host.startswith("127.")
