"""The lean loop (a bare URL) against raw fake servers, and the client over
sockets with responses dribbled out a byte at a time."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable

import pytest

from load_support import OK, FakeServer, answer_each, read_request, run_loop, with_client
from twincorn.load import LoadPlan, LoadRun
from twincorn.load.client import HttpClient
from twincorn.load.connection import PROTOCOL, RESET, TIMEOUT
from twincorn.load.results import Results

CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")


def dribble(response: bytes) -> Callable[[socket.socket, int], None]:
    """A handler sending each response one byte at a time."""

    def handler(sock: socket.socket, number: int) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while read_request(sock):
            for i in range(len(response)):
                sock.sendall(response[i : i + 1])
                time.sleep(0.0005)

    return handler


def lean(url: str, **plan: object) -> Results:
    async def main() -> Results:
        return await LoadRun(LoadPlan(url=url, **plan)).run()  # type: ignore[arg-type]

    return run_loop(main())


@pytest.mark.parametrize("response", [OK, CHUNKED], ids=["content-length", "chunked"])
def test_lean_loop_with_responses_a_byte_at_a_time(response: bytes) -> None:
    with FakeServer(dribble(response)) as server:
        results = lean(server.url + "/", users=2, stop_after=10, run_time=20)
    assert results.requests == 10 and results.failures == 0
    assert results.total.bytes == 10 * (5 if response is OK else 11)
    assert server.accepted == 2  # one keep-alive connection per user


def test_client_with_responses_a_byte_at_a_time() -> None:
    with FakeServer(dribble(CHUNKED)) as server:

        async def body(client: HttpClient) -> list[bytes]:
            return [(await client.get("/")).content for _ in range(3)]

        contents, _ = run_loop(with_client(server.url, body))
    assert contents == [b"hello world"] * 3
    assert server.accepted == 1


def test_lean_loop_reconnects_when_the_server_closes() -> None:
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"

    def handler(sock: socket.socket, number: int) -> None:
        read_request(sock)
        sock.sendall(closing)

    with FakeServer(handler) as server:
        results = lean(server.url + "/", users=3, stop_after=30, run_time=20)
    assert results.requests == 30 and results.failures == 0
    assert server.accepted == 30


def test_lean_loop_head_requests() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"  # and no body: a HEAD
    seen: list[bytes] = []
    with FakeServer(answer_each(head, seen)) as server:
        results = lean(server.url + "/", method="HEAD", users=1, stop_after=5, run_time=20)
    assert results.requests == 5 and results.failures == 0
    assert all(r.startswith(b"HEAD / HTTP/1.1\r\n") for r in seen)
    assert server.accepted == 1


def test_lean_loop_sorts_failures_into_kinds() -> None:
    def reset(sock: socket.socket, number: int) -> None:
        read_request(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    with FakeServer(reset) as server:
        results = lean(server.url + "/", users=2, stop_after=6, run_time=20)
    assert results.failures == 6 and {e.kind for e in results.errors} == {RESET}

    with FakeServer(answer_each(b"HTTP/1.1 2x0 OK\r\n\r\n")) as server:
        results = lean(server.url + "/", users=1, stop_after=3, run_time=20)
    assert results.failures == 3 and {e.kind for e in results.errors} == {PROTOCOL}


def test_lean_loop_times_out_silent_servers() -> None:
    def silent(sock: socket.socket, number: int) -> None:
        read_request(sock)
        time.sleep(1.0)

    with FakeServer(silent) as server:
        started = time.monotonic()
        results = lean(server.url + "/", users=2, stop_after=2, timeout=0.3, run_time=20)
        took = time.monotonic() - started
    assert results.failures == 2 and {e.kind for e in results.errors} == {TIMEOUT}
    assert took < 0.95  # the sweep runs twice a second


def test_lean_loop_against_a_refused_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        results = lean(url, users=2, stop_after=20, run_time=20)
    assert results.requests == 20 and results.failures == 20
    assert [e.message for e in results.errors] == ["connection refused"]


def test_stop_timeout_lets_requests_in_flight_finish() -> None:
    def slow(sock: socket.socket, number: int) -> None:
        while read_request(sock):
            time.sleep(0.3)
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    with FakeServer(slow) as server:
        abandoned = lean(server.url + "/", users=3, run_time=0.45)
        waited = lean(server.url + "/", users=3, run_time=0.45, stop_timeout=2)
    assert abandoned.requests == 3 and abandoned.unfinished == 3
    # The 3 in flight at the end finish (no new ones are sent meanwhile).
    assert waited.requests == 6 and waited.unfinished == 0
    assert 0.55 < waited.duration_s < 1.0
