"""The shaped link of the transfer benchmark: bytes intact, and never faster than the model.

Only lower bounds on time are asserted: a slow machine can make the relay slower than the
model, never faster.
"""

from __future__ import annotations

import os
import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from pluginbench.linkshape import LinkModel, ShapedLink

MIB = 1024**2


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def echo_through(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        sender = threading.Thread(target=conn.sendall, args=(payload,))
        sender.start()
        received = bytearray()
        while len(received) < len(payload):
            chunk = conn.recv(1 << 20)
            if not chunk:
                break
            received += chunk
        sender.join()
    return bytes(received)


def test_bytes_cross_the_link_unchanged(echo_port: int) -> None:
    payload = os.urandom(3 * MIB + 17)
    with ShapedLink(echo_port, LinkModel(bytes_per_second=200e6, round_trip=0.002)) as link:
        assert echo_through(link.port, payload) == payload
        assert link.connections == 1


def test_one_connection_is_no_faster_than_its_bandwidth(echo_port: int) -> None:
    payload = os.urandom(2 * MIB)
    link_model = LinkModel(bytes_per_second=8e6, round_trip=0.0)
    with ShapedLink(echo_port, link_model) as link:
        started = time.perf_counter()
        echoed = echo_through(link.port, payload)
        seconds = time.perf_counter() - started
    assert echoed == payload
    # Each direction is paced separately and they overlap; the bound is one direction.
    assert seconds >= len(payload) / link_model.bytes_per_second * 0.95


def test_a_fresh_connection_costs_two_round_trips_before_its_answer(echo_port: int) -> None:
    link_model = LinkModel(bytes_per_second=100e6, round_trip=0.15)
    with ShapedLink(echo_port, link_model) as link:
        started = time.perf_counter()
        assert echo_through(link.port, b"ping") == b"ping"
        seconds = time.perf_counter() - started
    assert seconds >= 2 * link_model.round_trip * 0.95


def test_parallel_connections_are_each_paced_on_their_own(echo_port: int) -> None:
    payload = os.urandom(MIB)
    link_model = LinkModel(bytes_per_second=4e6, round_trip=0.0)
    results: list[bytes] = []
    with ShapedLink(echo_port, link_model) as link:
        threads = [
            threading.Thread(target=lambda: results.append(echo_through(link.port, payload)))
            for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert link.connections == 3
    assert results == [payload] * 3


@pytest.mark.parametrize(
    ("rate", "round_trip", "named"),
    [(0, 0.01, "bandwidth"), (-5, 0.01, "bandwidth"), (1e6, -0.1, "round trip")],
)
def test_a_link_model_that_cannot_exist_is_refused(rate, round_trip, named) -> None:
    with pytest.raises(ValueError, match=named):
        LinkModel(bytes_per_second=rate, round_trip=round_trip)


def test_the_window_holds_one_bandwidth_delay_product() -> None:
    assert LinkModel(bytes_per_second=12.5e6, round_trip=0.02).window_chunks == 4
    assert LinkModel(bytes_per_second=100e6, round_trip=0.1).window_chunks == 153
