"""HTTP/1.1 on the wire: keep-alive, pipelining, half-close, bodies in and out.

Raw bytes over loopback sockets, against a WSGI and an ASGI application
(tests/wire_apps.py) wherever the behaviour is shared.
"""

from __future__ import annotations

import logging
import socket
import time

import pytest

from support import ErrorLog, exchange, parse_responses
from wire_apps import OWN_DATE, OWN_SERVER, STREAM_PIECES
from wire_client import (  # noqa: F401 - the *_fixture names are fixtures
    Client,
    ServeFn,
    chunked,
    error_log_fixture,
    final,
    get,
    interface_fixture,
    post,
    post_chunked,
    split_head,
    start,
    still_serves,
)

# -- keep-alive ---------------------------------------------------------------


def test_http11_keeps_alive_by_default(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    with Client(server.port) as client:
        for i in range(3):
            client.send(post("/echo", b"request %d" % i))
            responses = final(client.responses(i + 1))
            assert len(responses) == i + 1
            last = responses[-1]
            assert last.status == 200
            assert last.body == b"request %d" % i
            assert last.header(b"connection") is None
        assert client.silent(0.2)  # still open, nothing unasked for


def test_body_in_a_later_write_then_more_requests(serve: ServeFn, interface: str) -> None:
    # The body completes after the request started (WSGI: the app runs from
    # inside the body's last callback); the next bodies must still reach it.
    server = start(serve, interface)
    with Client(server.port) as client:
        for i in range(3):
            client.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n")
            time.sleep(0.05)
            client.send(b"body %d" % i)
            assert final(client.responses(i + 1))[-1].body == b"body %d" % i


def test_connection_close_closes_after_the_response(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    with Client(server.port) as client:
        client.send(get("/echo", "Connection: close"))
        (response,) = final(client.responses(1))
        assert response.status == 200
        assert response.header(b"connection") == b"close"
        assert client.closed()


def test_http10_closes_by_default(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    with Client(server.port) as client:
        client.send(b"GET /echo HTTP/1.0\r\n\r\n")
        (response,) = final(client.responses(1))
        assert response.status == 200
        assert response.header(b"x-version") == b"HTTP/1.0"
        assert response.header(b"connection") == b"close"
        assert client.closed()
        # The status line is HTTP/1.1 whatever the request's version (RFC 9110 s6.2).
        assert client.data.startswith(b"HTTP/1.1 200 ")


def test_http10_keep_alive_on_request(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    with Client(server.port) as client:
        for i in range(2):
            client.send(get("/echo", "Connection: keep-alive", version="1.0"))
            responses = final(client.responses(i + 1))
            assert responses[-1].status == 200
            assert responses[-1].header(b"connection") == b"keep-alive"
        assert client.silent(0.2)
        # Without the header again, the connection ends after this response.
        client.send(get("/echo", version="1.0"))
        assert final(client.responses(3))[-1].header(b"connection") == b"close"
        assert client.closed()


# -- pipelining ---------------------------------------------------------------


def test_pipelined_requests_answered_in_order(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    batch = b"".join(
        [
            get("/echo?first"),
            post("/echo", b"second body"),
            post_chunked("/echo", [b"third ", b"body"]),
            get("/stream"),
            post("/echo", b""),
            get("/one"),
            post("/noread", b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"),
            post("/echo", b"last"),
        ]
    )
    with Client(server.port) as client:
        client.send(batch)
        responses = final(client.responses(8))
        assert [r.status for r in responses] == [200] * 8
        assert [r.body for r in responses] == [
            b"",
            b"second body",
            b"third body",
            b"".join(STREAM_PIECES),
            b"",
            b"single",
            b"not read",
            b"last",
        ]
        assert client.silent(0.2)


def test_pipelined_bad_request_after_good_ones(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    batch = post("/echo", b"one") + get("/stream") + b"BAD REQUEST\x01 LINE\r\n\r\n" + get("/echo")
    raw = exchange(server.port, batch, shutdown=False)
    responses = final(parse_responses(raw))
    assert [r.status for r in responses] == [200, 200, 400]
    assert responses[0].body == b"one"
    assert responses[1].body == b"".join(STREAM_PIECES)
    assert responses[2].header(b"connection") == b"close"
    still_serves(server)


# -- half-close ---------------------------------------------------------------


def test_half_close_every_response_arrives(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    batch = get("/stream") + post("/echo", b"x" * 100_000) + post_chunked("/echo", [b"a", b"b"])
    raw = exchange(server.port, batch)  # sends, shuts down writing, reads to the close
    responses = final(parse_responses(raw))
    assert [r.status for r in responses] == [200, 200, 200]
    assert all(r.complete for r in responses)
    assert responses[1].body == b"x" * 100_000
    assert responses[2].body == b"ab"


def test_half_close_idle_connection_closes(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    with Client(server.port) as client:
        client.send(get("/one"))
        client.responses(1)
        client.shutdown_write()
        assert client.closed()


@pytest.mark.parametrize(
    "cut",
    [
        b"GET /echo HTTP/1.1\r\nHost: localhost\r\n",
        b"GET /ec",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nabc",
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
    ],
    ids=["head", "request-line", "body", "chunked-body"],
)
def test_request_cut_short_by_half_close_is_400(serve: ServeFn, interface: str, cut: bytes) -> None:
    server = start(serve, interface)
    raw = exchange(server.port, cut)
    (response,) = final(parse_responses(raw))
    assert response.status == 400
    assert response.header(b"connection") == b"close"
    still_serves(server)


# -- request bodies the application does not read -------------------------------


def test_unread_body_is_drained_not_parsed(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    smuggled = b"GET /status/599 HTTP/1.1\r\nHost: x\r\n\r\n"
    with Client(server.port) as client:
        client.send(post("/noread", smuggled) + post("/echo", b"after"))
        responses = final(client.responses(2))
        assert [r.status for r in responses] == [200, 200]
        assert [r.body for r in responses] == [b"not read", b"after"]
        assert client.silent(0.2)


def test_unread_body_arriving_after_the_response_is_drained(serve: ServeFn) -> None:
    # ASGI only: a WSGI application is called once the whole body is in.
    server = start(serve, "asgi")
    body = b"GET /status/599 HTTP/1.1\r\nHost: x\r\n\r\n" * 10
    with Client(server.port) as client:
        head = b"POST /noread HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
        client.send(head)
        assert client.responses(1)[0].body == b"not read"
        client.send(body[:100])
        time.sleep(0.05)
        client.send(body[100:] + post("/echo", b"next"))
        responses = final(client.responses(2))
        assert [r.status for r in responses] == [200, 200]
        assert responses[1].body == b"next"
        # Chunked too: the framing is followed while the body is thrown away.
        client.send(b"POST /noread HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        assert final(client.responses(3))[2].body == b"not read"
        client.send(chunked([body, body]) + get("/one"))
        responses = final(client.responses(4))
        assert [r.body for r in responses[2:]] == [b"not read", b"single"]


def test_large_unread_body_within_drain_limit(serve: ServeFn) -> None:
    # Above the ASGI adapter's buffer, reading pauses until the app reads;
    # an app that never reads must not leave the connection stuck.
    server = start(serve, "asgi", drain_limit=4 << 20)
    body = b"z" * 2_000_000
    with Client(server.port) as client:
        for i, path in enumerate(["/noread", "/noread?wait"]):
            client.send(post(path, body) + get("/one"))
            responses = final(client.responses(2 * i + 2))
            assert [r.body for r in responses[-2:]] == [b"not read", b"single"]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_unread_body_over_drain_limit_closes(serve: ServeFn, framing: str) -> None:
    server = start(serve, "asgi", drain_limit=1000)
    with Client(server.port) as client:
        if framing == "chunked":
            client.send(b"POST /noread HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            assert final(client.responses(1))[0].body == b"not read"
            client.send(b"1000\r\n" + b"y" * 0x1000 + b"\r\n")
        else:
            client.send(b"POST /noread HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
            assert final(client.responses(1))[0].body == b"not read"
        assert client.closed()
    still_serves(server)


# -- chunked request and response bodies -----------------------------------------


def test_chunked_request_body_with_trailers(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
    body = b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Sum: 42\r\nX-Other: y\r\n\r\n"
    with Client(server.port) as client:
        client.send(head + body + get("/one"))
        responses = final(client.responses(2))
        assert responses[0].status == 200
        assert responses[0].body == b"hello world"
        assert responses[1].body == b"single"


def test_chunked_request_body_sent_slowly(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    with Client(server.port) as client:
        client.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in (b"4\r\nab", b"cd\r\n", b"3\r", b"\nefg\r\n0\r\n", b"\r\n"):
            client.send(part)
            time.sleep(0.02)
        (response,) = final(client.responses(1))
        assert response.body == b"abcdefg"


def test_streamed_response_is_chunked(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    with Client(server.port) as client:
        client.send(get("/stream"))
        (response,) = final(client.responses(1))
        assert response.header(b"transfer-encoding") == b"chunked"
        assert response.header(b"content-length") is None
        assert response.body == b"".join(STREAM_PIECES)
        for piece in STREAM_PIECES:
            assert b"%x\r\n%s\r\n" % (len(piece), piece) in client.data
        assert client.data.endswith(b"\r\n0\r\n\r\n")


def test_one_piece_response_gets_content_length(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    with Client(server.port) as client:
        client.send(get("/one"))
        (response,) = final(client.responses(1))
        assert response.header(b"content-length") == b"6"
        assert response.header(b"transfer-encoding") is None
        assert response.body == b"single"


def test_http10_unknown_length_is_close_delimited(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    with Client(server.port) as client:
        client.send(get("/stream", "Connection: keep-alive", version="1.0"))
        assert client.closed()
    _, headers, body = split_head(client.data)
    assert b"transfer-encoding" not in headers
    assert b"content-length" not in headers
    assert headers[b"connection"] == [b"close"]
    assert body == b"".join(STREAM_PIECES)


# -- Expect: 100-continue ------------------------------------------------------------


def test_expect_100_sent_when_the_body_is_wanted(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    with Client(server.port) as client:
        client.send(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        client.wait_for(lambda data: b"\r\n\r\n" in data)
        assert client.data == b"HTTP/1.1 100 Continue\r\n\r\n"
        client.send(b"hello")
        responses = client.responses(1)
        assert [r.status for r in responses] == [100, 200]
        assert responses[1].body == b"hello"
        # Keep-alive holds, and a second Expect gets its own 100.
        client.send(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
        )
        client.wait_for(lambda data: data.count(b"100 Continue") == 2)
        client.send(b"abc")
        responses = client.responses(2)
        assert [r.status for r in responses] == [100, 200, 100, 200]
        assert responses[3].body == b"abc"


def test_expect_without_body_reading_no_100_and_close(serve: ServeFn) -> None:
    # ASGI: the 100 goes out on the app's first receive(); this app never calls it.
    server = start(serve, "asgi")
    with Client(server.port) as client:
        client.send(
            b"POST /noread HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        responses = client.responses(1)
        assert [r.status for r in responses] == [200]
        assert responses[0].body == b"not read"
        # The client may never send the body: the framing is lost, so close.
        assert responses[0].header(b"connection") == b"close"
        assert client.closed()
    assert b"100 Continue" not in client.data


def test_expect_no_100_after_the_response_started(serve: ServeFn) -> None:
    server = start(serve, "asgi")
    with Client(server.port) as client:
        client.send(
            b"POST /late HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        # The app started its response, then asks for the body: no 100 now.
        assert client.silent(0.3)
        client.send(b"body")
        (response,) = client.responses(1)
        assert response.status == 200
        assert response.body == b"late:body"
    assert b"100 Continue" not in client.data


def test_expect_body_sent_without_waiting(serve: ServeFn, interface: str) -> None:
    # A client may send the body before the 100 comes; all is well still.
    server = start(serve, interface)
    with Client(server.port) as client:
        client.send(post("/echo", b"eager", "Expect: 100-continue") + get("/one"))
        responses = final(client.responses(2))
        assert [r.body for r in responses] == [b"eager", b"single"]
        interim = [r for r in parse_responses(client.data) if r.status < 200]
        assert len(interim) <= 1
        assert client.data.find(b"100 Continue") < client.data.find(b"200 OK")


# -- HEAD, 204 and 304 ---------------------------------------------------------------


@pytest.mark.parametrize("path", ["/one", "/echo", "/status/200", "/stream"])
def test_head_has_the_headers_of_get_and_no_body(serve: ServeFn, interface: str, path: str) -> None:
    server = start(serve, interface)
    got = exchange(server.port, get(path, "Connection: close"))
    headed = exchange(server.port, get(path, "Connection: close").replace(b"GET", b"HEAD", 1))
    get_status, get_headers, _ = split_head(got)
    head_status, head_headers, head_body = split_head(headed)
    assert head_body == b""
    assert head_status == get_status
    for name in (b"date", b"x-method"):
        get_headers.pop(name, None)
        head_headers.pop(name, None)
    framing = (b"content-length", b"transfer-encoding")
    get_framing = {k: get_headers.pop(k) for k in framing if k in get_headers}
    head_framing = {k: head_headers.pop(k) for k in framing if k in head_headers}
    assert head_headers == get_headers
    if path == "/one":
        # The application gave HEAD the body GET gets: its length is GET's.
        assert head_framing == get_framing == {b"content-length": [b"6"]}
    else:
        # An empty (or streamed) HEAD body says nothing of GET's length:
        # RFC 9110 section 9.3.2 lets it be left out, never a wrong 0.
        assert head_framing == {}
        assert get_framing != {}


def test_head_keeps_alive(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    with Client(server.port) as client:
        client.send(b"HEAD /one HTTP/1.1\r\nHost: x\r\n\r\n")
        client.wait_for(lambda data: data.endswith(b"\r\n\r\n"))
        head_length = len(client.data)
        client.send(get("/one"))
        client.wait_for(lambda data: data.endswith(b"single"))
        assert client.data[head_length:].startswith(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.parametrize("status", [204, 304])
def test_204_and_304_have_no_body_and_no_length(
    serve: ServeFn, interface: str, status: int
) -> None:
    server = start(serve, interface)
    with Client(server.port) as client:
        client.send(get(f"/status/{status}") + get("/one"))
        client.wait_for(lambda data: data.endswith(b"single"))
    first, headers, rest = split_head(client.data)
    assert first.startswith(b"HTTP/1.1 %d " % status)
    assert b"content-length" not in headers
    assert b"transfer-encoding" not in headers
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")  # no body bytes in between


# -- response splitting ---------------------------------------------------------------


@pytest.mark.parametrize("where", ["name", "value"])
@pytest.mark.parametrize("char", ["cr", "lf", "nul", "crlf"])
def test_header_with_control_characters_is_refused(
    serve: ServeFn, interface: str, error_log: ErrorLog, where: str, char: str
) -> None:
    server = start(serve, interface)
    raw = exchange(server.port, get(f"/inject?where={where}&char={char}"))
    (response,) = final(parse_responses(raw))
    assert response.status == 500
    assert response.header(b"connection") == b"close"
    assert b"injected" not in raw.lower()
    assert b"X-Bad" not in raw
    assert b"should never be sent" not in raw
    assert any("refused" in m or "exception" in m for m in error_log.messages())
    still_serves(server)


# -- Date and Server ------------------------------------------------------------------


def test_date_and_server_headers(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    raw = exchange(server.port, get("/one"))
    _, headers, _ = split_head(raw)
    assert headers[b"server"] == [b"twincorn"]
    (date,) = headers[b"date"]
    parsed = time.mktime(time.strptime(date.decode(), "%a, %d %b %Y %H:%M:%S GMT"))
    assert abs(parsed - time.mktime(time.gmtime())) < 5


def test_server_header_can_be_turned_off(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface, server_header=False)
    for request in (get("/one"), b"GET / HTTP/2.0\r\n\r\n"):  # also on an error response
        _, headers, _ = split_head(exchange(server.port, request))
        assert b"server" not in headers
        assert b"date" in headers


def test_the_apps_own_server_and_date_win(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    _, headers, body = split_head(exchange(server.port, get("/own")))
    assert headers[b"server"] == [OWN_SERVER.encode()]
    assert headers[b"date"] == [OWN_DATE.encode()]
    assert body == b"own"


# -- disconnects -------------------------------------------------------------------------


def test_client_gone_mid_request(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    for partial in (
        b"GET /echo HTTP/1.1\r\nHost: x\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nsome",
        b"POST /late HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nsome",
    ):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(partial)
        time.sleep(0.05)
        sock.close()
    still_serves(server)


def _reset(sock: socket.socket) -> None:
    """Close with a RST rather than a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


@pytest.mark.parametrize("how", ["close", "reset"])
def test_client_gone_mid_response(
    serve: ServeFn, interface: str, error_log: ErrorLog, how: str
) -> None:
    # WSGI with a thread pool, so that other connections are served meanwhile.
    server = start(serve, interface, threads=4)
    with Client(server.port) as slow:
        slow.send(get("/slow"))
        slow.wait_for(lambda data: len(data) > 3000)
        still_serves(server)  # served while the slow response is under way
        if how == "reset":
            _reset(slow.sock)
        else:
            slow.close()
    still_serves(server)
    deadline = time.monotonic() + 3
    while server.worker.state.connections and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not server.worker.state.connections
    # A client that leaves is not the application's error.
    assert error_log.messages(logging.ERROR) == []


# -- IPv6 ---------------------------------------------------------------------------------


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_loopback(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface, bind=["[::1]:0"])
    assert server.url.startswith("http://[::1]:")
    with Client(server.port, host="::1") as client:
        client.send(post("/echo", b"over v6", "Connection: close"))
        (response,) = final(client.responses(1))
        assert response.body == b"over v6"
