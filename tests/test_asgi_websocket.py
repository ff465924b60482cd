"""The websocket scope's session (asgi_websocket.py) driven through fakes:
a FakeChannel for the HTTP side, then the FakeSocket it is upgraded to.
No socket, no frames: what the application is told and what it asks."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest

from twincorn.asgi import ASGIAdapter, ClientDisconnected
from twincorn.asgi_websocket import Phase, WebSocketExchange, WebSocketOptions
from twincorn.http import Request
from twincorn.testing import FakeChannel, FakeSocket, parse_responses, turn
from twincorn.ws.core import Limits, opener

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def upgrade_request(path: bytes = b"/chat?room=1", *extra: tuple[bytes, bytes]) -> Request:
    request = Request()
    request.method = "GET"
    request.target = path
    request.path, _, request.query = path.partition(b"?")
    request.upgrade = True
    request.keep_alive = False
    request.headers = [(b"host", b"example.com"), (b"upgrade", b"websocket"),
                       (b"connection", b"Upgrade"), (b"sec-websocket-key", KEY),
                       (b"sec-websocket-version", b"13"), *extra]
    return request


def start(loop: asyncio.AbstractEventLoop, app: Any, request: Request | None = None,
          backend: str = "websockets", **options: Any) -> tuple[WebSocketExchange, FakeChannel]:
    ws = WebSocketOptions(backend=backend, open=opener(backend), limits=Limits(), **options)
    adapter = ASGIAdapter(cast(Any, app), loop, lifespan="off", server_header=b"twincorn",
                          websocket=ws)
    channel = FakeChannel(loop)
    exchange = adapter.new_exchange(request or upgrade_request(), channel)
    assert isinstance(exchange, WebSocketExchange)
    exchange.start()
    turn(loop)
    return exchange, channel


class Script:
    """An app that records what it receives and sends what it is told."""

    def __init__(self, *sends: dict[str, Any], receives: int = 1) -> None:
        self.sends = sends
        self.receives = receives
        self.scope: dict[str, Any] = {}
        self.got: list[dict[str, Any]] = []
        self.raised: BaseException | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope = scope
        self.got.append(await receive())
        try:
            for message in self.sends:
                await send(message)
            for _ in range(self.receives - 1):
                self.got.append(await receive())
        except BaseException as exc:
            self.raised = exc
            raise


ACCEPT = {"type": "websocket.accept"}


def socket_of(channel: FakeChannel) -> FakeSocket:
    assert channel.socket is not None, "not upgraded"
    return channel.socket


# -- the scope and the handshake ---------------------------------------------


@pytest.mark.parametrize("backend", ["websockets", "wsproto"])
def test_scope_and_accept_with_subprotocol_and_headers(
    loop: asyncio.AbstractEventLoop, backend: str
) -> None:
    app = Script({"type": "websocket.accept", "subprotocol": "chat",
                  "headers": [(b"X-Room", b"1")]})
    request = upgrade_request(b"/chat%20room?room=1",
                              (b"sec-websocket-protocol", b"chat, superchat"))
    exchange, channel = start(loop, app, request, backend)
    scope = app.scope
    assert scope["type"] == "websocket" and scope["scheme"] == "ws"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["path"] == "/chat room" and scope["raw_path"] == b"/chat%20room"
    assert scope["query_string"] == b"room=1" and scope["root_path"] == ""
    assert scope["subprotocols"] == ["chat", "superchat"]
    assert scope["http_version"] == "1.1"
    assert scope["client"] == ("127.0.0.1", 50000) and scope["server"] == ("127.0.0.1", 8000)
    assert "websocket.http.response" in scope["extensions"] and scope["state"] == {}
    assert (b"sec-websocket-key", KEY) in scope["headers"]
    assert app.got == [{"type": "websocket.connect"}]
    head = bytes(channel.written).lower()
    assert head.startswith(b"http/1.1 101 switching protocols\r\n")
    assert b"sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n" in head
    assert b"sec-websocket-protocol: chat\r\n" in head
    assert b"x-room: 1\r\n" in head and b"server: twincorn\r\n" in head
    assert exchange.status == 101
    assert exchange.phase is Phase.CLOSING  # the app returned: closed with 1000
    assert socket_of(channel).closes == [(1000, "")]


def test_scheme_is_wss_over_tls(loop: asyncio.AbstractEventLoop) -> None:
    app = Script(ACCEPT)
    ws = WebSocketOptions(backend="websockets", open=opener("websockets"), limits=Limits())
    adapter = ASGIAdapter(cast(Any, app), loop, lifespan="off", websocket=ws)
    channel = FakeChannel(loop)
    channel.scheme = "https"
    adapter.new_exchange(upgrade_request(), channel).start()
    turn(loop)
    assert app.scope["scheme"] == "wss"


def test_invalid_handshake_is_refused_before_the_app(loop: asyncio.AbstractEventLoop) -> None:
    app = Script(ACCEPT)
    request = upgrade_request()
    request.headers = [h for h in request.headers if h[0] != b"sec-websocket-version"]
    _, channel = start(loop, app, request)
    response = parse_responses(bytes(channel.written))[0]
    # RFC 6455 section 4.2.2: 426, naming the version the server speaks.
    assert response.status == 426 and b"Sec-WebSocket-Version" in response.body
    assert response.header(b"sec-websocket-version") == b"13"
    assert channel.completed == [False] and app.got == []


def test_close_before_accept_is_403(loop: asyncio.AbstractEventLoop) -> None:
    app = Script({"type": "websocket.close"})
    exchange, channel = start(loop, app)
    assert parse_responses(bytes(channel.written))[0].status == 403
    assert channel.completed == [False] and exchange.phase is Phase.DENIED


def test_the_apps_own_denial_response(loop: asyncio.AbstractEventLoop) -> None:
    app = Script(
        {"type": "websocket.http.response.start", "status": 401,
         "headers": [(b"www-authenticate", b"Bearer")]},
        {"type": "websocket.http.response.body", "body": b"who ", "more_body": True},
        {"type": "websocket.http.response.body", "body": b"are you?"},
    )
    exchange, channel = start(loop, app)
    response = parse_responses(bytes(channel.written))[0]
    assert response.status == 401 and response.body == b"who are you?"
    assert response.header(b"www-authenticate") == b"Bearer"
    assert channel.completed == [False] and exchange.status == 401


@pytest.mark.parametrize(
    ("sends", "status"),
    [((), 500),  # returned without an answer
     (({"type": "websocket.send", "text": "x"},), 500)],  # a message before accept: raises
)
def test_no_answer_is_500(loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture,
                          sends: tuple[dict[str, Any], ...], status: int) -> None:
    app = Script(*sends)
    _, channel = start(loop, app)
    assert parse_responses(bytes(channel.written))[0].status == status
    assert "serving WebSocket GET /chat?room=1" in caplog.text


def test_exception_before_accept_is_500_and_after_it_1011(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    async def before(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise ValueError("boom")

    _, channel = start(loop, before)
    assert parse_responses(bytes(channel.written))[0].status == 500

    async def after(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(ACCEPT)
        raise ValueError("bang")

    _, channel = start(loop, after)
    assert socket_of(channel).closes == [(1011, "")]
    assert "bang" in caplog.text and "serving WebSocket GET /chat?room=1" in caplog.text


def test_handshake_deadline(loop: asyncio.AbstractEventLoop,
                            caplog: pytest.LogCaptureFixture) -> None:
    outcome: list[Any] = []

    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await asyncio.sleep(0.2)
        outcome.append(await receive())
        try:
            await send(ACCEPT)
        except OSError as exc:
            outcome.append(exc)

    _, channel = start(loop, slow, handshake_timeout=0.05)
    loop.run_until_complete(asyncio.sleep(0.3))
    assert parse_responses(bytes(channel.written))[0].status == 503
    assert outcome[0]["type"] == "websocket.disconnect"
    assert isinstance(outcome[1], ClientDisconnected)
    assert "did not accept the WebSocket within 0.05 s" in caplog.text


# -- messages ------------------------------------------------------------------


def test_messages_both_ways_and_the_close(loop: asyncio.AbstractEventLoop) -> None:
    got: list[dict[str, Any]] = []

    async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send(ACCEPT)
        while True:
            message = await receive()
            got.append(message)
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message["text"],
                        "bytes": message["bytes"]})

    _, channel = start(loop, echo)
    socket = socket_of(channel)
    socket.receive("héllo")
    socket.receive(b"\x00\x01")
    turn(loop)
    assert socket.sent == ["héllo", b"\x00\x01"]
    socket.closed(1001, "bye")
    turn(loop)
    assert got[-1] == {"type": "websocket.disconnect", "code": 1001, "reason": "bye"}
    assert got[0] == {"type": "websocket.receive", "text": "héllo", "bytes": None}
    assert socket.closes == []  # the client closed: nothing more to send


def test_returning_after_accept_closes_with_1000(loop: asyncio.AbstractEventLoop) -> None:
    _, channel = start(loop, Script(ACCEPT))
    assert socket_of(channel).closes == [(1000, "")]


def test_app_close_with_code_and_reason_then_disconnect(
    loop: asyncio.AbstractEventLoop
) -> None:
    app = Script(ACCEPT, {"type": "websocket.close", "code": 4000, "reason": "done"},
                 receives=2)
    exchange, channel = start(loop, app)
    socket = socket_of(channel)
    assert socket.closes == [(4000, "done")] and exchange.phase is Phase.CLOSING
    socket.closed(4000, "done")  # the client's answer
    turn(loop)
    assert app.got[-1] == {"type": "websocket.disconnect", "code": 4000, "reason": "done"}


@pytest.mark.parametrize(
    ("message", "error"),
    [({"type": "websocket.send"}, "exactly one of 'bytes' and 'text'"),
     ({"type": "websocket.send", "text": "a", "bytes": b"b"}, "exactly one"),
     ({"type": "websocket.send", "text": b"a"}, "'text' must be str"),
     ({"type": "websocket.send", "bytes": "a"}, "'bytes' must be bytes"),
     ({"type": "websocket.close", "code": 1005}, "cannot be sent"),
     ({"type": "websocket.close", "code": 1000, "reason": "é" * 62}, "123 bytes"),
     ({"type": "websocket.accept"}, "unexpected ASGI message 'websocket.accept'"),
     ({"type": "http.response.start"}, "unexpected ASGI message")],
)
def test_wrong_messages_are_refused(loop: asyncio.AbstractEventLoop, message: dict[str, Any],
                                    error: str) -> None:
    app = Script(ACCEPT, message)
    start(loop, app)
    assert app.raised is not None and error in str(app.raised)


def test_send_after_the_client_left_raises_oserror(loop: asyncio.AbstractEventLoop) -> None:
    sent: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send(ACCEPT)
        sent.append(await receive())
        try:
            await send({"type": "websocket.send", "text": "late"})
        except OSError as exc:
            sent.append(exc)
            raise

    _, channel = start(loop, app)
    socket_of(channel).closed(1006)
    turn(loop)
    assert sent[0]["code"] == 1006 and isinstance(sent[1], ClientDisconnected)


def test_client_gone_before_the_answer(loop: asyncio.AbstractEventLoop) -> None:
    got: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        got.append(await receive())
        got.append(await receive())

    exchange, _ = start(loop, app)
    exchange.client_gone()
    turn(loop)
    assert got[1] == {"type": "websocket.disconnect", "code": 1006, "reason": ""}


def test_the_queue_pauses_reading_and_resumes(loop: asyncio.AbstractEventLoop) -> None:
    release = asyncio.Event()
    got: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send(ACCEPT)
        await release.wait()
        for _ in range(5):
            got.append((await receive())["text"])

    _, channel = start(loop, app, max_queue=3)
    socket = socket_of(channel)
    socket.receive("1")
    socket.receive("2")
    assert not socket.paused
    socket.receive("3")
    assert socket.paused  # three unread: no more frames are read
    release.set()
    turn(loop)
    assert not socket.paused and got == ["1", "2", "3"]
    socket.receive("4")
    socket.receive("5")
    turn(loop)
    assert got == ["1", "2", "3", "4", "5"]


def test_send_waits_while_the_socket_is_full(loop: asyncio.AbstractEventLoop) -> None:
    app = Script(ACCEPT, {"type": "websocket.send", "text": "a"},
                 {"type": "websocket.send", "text": "b"}, receives=2)
    ws = WebSocketOptions(backend="websockets", open=opener("websockets"), limits=Limits())
    adapter = ASGIAdapter(cast(Any, app), loop, lifespan="off", websocket=ws)
    channel = FakeChannel(loop)
    real_upgrade = channel.upgrade

    def full_upgrade(backend: Any, session: Any) -> FakeSocket:
        socket = real_upgrade(backend, session)
        socket.write_paused = True
        return socket

    channel.upgrade = full_upgrade  # type: ignore[method-assign]
    adapter.new_exchange(upgrade_request(), channel).start()
    turn(loop)
    socket = socket_of(channel)
    assert socket.sent == []  # waiting in drain()
    socket.release_writes()
    turn(loop)
    assert socket.sent == ["a", "b"]


def test_a_plain_upgrade_is_http_without_websocket_support(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        await send({"type": "http.response.start", "status": 426, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    adapter = ASGIAdapter(cast(Any, app), loop, lifespan="off", websocket=None)  # --ws none
    channel = FakeChannel(loop)
    adapter.new_exchange(upgrade_request(), channel).start()
    turn(loop)
    assert seen == ["http"] and parse_responses(bytes(channel.written))[0].status == 426
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
