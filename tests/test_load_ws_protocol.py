"""The load tester's WebSocket connection without a network: WsConnection
(load/ws_connection.py) joined to websockets' own sans-IO ServerProtocol by
a fake transport, fed whole and byte by byte; and the pure functions of
the WebSocket side (URLs, names, echo checks, options)."""

from __future__ import annotations

import ast
import asyncio
from typing import Any, cast

import pytest
from websockets.client import ClientProtocol
from websockets.frames import CLOSE, PONG, Close, Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from load_support import FakeTransport, feed
from twincorn.load.connection import PROTOCOL, RESET
from twincorn.load.plan import LoadPlan, PlanError, split_options
from twincorn.load.scenario import from_spec, from_url
from twincorn.load.scenario_checks import unawaited_calls
from twincorn.load.ws_client import ws_url
from twincorn.load.ws_connection import (
    CLOSED_BY_SERVER,
    HANDSHAKE,
    MAX_QUEUE,
    WsConnection,
    close_text,
)
from twincorn.load.ws_echo import mismatch


class PausingTransport(FakeTransport):
    def __init__(self) -> None:
        super().__init__()
        self.paused = False

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


class Pair:
    """A WsConnection and a ServerProtocol, joined by hand."""

    def __init__(self, loop: asyncio.AbstractEventLoop, subprotocols: list[str] | None = None,
                 server_subprotocols: list[str] | None = None) -> None:
        offered = [Subprotocol(s) for s in subprotocols] if subprotocols else None
        client = ClientProtocol(parse_uri("ws://127.0.0.1:9/ws"), subprotocols=offered,
                                max_size=None)
        self.conn = WsConnection(loop, client, client.connect())
        self.transport = PausingTransport()
        self.conn.connection_made(cast(asyncio.Transport, self.transport))
        chosen = [Subprotocol(s) for s in server_subprotocols] if server_subprotocols else None
        self.server = ServerProtocol(subprotocols=chosen)
        self._seen = 0

    def to_server(self) -> list[Any]:
        """What the client wrote since last time, fed to the server: its events."""
        new = self.transport.written[self._seen:]
        self._seen = len(self.transport.written)
        for data in new:
            self.server.receive_data(data)
        return self.server.events_received()

    def to_client(self, byte_by_byte: bool = False) -> None:
        for data in self.server.data_to_send():
            if data:
                feed(self.conn, data, byte_by_byte)

    def handshake(self, byte_by_byte: bool = False) -> Request:
        (request,) = self.to_server()
        assert isinstance(request, Request)
        self.server.send_response(self.server.accept(request))
        self.to_client(byte_by_byte)
        return request


@pytest.mark.parametrize("byte_by_byte", [False, True])
def test_the_handshake_opens_the_socket(loop: asyncio.AbstractEventLoop,
                                        byte_by_byte: bool) -> None:
    pair = Pair(loop, subprotocols=["chat", "superchat"], server_subprotocols=["superchat"])
    request = pair.handshake(byte_by_byte)
    assert request.headers["Upgrade"] == "websocket"
    assert request.headers["Sec-WebSocket-Protocol"] == "chat, superchat"
    assert pair.conn.handshake.done() and pair.conn.error is None and pair.conn.open
    assert pair.conn.protocol.subprotocol == "superchat"


@pytest.mark.parametrize(("status", "text"), [
    (403, "handshake refused: HTTP 403 Forbidden"),
    (200, "handshake refused: HTTP 200 OK"),
    (503, "handshake refused: HTTP 503 Service Unavailable"),
])
def test_a_refused_handshake_says_its_status(loop: asyncio.AbstractEventLoop, status: int,
                                             text: str) -> None:
    pair = Pair(loop)
    pair.to_server()
    pair.server.send_response(pair.server.reject(status, "no\n"))
    pair.to_client()
    assert pair.conn.handshake.done() and not pair.conn.open
    assert pair.conn.error is not None
    assert (pair.conn.error.kind, pair.conn.error.message) == (HANDSHAKE, text)
    assert pair.transport.closed


def test_a_reply_that_is_not_http_is_a_protocol_error(loop: asyncio.AbstractEventLoop) -> None:
    pair = Pair(loop)
    pair.conn.data_received(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    assert pair.conn.handshake.done()
    assert pair.conn.error is not None and pair.conn.error.kind == PROTOCOL
    assert pair.conn.error.message.startswith("protocol error: handshake: ")


@pytest.mark.parametrize("byte_by_byte", [False, True])
def test_fragments_are_joined_into_one_message(loop: asyncio.AbstractEventLoop,
                                               byte_by_byte: bool) -> None:
    pair = Pair(loop)
    pair.handshake()
    pair.server.send_text("héllo ".encode(), fin=False)
    pair.server.send_continuation(b"wor", fin=False)
    pair.server.send_continuation(b"ld", fin=True)
    pair.server.send_binary(b"\x00\xff", fin=False)
    pair.server.send_continuation(b"\x01", fin=True)
    pair.to_client(byte_by_byte)
    first = pair.conn.next_message()
    second = pair.conn.next_message()
    assert first is not None and first[1] == "héllo world"
    assert second is not None and second[1] == b"\x00\xff\x01"
    assert pair.conn.next_message() is None


def test_a_text_message_split_inside_a_character(loop: asyncio.AbstractEventLoop) -> None:
    pair = Pair(loop)
    pair.handshake()
    data = "é€".encode()
    pair.server.send_text(data[:1], fin=False)
    pair.server.send_continuation(data[1:4], fin=False)
    pair.server.send_continuation(data[4:], fin=True)
    pair.to_client()
    item = pair.conn.next_message()
    assert item is not None and item[1] == "é€"


def test_invalid_utf8_fails_the_connection_with_1007(loop: asyncio.AbstractEventLoop) -> None:
    pair = Pair(loop)
    pair.handshake()
    pair.server.send_frame(Frame(Opcode.TEXT, b"\xff\xfe"))  # not UTF-8
    pair.to_client()
    assert pair.conn.error is not None and pair.conn.error.kind == PROTOCOL
    assert pair.conn.error.message == ("protocol error: invalid UTF-8 in a text message "
                                       "(closed with 1007)")
    assert pair.conn.next_message() is None
    (frame,) = pair.to_server()
    assert frame.opcode is CLOSE and Close.parse(frame.data).code == 1007


def test_a_ping_is_answered(loop: asyncio.AbstractEventLoop) -> None:
    pair = Pair(loop)
    pair.handshake()
    pair.server.send_ping(b"are you there")
    pair.to_client(byte_by_byte=True)
    (frame,) = pair.to_server()
    assert frame.opcode is PONG and frame.data == b"are you there"
    assert pair.conn.open and pair.conn.next_message() is None


def test_a_close_from_the_server_is_its_code_and_reason(loop: asyncio.AbstractEventLoop) -> None:
    pair = Pair(loop)
    pair.handshake()
    pair.server.send_close(1008, "too many")
    pair.to_client()
    assert pair.conn.error is not None
    assert pair.conn.error.kind == CLOSED_BY_SERVER
    assert pair.conn.error.message == "closed by the server: 1008 (policy violation) too many"
    (frame,) = pair.to_server()  # the client echoes it (RFC 6455 section 5.5.1)
    assert frame.opcode is CLOSE and Close.parse(frame.data).code == 1008
    assert not pair.conn.open


def test_our_close_answered_is_no_error(loop: asyncio.AbstractEventLoop) -> None:
    pair = Pair(loop)
    pair.handshake()
    pair.conn.start_close(1000, "done")
    (frame,) = pair.to_server()
    assert Close.parse(frame.data) == Close(1000, "done")
    pair.to_client()  # the server's answer, and its EOF
    pair.conn.eof_received()
    pair.conn.connection_lost(None)
    assert pair.conn.error is None and pair.conn.lost.done()


@pytest.mark.parametrize(("exc", "message"), [
    (None, "connection closed without a close frame (1006)"),
    (ConnectionResetError(104, "Connection reset by peer"), "connection reset by peer"),
])
def test_a_connection_lost_without_a_close(loop: asyncio.AbstractEventLoop,
                                           exc: Exception | None, message: str) -> None:
    pair = Pair(loop)
    pair.handshake()
    waiter = pair.conn.wait(60)
    if exc is None:
        pair.conn.eof_received()
    pair.conn.connection_lost(exc)
    assert pair.conn.error is not None
    assert (pair.conn.error.kind, pair.conn.error.message) == (RESET, message)
    assert waiter.done() and waiter.result() is True


def test_closed_during_the_handshake(loop: asyncio.AbstractEventLoop) -> None:
    pair = Pair(loop)
    pair.conn.eof_received()
    pair.conn.connection_lost(None)
    assert pair.conn.handshake.done()
    assert pair.conn.error is not None and pair.conn.error.kind in (RESET, PROTOCOL)


def test_reading_pauses_while_the_queue_is_full(loop: asyncio.AbstractEventLoop) -> None:
    pair = Pair(loop)
    pair.handshake()
    for i in range(MAX_QUEUE):
        pair.server.send_binary(i.to_bytes(2, "big"))
    pair.to_client()
    assert pair.transport.paused
    for i in range(MAX_QUEUE // 2 + 1):
        item = pair.conn.next_message()
        assert item is not None and item[1] == i.to_bytes(2, "big")
    assert not pair.transport.paused


def test_messages_before_a_close_can_still_be_read(loop: asyncio.AbstractEventLoop) -> None:
    pair = Pair(loop)
    pair.handshake()
    pair.server.send_text(b"last words")
    pair.server.send_close(1000, "")
    pair.to_client()
    item = pair.conn.next_message()
    assert item is not None and item[1] == "last words"
    assert pair.conn.error is not None and pair.conn.error.kind == CLOSED_BY_SERVER


# -- pure functions ---------------------------------------------------------------


@pytest.mark.parametrize(("base", "url", "expected"), [
    ("http://127.0.0.1:8000", "/ws", "ws://127.0.0.1:8000/ws"),
    ("https://example.test", "/ws?room=1", "wss://example.test/ws?room=1"),
    ("http://127.0.0.1:8000/app/", "ws", "ws://127.0.0.1:8000/app/ws"),
    ("http://127.0.0.1:8000", "ws://127.0.0.1:9000/other", "ws://127.0.0.1:9000/other"),
    ("http://127.0.0.1:8000", "wss://example.test/x", "wss://example.test/x"),
    ("", "ws://127.0.0.1:9000/", "ws://127.0.0.1:9000/"),
    ("ws://127.0.0.1:8000/echo", "/chat", "ws://127.0.0.1:8000/chat"),
    ("HTTP://127.0.0.1", "/ws", "ws://127.0.0.1/ws"),
])
def test_urls_resolve_against_the_host(base: str, url: str, expected: str) -> None:
    assert ws_url(base, url) == expected


@pytest.mark.parametrize(("base", "url"), [("", "/ws"), ("http://127.0.0.1", "ftp://x/y")])
def test_a_url_that_cannot_be_opened_says_so(base: str, url: str) -> None:
    with pytest.raises(ValueError, match="give the host"):
        ws_url(base, url)


def test_close_text() -> None:
    assert close_text(1000, "") == "1000 (OK)"
    assert close_text(1011, "boom") == "1011 (internal error) boom"
    assert close_text(4001, "custom") == "4001 (private use) custom"
    assert close_text(3000, "") == "3000 (registered)"


def test_mismatch() -> None:
    assert mismatch(b"abc", b"abc") is None
    assert mismatch("abc", "abc") is None
    assert mismatch(b"abc", b"ab") == "echo mismatch: 3 bytes sent, 2 back"
    assert mismatch(b"abc", b"abd") == "echo mismatch: 3 bytes back, not those sent"
    assert mismatch(b"abc", "abc") == "echo mismatch: a text message back for a binary one"
    assert mismatch("abc", b"abc") == "echo mismatch: a binary message back for a text one"


def test_message_options() -> None:
    plan, _ = split_options({"url": "ws://127.0.0.1:1/echo", "message_size": "16KiB"})
    assert plan.message_size == 16384 and plan.websocket
    plan, _ = split_options({"url": "wss://127.0.0.1:1/echo", "message_text": "hi"})
    assert plan.message_text == "hi"
    assert LoadPlan().message_size == 64


@pytest.mark.parametrize(("options", "error"), [
    ({"url": "http://127.0.0.1:1/", "message_text": "hi"}, "--message-text: for a ws://"),
    ({"url": "http://127.0.0.1:1/", "message_size": "1k"}, "--message-size: for a ws://"),
    ({"url": "ws://127.0.0.1:1/", "method": "POST"}, "--method, --body: not for a ws://"),
    ({"url": "ws://127.0.0.1:1/", "body": "x"}, "--method, --body: not for a ws://"),
    ({"url": "ws://127.0.0.1:1/", "message_size": "1g"}, "--message-size: at most 64m"),
    ({"url": "ws://127.0.0.1:1/", "message_size": "lots"}, "expected a size"),
    ({"url": "ftp://127.0.0.1:1/"}, "not an http://, https://, ws:// or wss:// URL"),
    ({"host": "ws://127.0.0.1:1/"}, "not an http:// or https:// URL"),
])
def test_message_options_refused(options: dict[str, Any], error: str) -> None:
    with pytest.raises(PlanError, match=error.replace("?", r"\?")):
        split_options(options)


def test_a_websocket_not_awaited_is_refused_before_the_run() -> None:
    source = ("class V(User):\n    @task\n    async def t(self):\n"
              "        self.client.websocket('/ws')\n")
    problem = unawaited_calls("v.py", ast.parse(source))
    assert problem is not None and problem.startswith("v.py:4: V.t calls self.client.websocket")


def test_the_echo_scenario_rebuilds_from_its_spec() -> None:
    first = from_url("ws://127.0.0.1:1/echo?x=1", headers=("X-A: b",), message_size=100)
    again = from_spec(first.spec)
    assert again.spec == first.spec and again.builtin is None
    assert again.description == "WebSocket echo ws://127.0.0.1:1/echo?x=1 (100 random bytes)"
    text = from_spec(from_url("ws://127.0.0.1:1/", message_text="").spec)
    assert text.description == "WebSocket echo ws://127.0.0.1:1/ (0 characters of text)"
