"""Refused requests on the wire: limits, malformed input, connection limit.

Every refusal is a complete response with `connection: close`, after which
the server closes the connection; and the worker goes on serving.
"""

from __future__ import annotations

import random
import socket
import time

import pytest

from support import RunningServer, exchange, parse_responses
from wire_client import (  # noqa: F401 - the *_fixture names are fixtures
    Client,
    ServeFn,
    final,
    get,
    interface_fixture,
    post,
    post_chunked,
    start,
    still_serves,
)


def refused(server: RunningServer, data: bytes, status: int) -> None:
    """`data` is answered `status`, `connection: close`, and the close."""
    with Client(server.port) as client:
        client.send(data)
        responses = final(client.responses(1))
        assert [r.status for r in responses] == [status], client.data[:300]
        assert responses[0].header(b"connection") == b"close"
        assert responses[0].header(b"content-length") == b"%d" % len(responses[0].body)
        assert client.closed()
    still_serves(server)


def fields(count: int, size: int = 10) -> str:
    return "".join(f"X-Field-{i}: {'v' * size}\r\n" for i in range(count))


# -- 414, 431: the head ---------------------------------------------------------------


def test_414_target_too_long(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface, limit_request_line=200)
    refused(server, get("/echo?" + "a" * 300), 414)
    # At the limit it is served.
    with Client(server.port) as client:
        client.send(get("/echo?" + "a" * (200 - len("/echo?"))))
        assert final(client.responses(1))[0].status == 200


def test_414_with_the_default_limit(serve: ServeFn) -> None:
    server = start(serve, "asgi")
    refused(server, get("/" + "p" * 5000), 414)


def test_414_target_sent_in_pieces(serve: ServeFn) -> None:
    server = start(serve, "asgi", limit_request_line=200)
    with Client(server.port) as client:
        client.send(b"GET /")
        for _ in range(5):
            time.sleep(0.01)
            client.send(b"a" * 50)
        assert final(client.responses(1))[0].status == 414
        assert client.closed()


def test_431_too_many_fields(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface, limit_request_fields=5)
    refused(server, f"GET / HTTP/1.1\r\nHost: x\r\n{fields(5)}\r\n".encode(), 431)
    with Client(server.port) as client:  # Host and four more: five in all
        client.send(f"GET /echo HTTP/1.1\r\nHost: x\r\n{fields(4)}\r\n".encode())
        assert final(client.responses(1))[0].status == 200


def test_431_field_too_large(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface, limit_request_field_size=100)
    refused(server, get("/", "X-Big: " + "b" * 200), 431)
    refused(server, get("/", "X-" + "n" * 200 + ": v"), 431)


@pytest.mark.parametrize("how", ["one-write", "trickled"])
def test_431_head_too_large(serve: ServeFn, interface: str, how: str) -> None:
    server = start(serve, interface, limit_request_head=2048)
    data = f"GET /echo HTTP/1.1\r\nHost: x\r\n{fields(50, 60)}\r\n".encode()
    assert len(data) > 3000
    if how == "one-write":
        refused(server, data, 431)
        return
    with Client(server.port) as client:
        for start_at in range(0, len(data), 500):
            client.send(data[start_at : start_at + 500])
            if not client.silent(0.05):
                break  # answered: stop before the server's close resets us
        assert [r.status for r in final(client.responses(1))] == [431]
        assert client.closed()


def test_head_limit_counts_only_the_head(serve: ServeFn, interface: str) -> None:
    # A body and the start of the next head in one read are not all "head".
    server = start(serve, interface, limit_request_head=2048)
    with Client(server.port) as client:
        client.send(post("/echo", b"B" * 20_000) + b"GET /one HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.05)
        client.send(b"\r\n")
        responses = final(client.responses(2))
        assert [r.status for r in responses] == [200, 200]
        assert responses[1].body == b"single"


# -- 413: the body ------------------------------------------------------------------------


def test_413_content_length_over_the_limit(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface, limit_request_body=1000)
    # Refused at the head, before any of the body is sent.
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n"
    refused(server, head, 413)
    with Client(server.port) as client:
        client.send(post("/echo", b"k" * 1000))
        assert final(client.responses(1))[0].body == b"k" * 1000


def test_413_chunked_body_over_the_limit(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface, limit_request_body=1000)
    refused(server, post_chunked("/echo", [b"c" * 600, b"c" * 600]), 413)
    with Client(server.port) as client:
        client.send(post_chunked("/echo", [b"c" * 500, b"c" * 500]))
        assert final(client.responses(1))[0].body == b"c" * 1000


def test_413_chunked_body_over_the_limit_while_the_app_reads(
    serve: ServeFn, interface: str
) -> None:
    server = start(serve, interface, limit_request_body=1000)
    with Client(server.port) as client:
        client.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        client.send(b"258\r\n" + b"c" * 600 + b"\r\n")
        time.sleep(0.1)  # the application is running, waiting for the rest
        client.send(b"258\r\n" + b"c" * 600 + b"\r\n")
        assert [r.status for r in final(client.responses(1))] == [413]
        assert client.closed()
    still_serves(server)


# -- 400, 417, 505 ---------------------------------------------------------------------------

MALFORMED = {
    "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    "bad-method": b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
    "space-in-name": b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
    "no-colon": b"GET / HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n",
    "no-host": b"GET / HTTP/1.1\r\n\r\n",
    "two-hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "bad-host": b"GET / HTTP/1.1\r\nHost: a b/c\r\n\r\n",
    "cl-and-te": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two-lengths": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
    b"Content-Length: 4\r\n\r\nabcd",
    "bad-length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3x\r\n\r\nabc",
    "negative-length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "te-not-chunked": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    "bad-chunk-size": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"zz\r\nab\r\n0\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n",
    "nul-in-value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "bare-cr": b"GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n",
    "http10-chunked": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "forbidden-trailer": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\nContent-Length: 5\r\n\r\n",
    "asterisk-get": b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_400_malformed(serve: ServeFn, name: str) -> None:
    server = start(serve, "asgi")
    refused(server, MALFORMED[name], 400)


def test_400_malformed_wsgi(serve: ServeFn) -> None:
    server = start(serve, "wsgi")
    for name in ("bad-method", "cl-and-te", "bad-chunk-size", "forbidden-trailer"):
        refused(server, MALFORMED[name], 400)


def test_505_unsupported_version(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    refused(server, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505)
    # No version at all reads as HTTP/0.9, which is not served either.
    refused(server, b"GET /\r\nHost: x\r\n\r\n", 505)


def test_417_unknown_expectation(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    refused(server, post("/echo", b"abc", "Expect: something-else"), 417)


def test_expect_ignored_on_http10(serve: ServeFn, interface: str) -> None:
    # RFC 9110 section 10.1.1: a server MUST ignore Expect in HTTP/1.0.
    server = start(serve, interface)
    data = b"POST /echo HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc"
    raw = exchange(server.port, data)
    assert b"100 Continue" not in raw
    assert final(parse_responses(raw))[0].body == b"abc"


def test_random_damage_never_hangs_the_worker(serve: ServeFn, interface: str) -> None:
    """Valid requests with random bytes changed: each gets an answer or a
    close quickly, and the worker keeps serving."""
    server = start(serve, interface, limit_request_body=10_000)
    rng = random.Random(20240601)
    seeds = [
        post("/echo", b"hello"),
        post_chunked("/echo", [b"abc", b"defg"]),
        get("/stream", "Connection: keep-alive", "X-A: b"),
    ]
    for _ in range(30):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        raw = exchange(server.port, bytes(data), timeout=3)
        if raw:
            assert raw.startswith(b"HTTP/1.1 "), raw[:100]
    still_serves(server)


# -- the connection limit ---------------------------------------------------------------------


def test_full_worker_sheds_an_idle_connection_for_a_newcomer(
    serve: ServeFn, interface: str
) -> None:
    server = start(serve, interface, worker_connections=2)
    first, second = Client(server.port), Client(server.port)
    try:
        for client in (first, second):
            client.send(get("/one"))
            assert final(client.responses(1))[0].status == 200
        # Full: a newcomer is let in, an idle keep-alive connection makes room.
        with Client(server.port) as third:
            third.send(get("/one"))
            assert final(third.responses(1))[0].status == 200
        shed = [c for c in (first, second) if c.closed(1.0)]
        assert len(shed) == 1
        assert shed[0].data.count(b"HTTP/1.1") == 1  # closed without a word
        kept = second if shed[0] is first else first
        kept.send(get("/one"))
        assert len(final(kept.responses(2))) == 2
    finally:
        first.close()
        second.close()


def test_full_worker_sheds_a_slow_head_before_an_idle_client(
    serve: ServeFn, interface: str
) -> None:
    server = start(serve, interface, worker_connections=2)
    with Client(server.port) as idle, Client(server.port) as slow:
        idle.send(get("/one"))
        assert final(idle.responses(1))[0].status == 200
        slow.send(b"GET /one HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        time.sleep(0.3)  # no longer a brand-new connection
        with Client(server.port) as newcomer:
            newcomer.send(get("/one"))
            assert final(newcomer.responses(1))[0].status == 200
        responses = final(slow.responses(1))
        assert [r.status for r in responses] == [503]
        assert responses[0].header(b"connection") == b"close"
        assert slow.closed()
        idle.send(get("/one"))
        assert len(final(idle.responses(2))) == 2


def test_full_worker_with_every_connection_busy_answers_503(serve: ServeFn) -> None:
    # ASGI: the loop is free while /slow runs, so the newcomer is accepted
    # while the only place is taken by a request in flight.
    server = start(serve, "asgi", worker_connections=1)
    with Client(server.port) as busy:
        busy.send(get("/slow"))
        busy.wait_for(lambda data: b"\r\n\r\n" in data)
        with Client(server.port) as newcomer:
            responses = final(newcomer.responses(1))
            assert [r.status for r in responses] == [503]
            assert responses[0].header(b"connection") == b"close"
            assert newcomer.closed()
        busy.wait_for(lambda data: data.endswith(b"0\r\n\r\n"))


def test_connection_limit_counts_closed_connections_out(serve: ServeFn) -> None:
    server = start(serve, "asgi", worker_connections=1)
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(get("/one", "Connection: close"))
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 200 ")
