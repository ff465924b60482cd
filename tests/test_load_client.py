"""The load tester's HTTP client: parsing fed bytes, then over real sockets
against raw fake servers (keep-alive, closes, resets, timeouts, errors)."""

from __future__ import annotations

import json
import socket
import struct
import time

import pytest

from load_support import (
    OK,
    FakeServer,
    answer_each,
    attach,
    feed,
    read_request,
    run_in_loop,
    run_loop,
    with_client,
)
from twincorn.load.client import ClientConnection, HttpClient
from twincorn.load.connection import PROTOCOL, REFUSED, RESET, TIMEOUT
from twincorn.load.context import ResponseError
from twincorn.load.response import Response
from twincorn.load.stats import Collector

split = pytest.mark.parametrize("byte_by_byte", [False, True], ids=["whole", "bytewise"])


# -- the connection fed bytes (no socket) ---------------------------------------------


def exchange(response: bytes, byte_by_byte: bool, head_only: bool = False) -> ClientConnection:
    def body() -> ClientConnection:
        import asyncio

        conn = ClientConnection(asyncio.get_running_loop())
        attach(conn)
        conn.exchange(b"GET / HTTP/1.1\r\n\r\n", head_only, 5.0)
        feed(conn, response, byte_by_byte)
        return conn

    return run_in_loop(body)


@split
def test_content_length(byte_by_byte: bool) -> None:
    conn = exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-A: b\r\n\r\nhello world",
                    byte_by_byte)
    assert conn.waiter is not None and conn.waiter.done()
    assert conn.status == 200 and b"".join(conn.chunks) == b"hello world"
    assert (b"X-A", b"b") in conn.headers
    assert conn.keep_alive and conn.open and conn.responses == 1


@split
def test_chunked(byte_by_byte: bool) -> None:
    conn = exchange(
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        byte_by_byte,
    )
    assert conn.status == 201 and b"".join(conn.chunks) == b"hello world"
    assert conn.size == 11 and conn.error is None


@split
def test_interim_responses_are_skipped(byte_by_byte: bool) -> None:
    conn = exchange(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX: 1\r\n\r\n", byte_by_byte
    )
    assert conn.status == 204 and conn.headers == [(b"X", b"1")]


@split
def test_head_response_ends_after_its_head(byte_by_byte: bool) -> None:
    def body() -> tuple[int, int, int]:
        import asyncio

        conn = ClientConnection(asyncio.get_running_loop())
        attach(conn)
        conn.exchange(b"HEAD / HTTP/1.1\r\n\r\n", True, 5.0)
        feed(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", byte_by_byte)
        first = conn.status
        # The next response on the same connection parses as usual.
        conn.exchange(b"GET / HTTP/1.1\r\n\r\n", False, 5.0)
        feed(conn, OK, byte_by_byte)
        return first, conn.status, conn.responses

    assert run_in_loop(body) == (200, 200, 2)


@split
def test_body_until_close(byte_by_byte: bool) -> None:
    def body() -> ClientConnection:
        import asyncio

        conn = ClientConnection(asyncio.get_running_loop())
        attach(conn)
        conn.exchange(b"GET / HTTP/1.1\r\n\r\n", False, 5.0)
        feed(conn, b"HTTP/1.1 200 OK\r\n\r\nall of it", byte_by_byte)
        assert conn.waiter is not None and not conn.waiter.done()
        conn.connection_lost(None)
        return conn

    conn = run_in_loop(body)
    assert conn.error is None and b"".join(conn.chunks) == b"all of it"


@split
def test_truncated_body_is_a_reset(byte_by_byte: bool) -> None:
    def body() -> ClientConnection:
        import asyncio

        conn = ClientConnection(asyncio.get_running_loop())
        attach(conn)
        conn.exchange(b"GET / HTTP/1.1\r\n\r\n", False, 5.0)
        feed(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", byte_by_byte)
        conn.connection_lost(None)
        return conn

    conn = run_in_loop(body)
    assert conn.error is not None and conn.error.kind == RESET


@split
def test_malformed_response_is_a_protocol_error(byte_by_byte: bool) -> None:
    conn = exchange(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", byte_by_byte)
    assert conn.error is not None and conn.error.kind == PROTOCOL
    assert not conn.open


def test_garbage_is_a_protocol_error() -> None:
    conn = exchange(b"SMTP ready\r\n\r\n", False)
    assert conn.error is not None and conn.error.kind == PROTOCOL


# -- the client over sockets ----------------------------------------------------------


async def get_root(client: HttpClient) -> Response:
    return await client.get("/")


async def get_x(client: HttpClient) -> Response:
    return await client.get("/x")


def test_keep_alive_reuses_one_connection() -> None:
    with FakeServer(answer_each(OK)) as server:

        async def body(client: HttpClient) -> list[int]:
            return [(await client.get("/")).status for _ in range(5)]

        statuses, stats = run_loop(with_client(server.url, body))
    assert statuses == [200] * 5
    assert server.accepted == 1
    tally = stats.tallies[("GET", "/")]
    assert tally.requests == 5 and tally.failures == 0 and tally.bytes == 25


def test_server_closing_after_each_response() -> None:
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"

    def handler(sock: socket.socket, number: int) -> None:
        read_request(sock)
        sock.sendall(closing)

    with FakeServer(handler) as server:

        async def body(client: HttpClient) -> list[bytes]:
            return [(await client.get("/")).content for _ in range(3)]

        contents, stats = run_loop(with_client(server.url, body))
    assert contents == [b"ok"] * 3
    assert server.accepted == 3
    assert stats.tallies[("GET", "/")].failures == 0


def test_idle_connection_closed_by_the_server_is_retried() -> None:
    """RFC 9112 section 9.3.1: a reused connection closed before any byte
    of the response; an idempotent request goes again on a new one."""

    def handler(sock: socket.socket, number: int) -> None:
        read_request(sock)
        sock.sendall(OK)  # keep-alive, but the server closes right after

    with FakeServer(handler) as server:

        async def body(client: HttpClient) -> list[int]:
            first = (await client.get("/")).status
            time.sleep(0.05)  # let the close arrive before the next request
            return [first, (await client.get("/")).status]

        statuses, stats = run_loop(with_client(server.url, body))
    assert statuses == [200, 200]
    assert server.accepted == 2
    assert stats.tallies[("GET", "/")].failures == 0


def test_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused

        async def body(client: HttpClient) -> Response:
            return await client.get("/")

        response, stats = run_loop(with_client(f"http://127.0.0.1:{port}", body))
    assert response.status == 0 and response.error is not None
    assert response.error.kind == REFUSED
    tally = stats.tallies[("GET", "/")]
    assert tally.requests == 1 and tally.failures == 1 and tally.hist.count == 0
    assert [e.message for e in stats.errors.values()] == ["connection refused"]


def test_reset() -> None:
    def handler(sock: socket.socket, number: int) -> None:
        read_request(sock)
        # SO_LINGER with a zero timeout: close() sends a RST.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    with FakeServer(handler) as server:
        response, _ = run_loop(with_client(server.url, get_root))
    assert response.error is not None and response.error.kind == RESET


def test_read_timeout() -> None:
    def handler(sock: socket.socket, number: int) -> None:
        read_request(sock)
        time.sleep(1.0)  # never answers in time

    with FakeServer(handler) as server:
        started = time.monotonic()
        response, stats = run_loop(with_client(server.url, get_root, timeout=0.2))
        took = time.monotonic() - started
    assert response.error is not None and response.error.kind == TIMEOUT
    assert 0.15 < took < 0.9
    assert "timeout" in next(iter(stats.errors.values())).message


def test_per_request_timeout() -> None:
    def handler(sock: socket.socket, number: int) -> None:
        read_request(sock)
        time.sleep(0.6)

    with FakeServer(handler) as server:

        async def body(client: HttpClient) -> Response:
            return await client.get("/", timeout=0.1)

        response, _ = run_loop(with_client(server.url, body, timeout=30))
    assert response.error is not None and response.error.kind == TIMEOUT


def test_malformed_over_a_socket() -> None:
    with FakeServer(answer_each(b"HTTP/1.1 abc\r\n\r\n")) as server:
        response, stats = run_loop(with_client(server.url, get_root))
    assert response.error is not None and response.error.kind == PROTOCOL
    assert stats.tallies[("GET", "/")].failures == 1


def test_status_400_and_above_fail_with_their_latency() -> None:
    err = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
    with FakeServer(answer_each(err)) as server:
        response, stats = run_loop(with_client(server.url, get_x))
    assert response.status == 503 and not response.ok
    tally = stats.tallies[("GET", "/x")]
    assert tally.failures == 1 and tally.hist.count == 1
    assert [e.message for e in stats.errors.values()] == ["HTTP 503 Service Unavailable"]


def echo(request: bytes) -> bytes:
    body = json.dumps({"request": request.decode("latin-1")}).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def test_bodies_params_headers_and_names() -> None:
    with FakeServer(answer_each(echo)) as server:

        async def body(client: HttpClient) -> list[str]:
            seen = []
            r = await client.post("/items", json={"a": 1}, name="items")
            seen.append(r.json()["request"])
            r = await client.post("/form", data={"x": "1 2"}, headers={"X-Trace": "t"})
            seen.append(r.json()["request"])
            r = await client.get("/search", params={"q": "a b"})
            seen.append(r.json()["request"])
            r = await client.put("/raw", content=b"\x00\x01")
            seen.append(r.json()["request"])
            return seen

        seen, stats = run_loop(with_client(server.url, body))
    post_json, post_form, get_params, put_raw = seen
    assert post_json.startswith("POST /items HTTP/1.1\r\n")
    assert "Content-Type: application/json" in post_json and post_json.endswith('{"a":1}')
    assert f"Host: 127.0.0.1:{server.port}" in post_json
    assert "application/x-www-form-urlencoded" in post_form and post_form.endswith("x=1+2")
    assert "X-Trace: t" in post_form
    assert get_params.startswith("GET /search?q=a+b HTTP/1.1")
    assert "Content-Length: 2" in put_raw
    assert set(stats.tallies) == {
        ("POST", "items"), ("POST", "/form"), ("GET", "/search"), ("PUT", "/raw")
    }


def test_cookies_are_kept_per_client() -> None:
    def respond(request: bytes) -> bytes:
        if b"/login" in request.split(b"\r\n")[0]:
            return (b"HTTP/1.1 200 OK\r\nSet-Cookie: session=abc; Path=/; HttpOnly\r\n"
                    b"Set-Cookie: theme=dark\r\nContent-Length: 0\r\n\r\n")
        if b"/logout" in request.split(b"\r\n")[0]:
            return (b"HTTP/1.1 200 OK\r\nSet-Cookie: session=; Max-Age=0\r\n"
                    b"Content-Length: 0\r\n\r\n")
        return echo(request)

    with FakeServer(answer_each(respond)) as server:

        async def body(client: HttpClient) -> list[str]:
            await client.post("/login")
            after_login = (await client.get("/me")).json()["request"]
            await client.post("/logout")
            after_logout = (await client.get("/me")).json()["request"]
            return [after_login, after_logout]

        (after_login, after_logout), _ = run_loop(with_client(server.url, body))
    assert "Cookie: session=abc; theme=dark" in after_login
    assert "Cookie: theme=dark\r\n" in after_logout


def test_check_block_decides_the_outcome() -> None:
    with FakeServer(answer_each(OK)) as server:

        async def body(client: HttpClient) -> None:
            async with client.get("/a", check=True) as r:
                if r.status == 200:
                    r.failure("expected 201")
            async with client.get("/b", check=True):
                raise ResponseError("bad body")
            async with client.get("/c", check=True) as r:
                r.success()
            async with client.get("/d") as r:  # recorded on entering
                with pytest.raises(RuntimeError, match="check=True"):
                    r.failure("too late")
            r = await client.get("/e")
            with pytest.raises(RuntimeError):
                r.failure("too late")

        _, stats = run_loop(with_client(server.url, body))
    failures = {name: t.failures for (_, name), t in stats.tallies.items()}
    assert failures == {"/a": 1, "/b": 1, "/c": 0, "/d": 0, "/e": 0}
    messages = {(e.name, e.message) for e in stats.errors.values()}
    assert messages == {("/a", "expected 201"), ("/b", "bad body")}


def test_other_exceptions_in_a_check_block_fail_the_request_and_propagate() -> None:
    with FakeServer(answer_each(OK)) as server:

        async def body(client: HttpClient) -> bool:
            try:
                async with client.get("/", check=True):
                    raise KeyError("missing")
            except KeyError:
                return True
            return False

        propagated, stats = run_loop(with_client(server.url, body))
    assert propagated
    assert [e.message for e in stats.errors.values()] == ["KeyError: 'missing'"]


def test_relative_url_without_a_host_is_refused() -> None:
    async def body() -> None:
        from load_support import new_client

        client, _ = new_client("")
        with pytest.raises(ValueError, match="host"):
            client.get("/")

    run_loop(body())


def test_collector_counts_no_response_separately() -> None:
    collector = Collector()
    tally = collector.tally("GET", "/")
    collector.record(tally, 1000, 10)
    collector.no_response(tally, REFUSED, "connection refused")
    assert tally.requests == 2 and tally.failures == 1 and tally.hist.count == 1
