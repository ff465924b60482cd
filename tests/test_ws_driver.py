"""The WebSocket driver (server/websocket.py) through the fake network of
twincorn.testing: an HTTP connection upgraded, then frames both ways, the
clock in the test's hands (pings, their timeout, the close's answer, a
client that stops reading) and a graceful stop. The client's side is the
`websockets` library's sans-IO ClientProtocol: frames made and read by a
kept library, not by the code under test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from twincorn.asgi_websocket import WebSocketOptions
from twincorn.server.websocket import CLOSE_SECONDS, WebSocketConnection, WebSocketTimeouts
from twincorn.testing import FakeWorker, Link, fake_worker
from twincorn.ws.core import Limits, opener

BACKENDS = ["websockets", "wsproto"]


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        EVENTS.append(message)
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message["text"],
                    "bytes": message["bytes"]})


EVENTS: list[dict[str, Any]] = []


@pytest.fixture(params=BACKENDS)
def worker(request: pytest.FixtureRequest) -> Iterator[FakeWorker]:
    EVENTS.clear()
    backend = request.param
    ws = WebSocketOptions(backend=backend, open=opener(backend), limits=Limits(max_size=4096))
    with fake_worker(echo, "asgi", ws=ws,
                     websocket=WebSocketTimeouts(ping_interval=20, ping_timeout=10)) as w:
        yield w


class Client:
    """A WebSocket client over a fake Link: websockets' sans-IO protocol."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.protocol = ClientProtocol(parse_uri("ws://127.0.0.1:8000/echo"))
        self.request = self.protocol.connect()
        self.protocol.send_request(self.request)
        self.read = 0
        self.frames: list[Frame] = []
        self.response: Response | None = None
        self.flush()

    def flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.link.send(data)

    def take(self, answer: bool = True) -> list[Frame]:
        """Feed the client what the server wrote since last time (and send
        what its library answers: pongs, the close's echo, unless not to)."""
        written = self.link.data
        self.protocol.receive_data(written[self.read:])
        self.read = len(written)
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                self.response = event
            else:
                assert isinstance(event, Frame)
                self.frames.append(event)
        if answer:
            self.flush()
        return self.frames

    def messages(self) -> list[str | bytes]:
        self.take()
        return [bytes(f.data).decode() if f.opcode is Opcode.TEXT else bytes(f.data)
                for f in self.frames if f.opcode in (Opcode.TEXT, Opcode.BINARY)]


def connect(worker: FakeWorker) -> Client:
    client = Client(worker.connect())
    worker.run()
    client.take()
    assert client.response is not None and client.response.status_code == 101
    return client


def test_upgrade_hands_the_socket_over(worker: FakeWorker) -> None:
    client = connect(worker)
    conns = list(worker.state.connections)
    assert len(conns) == 1 and isinstance(conns[0], WebSocketConnection)
    assert client.link.transport.protocol is conns[0]
    client.protocol.send_text(b"hello")
    client.protocol.send_binary(b"\x00" * 100)
    client.flush()
    worker.run()
    assert client.messages() == ["hello", b"\x00" * 100]


def test_frames_in_any_split(worker: FakeWorker) -> None:
    client = connect(worker)
    client.protocol.send_text(b"fragmented ", fin=False)
    client.protocol.send_continuation("mé".encode()[:-1], fin=False)  # inside a code point
    client.protocol.send_continuation("mé".encode()[-1:] + b"ssage", fin=True)
    data = b"".join(client.protocol.data_to_send())
    client.link.send(data, bytewise=True)
    worker.run()
    assert client.messages() == ["fragmented méssage"]


def test_client_close_is_answered_and_the_server_closes_tcp(worker: FakeWorker) -> None:
    client = connect(worker)
    client.protocol.send_close(1000, "bye")
    client.flush()
    worker.run()
    frames = client.take()
    assert frames[-1].opcode is Opcode.CLOSE
    assert client.link.closed  # RFC 6455 7.1.1: the server closes the TCP connection
    client.link.lose()
    assert EVENTS[-1] == {"type": "websocket.disconnect", "code": 1000, "reason": "bye"}
    assert worker.state.connections == set() and worker.state.leaving == 0


def test_a_message_too_big_closes_with_1009(worker: FakeWorker) -> None:
    client = connect(worker)
    client.protocol.send_binary(b"x" * 5000)
    client.flush()
    worker.run()
    closes = [f for f in client.take() if f.opcode is Opcode.CLOSE]
    assert closes and int.from_bytes(closes[0].data[:2], "big") == 1009
    assert client.link.closed
    client.link.lose()
    assert EVENTS[-1]["type"] == "websocket.disconnect" and EVENTS[-1]["code"] == 1009


def test_pings_and_a_dead_peer(worker: FakeWorker) -> None:
    client = connect(worker)
    worker.advance(22)  # past --ws-ping-interval
    pings = [f for f in client.take() if f.opcode is Opcode.PING]
    assert len(pings) == 1  # the client library answered it (take() flushes)
    worker.run()
    worker.advance(15)  # past the ping timeout: answered, so still open
    assert not client.link.closed
    worker.advance(10)  # the next ping; this time nobody answers
    assert [f.opcode for f in client.take(answer=False)].count(Opcode.PING) == 2
    worker.advance(8)
    assert not client.link.transport.aborted
    worker.advance(5)  # past its timeout: the peer is taken for dead
    assert client.link.transport.aborted
    client.link.lose()
    assert EVENTS[-1] == {"type": "websocket.disconnect", "code": 1011,
                          "reason": "keepalive ping timeout"}


def test_an_unanswered_close_is_aborted(worker: FakeWorker) -> None:
    client = connect(worker)
    conn = next(iter(worker.state.connections))
    assert isinstance(conn, WebSocketConnection)
    conn.going_away(1012)
    worker.run()
    closes = [f for f in client.take(answer=False) if f.opcode is Opcode.CLOSE]
    assert int.from_bytes(closes[0].data[:2], "big") == 1012
    assert worker.state.leaving == 1  # no longer counts against the limit
    worker.advance(CLOSE_SECONDS - 1.5)
    assert not client.link.transport.aborted
    worker.advance(3)
    assert client.link.transport.aborted


def test_going_away_is_heard_by_the_app_once_answered(worker: FakeWorker) -> None:
    client = connect(worker)
    for conn in list(worker.state.connections):
        conn.going_away(1001)
    worker.run()
    client.take()  # the client answers the close
    worker.run()
    assert client.link.closed
    client.link.lose()
    assert EVENTS[-1] == {"type": "websocket.disconnect", "code": 1001,
                          "reason": "server shutdown"}


def test_accepted_during_a_stop_is_closed_at_once(worker: FakeWorker) -> None:
    worker.state.going_away = 1012
    client = connect(worker)
    closes = [f for f in client.take(answer=False) if f.opcode is Opcode.CLOSE]
    assert int.from_bytes(closes[0].data[:2], "big") == 1012


def test_a_client_that_stops_reading_is_aborted(worker: FakeWorker) -> None:
    client = connect(worker)
    client.link.fill()
    worker.advance(61)  # past --timeout-send
    assert client.link.transport.aborted


def test_the_queue_pauses_reading(worker: FakeWorker) -> None:
    """An app that does not read: 32 messages queue (--ws-max-queue), then
    the transport stops reading, so the client's sends wait in its socket."""
    worker.adapter.app = cast(Any, idle)
    client = connect(worker)
    for n in range(40):
        client.protocol.send_text(str(n).encode())
    client.flush()
    worker.run()
    assert not client.link.transport.reading
    assert client.link._inbox  # what the server did not read yet


async def idle(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    import asyncio

    await asyncio.sleep(3600)
