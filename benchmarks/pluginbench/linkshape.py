"""A TCP relay on 127.0.0.1 that makes a local server look far away.

Azurite and the client share one machine, so one connection already moves data about
as fast as the machine can, and parallel connections have little to win. Against Azure
each connection is limited by its round trip time and its own share of the path, and
parallel connections multiply throughput. This relay models that link: every connection
carries at most ``bytes_per_second`` in each direction, every byte arrives
``round_trip / 2`` after it was sent, and opening a connection costs one round trip.

Each direction is a queue of timestamped chunks, bounded to about one bandwidth-delay
product, so a sender is held back like TCP's window would hold it; nothing is buffered
without bound. Bytes are relayed unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from pluginbench.background_server import BackgroundServer

CHUNK = 64 * 1024


@dataclass(frozen=True)
class LinkModel:
    """Per-connection bandwidth (bytes per second, each direction) and round trip time."""

    bytes_per_second: float
    round_trip: float

    def __post_init__(self) -> None:
        if self.bytes_per_second <= 0:
            raise ValueError(f"link bandwidth must be positive, got {self.bytes_per_second}")
        if self.round_trip < 0:
            raise ValueError(f"link round trip must not be negative, got {self.round_trip}")

    @property
    def window_chunks(self) -> int:
        """Chunks in flight per direction: one bandwidth-delay product, at least four."""
        product = self.bytes_per_second * self.round_trip
        return max(4, int(product // CHUNK) + 1)

    def describe(self) -> str:
        return (
            f"{self.bytes_per_second / 1e6:g} MB/s per connection, "
            f"{self.round_trip * 1000:g} ms round trip"
        )


async def _shaped_pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: LinkModel
) -> None:
    loop = asyncio.get_running_loop()
    in_flight: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(link.window_chunks)
    one_way = link.round_trip / 2

    async def take_in() -> None:
        link_free_at = loop.time()
        try:
            while chunk := await reader.read(CHUNK):
                # The chunk occupies the link after whatever is ahead of it, then travels.
                sent_at = max(loop.time(), link_free_at) + len(chunk) / link.bytes_per_second
                link_free_at = sent_at
                await in_flight.put((sent_at + one_way, chunk))
        finally:
            await in_flight.put((loop.time() + one_way, b""))

    async def hand_out() -> None:
        while True:
            due, chunk = await in_flight.get()
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            if not chunk:
                break
            writer.write(chunk)
            await writer.drain()

    taker = asyncio.ensure_future(take_in())
    try:
        await hand_out()
    finally:
        taker.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await taker
        writer.close()


class ShapedLink(BackgroundServer):
    """Forward 127.0.0.1:<port> to 127.0.0.1:<upstream_port> through ``link``."""

    def __init__(self, upstream_port: int, link: LinkModel) -> None:
        super().__init__(upstream_port)
        self.link = link
        self.connections = 0

    async def relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        await asyncio.sleep(self.link.round_trip)  # the handshake
        if (upstream := await self.open_upstream(client_w)) is None:
            return
        upstream_r, upstream_w = upstream
        await asyncio.gather(
            _shaped_pipe(client_r, upstream_w, self.link),
            _shaped_pipe(upstream_r, client_w, self.link),
            return_exceptions=True,
        )
