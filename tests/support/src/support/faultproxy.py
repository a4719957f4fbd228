"""An HTTP/1.1-aware TCP proxy on 127.0.0.1 that injects network faults.

It sits between a client (the storage plugin) and a server (Azurite) and is
driven by the test: added latency, connection resets in the middle of a request
or response body, stalls, and bursts of ``503 Server Busy``. It parses request
heads (and skips request bodies by Content-Length) so that faults hit whole
requests even on kept-alive connections; responses are relayed as raw bytes,
which is enough because HTTP/1.1 clients wait for one response before sending
the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal["status", "reset_request", "reset_response", "stall"]


@dataclass
class Fault:
    """Applies to the next ``count`` requests whose method and path match."""

    kind: FaultKind
    count: int
    method: str | None = None
    path_pattern: str = ".*"
    status: int = 503
    retry_after: int | None = 1
    after_bytes: int = 0
    seconds: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        if self.count <= 0:
            return False
        if self.method is not None and self.method != method:
            return False
        return re.search(self.path_pattern, path) is not None


@dataclass
class ProxyStats:
    requests: int = 0
    faults_injected: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class FaultProxy:
    """Forwards 127.0.0.1:<port> to 127.0.0.1:<upstream_port>; start() runs it in a thread."""

    def __init__(self, upstream_port: int, *, latency: float = 0.0) -> None:
        self.upstream_port = upstream_port
        self.latency = latency
        self.port = 0
        self.stats = ProxyStats()
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # -- control, from the test's thread -------------------------------------------------
    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending_faults(self) -> int:
        with self._lock:
            return sum(f.count for f in self._faults)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            self.stats.requests += 1
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.count -= 1
                    self.stats.faults_injected += 1
                    self.stats.by_kind[fault.kind] = self.stats.by_kind.get(fault.kind, 0) + 1
                    return fault
        return None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._server is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _shutdown(self) -> None:
        assert self._server is not None and self._loop is not None
        self._server.close()
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop.stop()

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    # -- relaying -------------------------------------------------------------------------
    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            _reset(client_w)
            return
        cut = _ResponseCut()
        pump = asyncio.ensure_future(self._pump_responses(up_r, client_w, cut))
        try:
            await self._relay_requests(client_r, client_w, up_w, cut)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            pump.cancel()
            up_w.close()
            if not client_w.is_closing():
                client_w.close()

    async def _relay_requests(
        self,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        up_w: asyncio.StreamWriter,
        cut: _ResponseCut,
    ) -> None:
        while True:
            head = await client_r.readuntil(b"\r\n\r\n")
            method, path, length = _parse_head(head)
            fault = self._take_fault(method, path)
            if self.latency:
                await asyncio.sleep(self.latency)
            if fault is not None and fault.kind == "reset_request":
                # The request body is half sent when the connection dies.
                _reset(client_w)
                return
            if fault is not None and fault.kind == "status":
                await _discard(client_r, length)
                client_w.write(_status_response(fault))
                await client_w.drain()
                continue
            if fault is not None and fault.kind == "stall":
                await asyncio.sleep(fault.seconds)
            if fault is not None and fault.kind == "reset_response":
                cut.arm(fault.after_bytes)
            up_w.write(head)
            await _copy_exactly(client_r, up_w, length)
            await up_w.drain()

    async def _pump_responses(
        self, up_r: asyncio.StreamReader, client_w: asyncio.StreamWriter, cut: _ResponseCut
    ) -> None:
        try:
            while chunk := await up_r.read(65536):
                allowed = cut.allow(len(chunk))
                client_w.write(chunk[:allowed])
                await client_w.drain()
                if allowed < len(chunk):
                    _reset(client_w)
                    return
            client_w.close()
        except (ConnectionError, asyncio.CancelledError):
            pass


class _ResponseCut:
    """How many more response bytes may pass before the connection is reset."""

    def __init__(self) -> None:
        self.remaining: int | None = None

    def arm(self, after_bytes: int) -> None:
        self.remaining = after_bytes

    def allow(self, size: int) -> int:
        if self.remaining is None:
            return size
        allowed = min(size, self.remaining)
        self.remaining -= allowed
        return allowed


def _parse_head(head: bytes) -> tuple[str, str, int]:
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return method, path, length


async def _discard(reader: asyncio.StreamReader, length: int) -> None:
    while length > 0:
        chunk = await reader.read(min(length, 65536))
        if not chunk:
            raise ConnectionError("client closed mid-body")
        length -= len(chunk)


async def _copy_exactly(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, length: int
) -> None:
    while length > 0:
        chunk = await reader.read(min(length, 65536))
        if not chunk:
            raise ConnectionError("client closed mid-body")
        writer.write(chunk)
        await writer.drain()
        length -= len(chunk)


def _status_response(fault: Fault) -> bytes:
    reasons = {429: "Too Many Requests", 500: "Internal Server Error", 503: "Server Busy"}
    body = (
        b'<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code>'
        b"<Message>injected by the test proxy</Message></Error>"
    )
    headers = [
        f"HTTP/1.1 {fault.status} {reasons.get(fault.status, 'Error')}",
        "Content-Type: application/xml",
        f"Content-Length: {len(body)}",
        "x-ms-error-code: ServerBusy",
    ]
    if fault.retry_after is not None:
        headers.append(f"Retry-After: {fault.retry_after}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN, as a crashed peer or middlebox would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
