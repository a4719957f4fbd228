"""A counting HTTP/1.1 proxy on 127.0.0.1, in front of Azurite.

It relays bytes unchanged in both directions and parses only the client's side far
enough to find where each request starts (request line, headers, Content-Length or
chunked body), so it counts the requests of any client, whichever plugin or SDK
sends them. It runs its own event loop in a daemon thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from pluginbench.background_server import BackgroundServer

RELAY_CHUNK = 256 * 1024


def classify(method: str, target: str) -> str:
    """Name the kind of Blob operation a request is, e.g. ``GET list`` or ``HEAD blob``."""
    query = parse_qs(urlsplit(target).query)
    comp = query.get("comp", [""])[0]
    restype = query.get("restype", [""])[0]
    if comp == "list":
        return f"{method} list"
    if restype == "container":
        return f"{method} container" + (f" {comp}" if comp else "")
    if comp:
        return f"{method} blob {comp}"
    return f"{method} blob"


@dataclass
class RequestLog:
    """Thread-safe request counters, by kind."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _kinds: Counter = field(default_factory=Counter)

    def record(self, method: str, target: str) -> None:
        with self._lock:
            self._kinds[classify(method, target)] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._kinds)

    def total(self) -> int:
        with self._lock:
            return sum(self._kinds.values())

    def reset(self) -> None:
        with self._lock:
            self._kinds.clear()


async def _relay_bytes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(RELAY_CHUNK):
            writer.write(chunk)
            await writer.drain()
    finally:
        writer.close()


async def _relay_exactly(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, length: int
) -> None:
    while length > 0:
        chunk = await reader.read(min(length, RELAY_CHUNK))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", length)
        writer.write(chunk)
        await writer.drain()
        length -= len(chunk)


async def _relay_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        size_line = await reader.readuntil(b"\r\n")
        writer.write(size_line)
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            # Trailers (usually none) end with an empty line.
            while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                writer.write(line)
            writer.write(line)
            await writer.drain()
            return
        await _relay_exactly(reader, writer, size + 2)


async def _relay_requests(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: RequestLog
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            writer.write(head)
            lines = head.decode("latin-1").split("\r\n")
            method, target = lines[0].split(" ", 2)[:2]
            log.record(method, target)
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines[1:] if line)
            }
            if "chunked" in headers.get("transfer-encoding", "").lower():
                await _relay_chunked(reader, writer)
            else:
                await _relay_exactly(reader, writer, int(headers.get("content-length", "0")))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


class CountingProxy(BackgroundServer):
    """Forward 127.0.0.1:<port> to 127.0.0.1:<upstream_port>, counting requests."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.log = RequestLog()

    async def relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if (upstream := await self.open_upstream(client_w)) is None:
            return
        upstream_r, upstream_w = upstream
        await asyncio.gather(
            _relay_requests(client_r, upstream_w, self.log),
            _relay_bytes(upstream_r, client_w),
            return_exceptions=True,
        )
