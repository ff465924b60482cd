"""Timeouts on the wire: idle keep-alive, slow heads, stalled bodies.

Deadlines are checked by the worker's once-a-second sweep against a clock
it updates once a second, so a 1-second timeout fires after 1 to 3 seconds.
The timeouts are set to 1 second and each test waits at most a few.
"""

from __future__ import annotations

import time

from wire_client import (  # noqa: F401 - the *_fixture names are fixtures
    Client,
    ServeFn,
    final,
    get,
    interface_fixture,
    start,
    still_serves,
)

WAIT = 4.0  # the longest a 1-second deadline may take to fire, with room


def test_idle_keep_alive_connection_is_closed(serve: ServeFn) -> None:
    server = start(serve, "asgi", timeout_keep_alive=1)
    with Client(server.port) as idle, Client(server.port) as never_spoke:
        idle.send(get("/one"))
        assert final(idle.responses(1))[0].status == 200
        begun = time.monotonic()
        assert idle.closed(WAIT)
        assert never_spoke.closed(WAIT)
        assert time.monotonic() - begun > 0.9  # never before the timeout
        assert idle.data.count(b"HTTP/1.1") == 1  # closed without a word
        assert never_spoke.data == b""


def test_busy_keep_alive_connection_stays_open(serve: ServeFn) -> None:
    server = start(serve, "asgi", timeout_keep_alive=1)
    with Client(server.port) as client:
        for i in range(6):  # 2.4 s in all, each gap below the timeout
            client.send(get("/one"))
            assert len(final(client.responses(i + 1))) == i + 1
            time.sleep(0.4)


def test_slow_loris_head_gets_408(serve: ServeFn) -> None:
    # The head deadline runs from its first byte: trickling does not extend it.
    server = start(serve, "asgi", timeout_request_head=1, timeout_keep_alive=30)
    with Client(server.port) as client:
        begun = time.monotonic()
        client.send(b"GET /one HTTP/1.1\r\nHost: x\r\n")
        while time.monotonic() - begun < WAIT and client.silent(0.25):
            client.send(b"X-A: b\r\n")
        responses = final(client.responses(1))
        assert [r.status for r in responses] == [408]
        assert responses[0].header(b"connection") == b"close"
        assert client.closed()
        assert time.monotonic() - begun < WAIT + 0.5
    still_serves(server)


def test_stalled_body_gets_408(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface, timeout_request_body=1)
    with Client(server.port) as client:
        client.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npart")
        responses = final(client.responses(1, timeout=WAIT))
        assert [r.status for r in responses] == [408]
        assert responses[0].header(b"connection") == b"close"
        assert client.closed()
    still_serves(server)


def test_body_that_keeps_coming_is_not_timed_out(serve: ServeFn) -> None:
    # Without a minimum rate, the body deadline is about silence alone:
    # each piece pushes it back.
    server = start(serve, "asgi", timeout_request_body=1, min_request_body_rate=0)
    with Client(server.port) as client:
        client.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n")
        for piece in (b"ab", b"cd", b"ef"):
            time.sleep(0.7)
            client.send(piece)
        responses = final(client.responses(1))
        assert [(r.status, r.body) for r in responses] == [(200, b"abcdef")]


def test_stalled_unread_body_closes_without_another_response(serve: ServeFn) -> None:
    # The app answered without reading; the rest of the body never comes.
    server = start(serve, "asgi", timeout_request_body=1)
    with Client(server.port) as client:
        client.send(b"POST /noread HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npart")
        assert final(client.responses(1))[0].body == b"not read"
        assert client.closed(WAIT)
        # No 408 after the response: it would answer no request.
        assert client.data.count(b"HTTP/1.1 ") == 1
