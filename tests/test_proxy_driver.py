"""--proxy-protocol in the connection driver (server/protocol.py, Phase.PROXY),
through the fakes of twincorn.testing: no socket, the clock in the test's hands.

From a peer in --proxy-allow-ips the connection begins with a PROXY header,
required: its client and server replace the socket's for every request (the
ASGI scope, the WSGI environ, the access log, a WebSocket), and a missing,
malformed or late header closes the connection with nothing written. From
any other peer no header is read: a PROXY line is a bad request.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from twincorn.asgi_websocket import WebSocketOptions
from twincorn.http.proxy_protocol import V2_SIGNATURE
from twincorn.logs import access_logger
from twincorn.server.protocol import Deadline, Phase
from twincorn.server.websocket import WebSocketConnection
from twincorn.testing import FakeWorker, Link, fake_worker
from twincorn.trusted import TrustedPeers
from twincorn.ws.core import Limits, opener

LAG = 1.0  # the sweep's lag (server/protocol.py, _LAG)
V1 = b"PROXY TCP4 203.0.113.9 192.0.2.80 40001 443\r\n"
V2_V6 = (V2_SIGNATURE + b"\x21\x21" + struct.pack("!H", 36)
         + bytes.fromhex("20010db8000000000000000000000009")
         + bytes.fromhex("20010db8000000000000000000000080") + struct.pack("!HH", 40002, 8443))
V2_LOCAL = V2_SIGNATURE + b"\x20\x00\x00\x00"


def get(path: str = "/", *headers: str) -> bytes:
    return "\r\n".join([f"GET {path} HTTP/1.1", "Host: t", *headers, "", ""]).encode()


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send",
                    "text": json.dumps([scope["client"], scope["server"]])})
        await send({"type": "websocket.close", "code": 1000})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body",
                "body": json.dumps([scope["client"], scope["server"]]).encode()})


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    seen = [[environ["REMOTE_ADDR"], int(environ["REMOTE_PORT"])],
            [environ["SERVER_NAME"], int(environ["SERVER_PORT"])]]
    return [json.dumps(seen).encode()]


APPS: dict[str, Callable[..., Any]] = {"asgi": asgi_app, "wsgi": wsgi_app}


@pytest.fixture(params=["asgi", "wsgi"])
def worker(request: pytest.FixtureRequest) -> Iterator[FakeWorker]:
    with fake_worker(APPS[request.param], request.param, request_head=10.0,
                     proxy_peers=TrustedPeers("127.0.0.1,unix"),
                     access_log=access_logger("%(h)s %(s)s")) as w:
        yield w


def seen(link: Link) -> list[list[list[Any]]]:
    """The (client, server) pair each response reports."""
    return [json.loads(r.body) for r in link.responses()]


def assert_closed_with_nothing(link: Link) -> None:
    assert link.data == b""
    assert link.transport.closing and not link.transport.eof_written
    assert link.phase is Phase.CLOSED


# -- the header read: the real client everywhere -----------------------------------


@pytest.mark.parametrize("split", ["whole", "bytewise", "header then request", "mid-header"])
def test_v1_header_gives_every_keep_alive_request_the_real_client(
        worker: FakeWorker, split: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "twincorn.access")
    link = worker.connect()
    assert (link.phase, link.deadline) == (Phase.PROXY, Deadline.PROXY)
    data = V1 + get("/a") + get("/b")
    if split == "whole":
        link.send(data)
    elif split == "bytewise":
        link.send(data, bytewise=True)
    elif split == "header then request":
        link.send_pieces([V1, get("/a") + get("/b")])
    else:
        link.send_pieces([V1[:20], V1[20:] + get("/a")[:5], get("/a")[5:] + get("/b")])
    worker.run()
    assert seen(link) == [[["203.0.113.9", 40001], ["192.0.2.80", 443]]] * 2
    assert (link.phase, link.deadline) == (Phase.OPEN, Deadline.IDLE)
    lines = [r.getMessage() for r in caplog.records if r.name == "twincorn.access"]
    assert lines == ["203.0.113.9 200", "203.0.113.9 200"]


def test_v2_ipv6_header(worker: FakeWorker) -> None:
    link = worker.connect()
    link.send(V2_V6 + get())
    worker.run()
    assert seen(link) == [[["2001:db8::9", 40002], ["2001:db8::80", 8443]]]


@pytest.mark.parametrize("header", [V2_LOCAL, b"PROXY UNKNOWN\r\n",
                                    V2_SIGNATURE + b"\x21\x00\x00\x00"])
def test_local_and_unknown_keep_the_sockets_addresses(worker: FakeWorker, header: bytes) -> None:
    link = worker.connect()
    link.send(header + get())
    worker.run()
    assert seen(link) == [[["127.0.0.1", 50000], ["127.0.0.1", 8000]]]


def test_a_unix_socket_peer_in_the_list_sends_the_header(worker: FakeWorker) -> None:
    link = worker.connect(peer="")
    assert link.phase is Phase.PROXY
    link.send(V1 + get())
    worker.run()
    assert seen(link)[0][0] == ["203.0.113.9", 40001]


def test_a_websocket_carries_the_real_client() -> None:
    ws = WebSocketOptions(backend="websockets", open=opener("websockets"), limits=Limits())
    with fake_worker(asgi_app, "asgi", ws=ws, proxy_peers=TrustedPeers("127.0.0.1")) as worker:
        link = worker.connect()
        upgrade = get("/ws", "Upgrade: websocket", "Connection: Upgrade",
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13")
        link.send(V1 + upgrade)
        worker.run()
        assert link.data.startswith(b"HTTP/1.1 101")
        socket = link.transport.protocol
        assert isinstance(socket, WebSocketConnection)
        assert socket.client == ("203.0.113.9", 40001)  # for its access log line
        # The first frame: a short unmasked text frame, 2 bytes of head.
        frame = link.data[link.data.index(b"\r\n\r\n") + 4:]
        assert frame[0] == 0x81
        assert json.loads(frame[2:2 + frame[1]]) == [["203.0.113.9", 40001], ["192.0.2.80", 443]]


# -- a header missing, malformed or late: closed, nothing served --------------------


@pytest.mark.parametrize("data", [
    get(),  # no header: a client that reached the port directly
    b"PROXY TCP4 192.168.0.1 192.168.0.11 65iii 100000\r\n" + get(),
    b"PROXY TCP4 not-an-ip 192.168.0.11 56324 443\r\n" + get(),
    V2_SIGNATURE + b"\x22\x11\x00\x0c" + b"\x00" * 12 + get(),  # command 2
    V2_SIGNATURE + b"\x21\x11\xff\xff",  # a length over the bound
])
def test_a_bad_header_closes_with_nothing_written(
        worker: FakeWorker, data: bytes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "twincorn.error")
    link = worker.connect()
    link.send(data)
    worker.run()
    assert_closed_with_nothing(link)
    assert worker.state.leaving == 1
    link.lose()
    assert worker.state.leaving == 0 and not worker.state.connections
    (line,) = [r.getMessage() for r in caplog.records if r.name == "twincorn.error"]
    assert line.startswith("closed 127.0.0.1:50000 (--proxy-protocol, a peer in "
                           "--proxy-allow-ips): ")


def test_a_silent_or_slow_sender_is_closed_at_the_head_deadline(worker: FakeWorker) -> None:
    silent, slow = worker.connect(), worker.connect()
    slow.send(V1[:10])
    worker.advance(10.0 + LAG - 0.1)
    assert silent.phase is Phase.PROXY and slow.phase is Phase.PROXY
    worker.advance(0.2)
    assert_closed_with_nothing(silent)
    assert_closed_with_nothing(slow)


def test_a_fin_inside_the_header_closes(worker: FakeWorker,
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "twincorn.error")
    link = worker.connect()
    link.send(V1[:10])
    link.fin()
    assert_closed_with_nothing(link)
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert caplog.records[0].getMessage().endswith("the connection ended inside its PROXY header")


def test_a_connection_closed_with_nothing_sent_is_no_news(
        worker: FakeWorker, caplog: pytest.LogCaptureFixture) -> None:
    """A TCP health check (AWS NLB's) connects and closes: a debug line only."""
    caplog.set_level(logging.DEBUG, "twincorn.error")
    link = worker.connect()
    link.fin()
    assert_closed_with_nothing(link)
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]


def test_a_connection_waiting_for_its_header_can_be_shed(worker: FakeWorker) -> None:
    link = worker.connect()
    link.send(V1[:10])
    worker.settle()  # no longer fresh
    assert link.conn.shed_rank() is not None
    link.conn.shed()
    assert_closed_with_nothing(link)


# -- from a peer not in the list: no header read ------------------------------------


def test_an_untrusted_peers_header_has_no_effect(worker: FakeWorker) -> None:
    link = worker.connect(peer=("198.51.100.3", 6000))
    assert link.phase is Phase.OPEN
    link.send(V1 + get())
    worker.run()
    assert link.statuses() == [400]
    assert link.responses()[0].header(b"connection") == b"close"
    plain = worker.connect(peer=("198.51.100.3", 6001))
    plain.send(get())
    worker.run()
    assert seen(plain) == [[["198.51.100.3", 6001], ["127.0.0.1", 8000]]]


def test_off_by_default_a_header_is_a_bad_request() -> None:
    with fake_worker(asgi_app, "asgi") as worker:
        link = worker.connect()
        assert link.phase is Phase.OPEN
        link.send(V1 + get())
        worker.run()
        assert link.statuses() == [400]
