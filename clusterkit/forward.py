"""A TCP forwarder: ``python -m clusterkit.forward LISTEN_PORT TARGET_HOST:PORT [...]``.

On a swarm the dashboard (or Spark's web UI) is not published on the nodes'
interfaces. The swarm runtime starts this in a small container on this
machine, joined to the cluster's overlay network and published on 127.0.0.1
only: the one path to the dashboard, from this machine. Standard library only.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def serve(listen_port: int, host: str, port: int) -> Any:
    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    return await asyncio.start_server(relay, "0.0.0.0", listen_port)


async def _serve_all(pairs: list[tuple[int, str, int]]) -> None:
    servers = [await serve(*pair) for pair in pairs]
    await asyncio.gather(*(server.serve_forever() for server in servers))


def main(argv: list[str]) -> int:
    if not argv or len(argv) % 2 or not all(":" in target for target in argv[1::2]):
        print("usage: python -m clusterkit.forward LISTEN_PORT TARGET_HOST:PORT [...]", file=sys.stderr)
        return 2
    pairs = []
    for listen, target in zip(argv[::2], argv[1::2], strict=True):
        host, _, port = target.rpartition(":")
        pairs.append((int(listen), host, int(port)))
    asyncio.run(_serve_all(pairs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
