"""The ASGI adapter against a real server: the http scope, receive, send.

Each test serves a small ASGI application on a loopback port and talks to it
with raw sockets (or httpx), checking what the application was given and
what reached the client. Lifespan is in test_asgi_lifespan.py; errors,
contexts and concurrency in test_asgi_running.py.
"""

from __future__ import annotations

import asyncio
import queue
import socket
import struct
import threading
import time

import httpx

from asgi_types import App, Message, Receive, Scope, Send, ServeFn
from support import Response, connect, exchange, parse_responses, read_until_close


async def respond(send: Send, body: bytes = b"ok", status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        assert message["type"] == "http.request"
        body += bytes(message["body"])
        if not message["more_body"]:
            return body


def scope_recorder(scopes: list[Scope]) -> App:
    """An app that keeps each http scope and answers 200 "ok"."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        scopes.append(scope)
        await read_body(receive)
        await respond(send)

    return app


def reset(sock: socket.socket) -> None:
    """Close with a RST (SO_LINGER 0): the client is certainly gone."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def one_response(data: bytes) -> Response:
    responses = parse_responses(data)
    assert len(responses) == 1, data[:300]
    return responses[0]


# -- the http scope ------------------------------------------------------------


def test_http_scope_is_complete_and_typed(serve: ServeFn) -> None:
    scopes: list[Scope] = []
    server = serve(scope_recorder(scopes))
    head = (
        b"GET /a%20b/caf%C3%A9/%2Fx?q=%20&r=1&r=2 HTTP/1.1\r\n"
        b"Host: localhost\r\n"
        b"X-Dup: one\r\n"
        b"ACCEPT: */*\r\n"
        b"x-dup: two\r\n"
        b"X-Empty:\r\n"
        b"\r\n"
    )
    with connect(server.port) as sock:
        client_port = sock.getsockname()[1]
        sock.sendall(head)
        sock.shutdown(socket.SHUT_WR)
        response = one_response(read_until_close(sock))
    assert response.status == 200 and response.body == b"ok"
    (scope,) = scopes
    assert set(scope) == {
        "type", "asgi", "http_version", "method", "scheme", "path", "raw_path",
        "query_string", "root_path", "headers", "client", "server", "state",
    }
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["asgi"]["spec_version"].startswith("2.")
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    # Percent escapes decoded as UTF-8 (an escaped "/" too); raw_path untouched.
    assert scope["path"] == "/a b/café//x"
    assert scope["raw_path"] == b"/a%20b/caf%C3%A9/%2Fx"
    assert scope["query_string"] == b"q=%20&r=1&r=2"
    assert scope["root_path"] == ""
    # Names lower-cased, values as sent, order and duplicates kept.
    assert list(scope["headers"]) == [
        (b"host", b"localhost"),
        (b"x-dup", b"one"),
        (b"accept", b"*/*"),
        (b"x-dup", b"two"),
        (b"x-empty", b""),
    ]
    for name, value in scope["headers"]:
        assert type(name) is bytes and type(value) is bytes
    assert scope["client"] == ("127.0.0.1", client_port)
    assert scope["server"] == ("127.0.0.1", server.port)
    assert isinstance(scope["client"], tuple) and isinstance(scope["server"], tuple)
    assert scope["state"] == {}


def test_scope_per_request_version_method_query(serve: ServeFn) -> None:
    scopes: list[Scope] = []
    server = serve(scope_recorder(scopes))
    one_response(exchange(server.port, b"GET /old HTTP/1.0\r\n\r\n"))
    with httpx.Client(base_url=server.url) as client:
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            assert client.request(method, "/m", content=b"x" * 3).status_code == 200
        assert client.head("/h").status_code == 200
        assert client.get("/q?").status_code == 200
    assert scopes[0]["http_version"] == "1.0"
    assert scopes[0]["path"] == "/old" and scopes[0]["query_string"] == b""
    assert [s["method"] for s in scopes[1:]] == [
        "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "GET",
    ]
    assert all(s["http_version"] == "1.1" for s in scopes[1:])
    assert scopes[-1]["path"] == "/q" and scopes[-1]["query_string"] == b""
    # Every request has a scope (and headers list) of its own.
    assert len({id(s) for s in scopes}) == len(scopes)


def test_absolute_form_target_gives_path_and_query(serve: ServeFn) -> None:
    scopes: list[Scope] = []
    server = serve(scope_recorder(scopes))
    data = exchange(server.port, b"GET http://example.com/p%41th?k=v HTTP/1.1\r\nHost: x\r\n\r\n")
    assert one_response(data).status == 200
    assert scopes[0]["path"] == "/pAth"
    assert scopes[0]["raw_path"] == b"/p%41th"
    assert scopes[0]["query_string"] == b"k=v"


def test_root_path_is_prefixed_to_path_and_raw_path(serve: ServeFn) -> None:
    # The ASGI spec: root_path is WSGI's SCRIPT_NAME and "PATH_INFO can be
    # derived by stripping root_path from path", so path includes root_path
    # (as uvicorn does since 0.26): a proxy strips /api, the app sees it.
    scopes: list[Scope] = []
    server = serve(scope_recorder(scopes), root_path="/api")
    data = exchange(server.port, b"GET /items/a%20b?x=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert one_response(data).status == 200
    (scope,) = scopes
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/items/a b"
    assert scope["raw_path"] == b"/api/items/a%20b"
    assert scope["query_string"] == b"x=1"
    assert scope["path"].startswith(scope["root_path"])
    assert scope["path"][len(scope["root_path"]):] == "/items/a b"


# -- receive -------------------------------------------------------------------


def test_chunked_upload_arrives_in_several_messages(serve: ServeFn) -> None:
    messages: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while True:
            message = await receive()
            messages.append(message)
            if not message.get("more_body"):
                break
        await respond(send, b"%d" % len(messages))

    server = serve(app)
    pieces = [b"a" * 1000, b"b" * 2000, b"c" * 3000]
    with connect(server.port) as sock:
        sock.sendall(
            b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for piece in pieces:
            time.sleep(0.05)
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        time.sleep(0.05)
        sock.sendall(b"0\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        response = one_response(read_until_close(sock))
    assert response.status == 200
    assert all(m["type"] == "http.request" for m in messages)
    assert len(messages) >= len(pieces) + 1  # one per piece, at least, and the end
    assert all(m["more_body"] is True for m in messages[:-1])
    assert messages[-1]["more_body"] is False
    assert b"".join(m["body"] for m in messages) == b"".join(pieces)
    assert all(type(m["body"]) is bytes for m in messages)


def test_large_upload_is_not_buffered_whole(serve: ServeFn) -> None:
    # The app waits before reading: the server must stop reading the socket
    # rather than hold the whole body, so no message carries much of it.
    sizes: list[int] = []
    total = 8 << 20

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await asyncio.sleep(0.3)
        received = 0
        while True:
            message = await receive()
            sizes.append(len(message["body"]))
            received += len(message["body"])
            if not message["more_body"]:
                break
        await respond(send, b"%d" % received)

    server = serve(app)
    payload = bytes(range(256)) * (total // 256)
    response = httpx.post(server.url + "/big", content=payload, timeout=5)
    assert response.status_code == 200
    assert response.text == str(total)
    assert sum(sizes) == total
    assert len(sizes) > 4
    assert max(sizes) < 1 << 20


def test_empty_body_is_one_message_then_disconnect_after_response(serve: ServeFn) -> None:
    messages: list[Message] = []
    finished = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        messages.append(await receive())
        await respond(send)
        messages.append(await receive())  # the response is complete
        finished.set()

    server = serve(app)
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/").text == "ok"
        assert finished.wait(2)
        # The connection is still open (keep-alive): the disconnect comes
        # from the response being complete, not from the socket.
        assert client.get("/").text == "ok"
    assert messages[0] == {"type": "http.request", "body": b"", "more_body": False}
    assert messages[1] == {"type": "http.disconnect"}


def test_pending_receive_is_woken_when_the_response_completes(serve: ServeFn) -> None:
    # A task listening for the disconnect (as Starlette's StreamingResponse
    # does) must not be left waiting forever once the response is done.
    seen: queue.Queue[Message] = queue.Queue()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await read_body(receive)

        async def listen() -> None:
            seen.put(await receive())

        listener = asyncio.ensure_future(listen())
        await asyncio.sleep(0.01)  # the listener now waits in receive()
        await respond(send)
        await asyncio.wait_for(listener, 1)

    server = serve(app)
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/").status_code == 200
        assert seen.get(timeout=2) == {"type": "http.disconnect"}


def test_disconnect_when_client_goes_during_the_body(serve: ServeFn) -> None:
    seen: queue.Queue[Message] = queue.Queue()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while True:
            message = await receive()
            seen.put(message)
            if message["type"] == "http.disconnect" or not message["more_body"]:
                return

    server = serve(app)
    with connect(server.port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        first = seen.get(timeout=2)
        assert first == {"type": "http.request", "body": b"0123456789", "more_body": True}
    assert seen.get(timeout=2) == {"type": "http.disconnect"}


def test_disconnect_when_client_resets_during_a_long_poll(serve: ServeFn) -> None:
    seen: queue.Queue[Message] = queue.Queue()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await read_body(receive)
        seen.put({"type": "waiting"})
        seen.put(await receive())  # nothing more to read: waits for the end

    server = serve(app)
    sock = connect(server.port)
    sock.sendall(b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n")
    assert seen.get(timeout=2) == {"type": "waiting"}
    reset(sock)
    assert seen.get(timeout=2) == {"type": "http.disconnect"}


def test_expect_continue_is_sent_when_the_body_is_first_received(serve: ServeFn) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await respond(send, await read_body(receive))

    server = serve(app)
    with connect(server.port) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(b"hello")
        sock.shutdown(socket.SHUT_WR)
        responses = parse_responses(read_until_close(sock))
    assert responses[-1].status == 200 and responses[-1].body == b"hello"


# -- send ----------------------------------------------------------------------


def streaming_app(pieces: list[bytes], headers: list[tuple[bytes, bytes]]) -> App:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for piece in pieces:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def test_streamed_body_is_chunked_and_arrives_in_pieces(serve: ServeFn) -> None:
    pieces = [b"one ", b"two ", b"three"]
    server = serve(streaming_app(pieces, [(b"content-type", b"text/plain")]))
    with httpx.Client() as client, client.stream("GET", server.url) as response:
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.headers["content-type"] == "text/plain"
        got = list(response.iter_raw())
    assert b"".join(got) == b"".join(pieces)
    assert len(got) >= 2  # it was streamed, not gathered


def test_streamed_body_with_content_length_is_not_chunked(serve: ServeFn) -> None:
    pieces = [b"abc", b"def"]
    server = serve(streaming_app(pieces, [(b"content-length", b"6")]))
    data = exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    response = one_response(data)
    assert response.complete and response.body == b"abcdef"
    assert response.header(b"content-length") == b"6"
    assert response.header(b"transfer-encoding") is None


def test_streamed_body_to_http10_client_ends_with_the_connection(serve: ServeFn) -> None:
    server = serve(streaming_app([b"x" * 10, b"y" * 10], []))
    data = exchange(server.port, b"GET / HTTP/1.0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert body == b"x" * 10 + b"y" * 10


def test_send_blocks_while_the_client_does_not_read(serve: ServeFn) -> None:
    piece = b"z" * (64 << 10)
    count = 800  # 50 MiB
    sent = [0]
    done = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-length", b"%d" % (len(piece) * count))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for _ in range(count):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            sent[0] += 1
        await send({"type": "http.response.body", "body": b""})
        done.set()

    server = serve(app)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    with sock:
        sock.settimeout(5)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        stalled_at = sent[0]
        time.sleep(0.2)
        assert sent[0] == stalled_at  # send() is waiting for the client
        assert not done.is_set()
        # Only what fits in the socket buffers was produced (about 4 MiB
        # with Linux's default tcp_wmem), far below the 50 MiB body.
        assert 0 < stalled_at < count // 3
        received = 0
        while received < len(piece) * count:
            data = sock.recv(1 << 20)
            assert data
            received += len(data)
    assert done.wait(2)
    assert sent[0] == count
    head_size = received - len(piece) * count
    assert 0 < head_size < 300


def test_send_after_the_client_left_raises_oserror(serve: ServeFn) -> None:
    # ASGI spec 2.4: send() on a closed connection raises an OSError subclass.
    outcome: queue.Queue[str] = queue.Queue()
    started = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != "/stream":
            return await respond(send)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            for _ in range(200_000):
                await send({"type": "http.response.body", "body": b"x" * 1024, "more_body": True})
                started.set()
        except OSError:
            outcome.put("raised")
            raise
        outcome.put("finished")

    server = serve(app)
    sock = connect(server.port)
    sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    assert started.wait(2)
    reset(sock)
    assert outcome.get(timeout=3) == "raised"
    assert httpx.get(server.url).status_code == 200  # the worker still serves


def test_messages_after_the_response_are_ignored(serve: ServeFn) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await respond(send, b"first")
        await send({"type": "http.response.body", "body": b"late"})

    server = serve(app)
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    data = exchange(server.port, request + request)
    responses = parse_responses(data)
    assert [(r.status, r.body) for r in responses] == [(200, b"first"), (200, b"first")]
