"""WebSockets on the wire: a real server on 127.0.0.1, for both backends.

The cases of tests/ws_cases.py (Autobahn's categories as raw frames) go
over a raw socket, the handshake written by hand: the echo comes back, the
close frame carries the code the case says, and then the server closes the
TCP connection. Then the normal cases through real clients, the
`websockets` client and wsproto over a socket (text, binary, fragmented,
1 MiB, a subprotocol, pings, the close either way), the handshake refused
on the wire, and `--ws none` (the upgrade request is plain HTTP).
"""

from __future__ import annotations

import asyncio
import socket
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as websockets_connect
from websockets.typing import Subprotocol
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate

from asgi_types import Receive, Scope, Send
from support import RunningServer
from wire_client import Client, split_head
from ws_cases import BACKENDS, CASES, DEFLATE, NO_CODE, Case
from ws_frames import (
    BINARY,
    CLOSE,
    PONG,
    RSV1,
    TEXT,
    Frame,
    bomb,
    close,
    frame,
    handshake_head,
    parse_frames,
)

pytestmark = pytest.mark.timeout(30)
WIRE_CASES = [case for case in CASES if case.wire]
SECONDS = 5.0  # the longest any answer may take
MIB = 1 << 20


HEARD: list[dict[str, Any]] = []  # the websocket.disconnect messages of /record


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Echoes each message; "close" makes it close (1000, "bye"); plain
    HTTP gets a page naming its Upgrade header."""
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "http":
        upgrade = dict(scope["headers"]).get(b"upgrade", b"-")
        body = b"plain HTTP; upgrade: " + upgrade
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})
        return
    await receive()  # websocket.connect
    if scope["path"] == "/slow":
        await asyncio.sleep(0.3)  # (test_frames_before_the_accept)
    offered = scope["subprotocols"]
    await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            if scope["path"] == "/record":
                HEARD.append(message)
            return
        if message.get("text") == "close":
            await send({"type": "websocket.close", "code": 1000, "reason": "bye"})
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


ServersFn = Callable[..., RunningServer]


@pytest.fixture(scope="module", name="servers")
def servers_fixture() -> Iterator[ServersFn]:
    """servers(backend, **settings): an echo server with these settings,
    started once for the module (ports picked by the kernel: bind to :0)."""
    started: dict[tuple[Any, ...], RunningServer] = {}

    def get(backend: str, **settings: Any) -> RunningServer:
        key = (backend, *sorted(settings.items()))
        if key not in started:
            started[key] = RunningServer(echo_app, interface="asgi", ws=backend,
                                         ws_ping_interval=0, **settings).start()
        return started[key]

    yield get
    for server in started.values():
        server.stop()


@pytest.fixture(name="backend", params=BACKENDS)
def backend_fixture(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class RawWebSocket:
    """A client over a raw socket: the handshake by hand, then raw frames."""

    def __init__(self, port: int, *extra: str, path: str = "/chat", **fields: str) -> None:
        self.client = Client(port, timeout=SECONDS)
        self.client.send(handshake_head(path, *extra, **fields))
        data = self.client.wait_for(lambda d: b"\r\n\r\n" in d, SECONDS)
        self.status_line, self.headers, _ = split_head(data)
        self.head_size = data.index(b"\r\n\r\n") + 4
        extensions = self.headers.get(b"sec-websocket-extensions", [b""])[0]
        self._inflater = zlib.decompressobj(wbits=-15) if extensions else None

    def __enter__(self) -> RawWebSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def send(self, data: bytes) -> None:
        self.client.send(data)

    def frames(self) -> list[Frame]:
        """The whole frames received so far."""
        return parse_frames(self.client.data[self.head_size:])[0]

    def wait_frames(self, predicate: Callable[[list[Frame]], bool]) -> list[Frame]:
        self.client.wait_for(lambda _: predicate(self.frames()), SECONDS)
        return self.frames()

    def closed_by_server(self) -> bool:
        """True once the server has closed the TCP connection."""
        return self.client.closed(SECONDS)

    def messages(self, frames: list[Frame]) -> list[str | bytes]:
        """The data frames' messages (inflated when deflate was agreed)."""
        out: list[str | bytes] = []
        for f in frames:
            if f.opcode not in (TEXT, BINARY):
                continue
            assert f.fin  # the server sends each message in one frame
            data = f.payload
            if f.rsv == RSV1:
                assert self._inflater is not None
                data = self._inflater.decompress(data + b"\x00\x00\xff\xff")
            out.append(data.decode() if f.opcode == TEXT else data)
        return out


@pytest.mark.parametrize("case", WIRE_CASES,
                         ids=[f"{c.autobahn or '-'} {c.name}" for c in WIRE_CASES])
def test_case(servers: ServersFn, backend: str, case: Case) -> None:
    case = case.on(backend)
    server = servers(backend, ws_max_size=case.max_size)
    extra = (f"Sec-WebSocket-Extensions: {case.offer}",) if case.offer else ()
    with RawWebSocket(server.port, *extra) as ws:
        assert ws.status_line == b"HTTP/1.1 101 Switching Protocols"
        assert bool(case.offer) == (b"sec-websocket-extensions" in ws.headers)
        ws.send(case.data)
        if case.close is None:
            # All echoed and answered, then our close: the echo of it.
            def answered(frames: list[Frame]) -> bool:
                pongs = sum(f.opcode == PONG for f in frames)
                return len(ws.messages(frames)) >= len(case.messages) and pongs >= len(
                    case.pings)
            ws.wait_frames(answered)
            ws.send(close(1000))
        frames = ws.wait_frames(lambda frames: any(f.opcode == CLOSE for f in frames))
        assert ws.closed_by_server(), "the server did not close the TCP connection"
        frames = ws.frames()
    assert not any(f.masked for f in frames)
    assert all(f.rsv in ((0, RSV1) if f.opcode in (TEXT, BINARY) else (0,)) for f in frames)
    last = frames[-1]
    assert last.opcode == CLOSE, "nothing after the close frame"
    code = 1000 if case.close is None else case.close
    assert last.close_code == (None if code == NO_CODE else code)
    assert [f.payload for f in frames if f.opcode == PONG] == list(case.pings)
    echoed = ws.messages(frames)
    if case.close is None:
        assert echoed == list(case.messages)
    else:
        # A message that came with the close (or the failure) may not be
        # echoed: the application's answer comes after the WebSocket ended.
        assert echoed == list(case.messages[:len(echoed)])


@pytest.mark.parametrize("same_write", [True, False], ids=["same write", "a later write"])
def test_frames_before_the_accept(servers: ServersFn, backend: str, same_write: bool) -> None:
    # Frames sent right after the handshake, before the 101 (RFC 6455
    # section 4.1 has a client wait for it): the server keeps those read
    # with the head (the parser's upgrade_rest) until the application's
    # accept; the same must hold for those of a later read.
    frames = frame(TEXT, b"early") + frame(TEXT, b"bird")
    server = servers(backend)
    client = Client(server.port, timeout=SECONDS)
    with client:
        client.send(handshake_head("/slow") + (frames if same_write else b""))
        if not same_write:
            time.sleep(0.1)  # the application is still deciding (0.3 s)
            client.send(frames)
        client.wait_for(lambda d: b"\r\n\r\n" in d)
        head = client.data.index(b"\r\n\r\n") + 4
        client.wait_for(lambda d: len(parse_frames(d[head:])[0]) >= 2, timeout=1.5)
        got = parse_frames(client.data[head:])[0]
    assert [f.payload for f in got] == [b"early", b"bird"]


@pytest.mark.parametrize(("data", "code", "reason"), [
    (close(1000, b"bye"), 1000, "bye"),
    (close(4001), 4001, ""),
    (close(), NO_CODE, ""),
    (frame(TEXT, b"unmasked", mask=None), 1002, None),
    (frame(TEXT, b"\xff"), 1007, None),
    (frame(BINARY, b"x" * 1001), 1009, None),
    (frame(TEXT, b"no close, then the FIN"), 1006, None),
], ids=["close 1000", "close 4001", "empty close", "unmasked", "invalid UTF-8", "too big",
        "FIN without close"])
def test_what_the_application_hears(servers: ServersFn, backend: str, data: bytes,
                                    code: int, reason: str | None) -> None:
    # websocket.disconnect carries the client's code and reason, or the
    # code the server failed the connection with (1006: no close at all).
    server = servers(backend, ws_max_size=1000)
    HEARD.clear()
    with RawWebSocket(server.port, path="/record") as ws:
        ws.send(data)
        if code == 1006:
            ws.client.shutdown_write()
        assert ws.closed_by_server()
    deadline = time.monotonic() + SECONDS
    while not HEARD and time.monotonic() < deadline:
        time.sleep(0.01)
    (heard,) = HEARD
    assert heard["code"] == code and type(heard["code"]) is int
    if reason is not None:
        assert heard["reason"] == reason


def test_compression_bomb(servers: ServersFn, backend: str) -> None:
    server = servers(backend, ws_max_size=MIB)
    with RawWebSocket(server.port, f"Sec-WebSocket-Extensions: {DEFLATE}") as ws:
        ws.send(frame(BINARY, bomb(200 * MIB), rsv=RSV1))
        (sent,) = ws.wait_frames(lambda frames: bool(frames))
        assert sent.close_code == 1009
        assert ws.closed_by_server()
    with RawWebSocket(server.port) as ws:  # the worker still serves
        ws.send(frame(TEXT, b"still here"))
        assert ws.messages(ws.wait_frames(lambda frames: bool(frames))) == ["still here"]


# -- the handshake on the wire ---------------------------------------------------

REFUSED = [
    ("POST", {"method": "POST"}, b"405", (b"allow", b"GET")),
    ("a key of 3 bytes", {"key": "YWJj"}, b"400", None),
    ("no key", {"key": ""}, b"400", None),
    ("version 8", {"version": "8"}, b"426", (b"sec-websocket-version", b"13")),
    ("Upgrade: a list", {"upgrade": "websocket, h2c"}, b"426", (b"upgrade", b"websocket")),
]


@pytest.mark.parametrize(("fields", "status", "header"), [r[1:] for r in REFUSED],
                         ids=[r[0] for r in REFUSED])
def test_handshake_refused(servers: ServersFn, backend: str, fields: dict[str, str],
                           status: bytes, header: tuple[bytes, bytes] | None) -> None:
    server = servers(backend)
    with RawWebSocket(server.port, **fields) as ws:
        assert ws.status_line.split(b" ")[1] == status
        if header is not None:
            assert ws.headers[header[0]] == [header[1]]
        assert ws.closed_by_server()


def test_subprotocol_not_a_token_refused(servers: ServersFn, backend: str) -> None:
    with RawWebSocket(servers(backend).port, "Sec-WebSocket-Protocol: a b") as ws:
        assert ws.status_line.startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize(("head", "upgrade"), [
    (handshake_head("/chat", connection="keep-alive"), b"websocket"),
    (handshake_head("/chat", upgrade="notwebsocket"), b"notwebsocket"),
    (handshake_head("/chat").replace(b"HTTP/1.1", b"HTTP/1.0"), b"websocket"),
], ids=["no Connection: upgrade", "Upgrade: notwebsocket", "HTTP/1.0"])
def test_not_a_websocket_request_is_plain_http(servers: ServersFn, backend: str,
                                               head: bytes, upgrade: bytes) -> None:
    with Client(servers(backend).port) as client:
        client.send(head)
        data = client.wait_for(lambda d: d.endswith(b"upgrade: " + upgrade))
    assert data.startswith(b"HTTP/1.1 200 ")


def test_ws_none_serves_the_upgrade_as_plain_http(servers: ServersFn) -> None:
    with Client(servers("none").port) as client:
        client.send(handshake_head("/chat"))
        data = client.wait_for(lambda d: d.endswith(b"upgrade: websocket"))
    assert data.startswith(b"HTTP/1.1 200 ")


# -- the websockets client ---------------------------------------------------------


def websockets_client(server: RunningServer, compression: str | None = "deflate",
                      **options: Any) -> ClientConnection:
    connection: ClientConnection = websockets_connect(
        f"ws://127.0.0.1:{server.port}/chat", open_timeout=SECONDS, close_timeout=SECONDS,
        max_size=None, compression=compression, **options)
    return connection


def agreed_extensions(ws: ClientConnection) -> str | None:
    assert ws.response is not None
    return ws.response.headers.get("Sec-WebSocket-Extensions")


@pytest.mark.parametrize("compression", ["deflate", None])
def test_websockets_client_messages(servers: ServersFn, backend: str,
                                    compression: str | None) -> None:
    big_text, big_bytes = "\u03ba" * (MIB // 2), bytes(range(256)) * (MIB // 256)
    with websockets_client(servers(backend), compression) as ws:
        assert (agreed_extensions(ws) is not None) == bool(compression)
        messages: list[str | bytes] = ["Hello, world!", b"\x00\xff" * 10, "", b"", big_text,
                                       big_bytes]
        for message in messages:
            ws.send(message)
            assert ws.recv(timeout=SECONDS) == message
        ws.send(["frag", "ment", "ed"])  # one message in three frames
        assert ws.recv(timeout=SECONDS) == "fragmented"
        ws.send([b"\x01", b"\x02"])
        assert ws.recv(timeout=SECONDS) == b"\x01\x02"


def test_compressed_messages_of_each_size(servers: ServersFn, backend: str) -> None:
    # Autobahn 12.1-12.5: compressed echoes from 16 bytes to 128 KiB.
    words = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. "
    with websockets_client(servers(backend)) as ws:
        for size in (16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072):
            message = (words * (size // len(words) + 1))[:size]
            ws.send(message)
            assert ws.recv(timeout=SECONDS) == message
            ws.send(message.encode())
            assert ws.recv(timeout=SECONDS) == message.encode()


@pytest.mark.parametrize("parameters", [
    {"client_no_context_takeover": True},
    {"server_no_context_takeover": True},
    {"client_max_window_bits": 9},
    {"server_max_window_bits": 9},
    {"client_max_window_bits": 15, "server_max_window_bits": 15},
    {"client_no_context_takeover": True, "server_no_context_takeover": True,
     "client_max_window_bits": 10, "server_max_window_bits": 11},
], ids=lambda parameters: ",".join(f"{k}={v}" for k, v in parameters.items()))
def test_compression_parameters(servers: ServersFn, backend: str,
                                parameters: dict[str, Any]) -> None:
    # Autobahn 13: the offer's parameters agreed, and messages still echo.
    factory = ClientPerMessageDeflateFactory(**parameters)
    with websockets_client(servers(backend), None, extensions=[factory]) as ws:
        agreed = agreed_extensions(ws)
        assert agreed is not None
        for name, value in parameters.items():
            assert (name if value is True else f"{name}={value}") in agreed
        for _ in range(3):  # the same words again: a context may be taken over
            ws.send("the same words, again and again " * 20)
            assert ws.recv(timeout=SECONDS) == "the same words, again and again " * 20


def test_websockets_client_subprotocol_ping_and_close(servers: ServersFn,
                                                      backend: str) -> None:
    with websockets_client(servers(backend),
                           subprotocols=[Subprotocol("chat"), Subprotocol("v2")]) as ws:
        assert ws.subprotocol == "chat"
        assert ws.ping(b"are you there").wait(SECONDS)
        ws.close(1000, "done")
        assert ws.protocol.close_rcvd is not None
        assert ws.protocol.close_rcvd.code == 1000


def test_websockets_client_hears_the_server_close(servers: ServersFn, backend: str) -> None:
    with websockets_client(servers(backend)) as ws:
        ws.send("close")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=SECONDS)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1000, "bye")


def test_websockets_client_message_over_max_size(servers: ServersFn, backend: str) -> None:
    with websockets_client(servers(backend, ws_max_size=MIB)) as ws:
        ws.send(b"\xfe" * MIB)
        assert ws.recv(timeout=SECONDS) == b"\xfe" * MIB
        ws.send(b"\xfe" * (MIB + 1))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=SECONDS)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_message_of_the_default_max_size(servers: ServersFn, backend: str) -> None:
    # Autobahn 9.1.6, 9.2.6: 16 MiB, the default --ws-max-size. (One byte
    # more: websockets fails the connection on the frame's header, while
    # the client is still sending, whose socket may then be reset before it
    # reads the 1009; test_websockets_client_message_over_max_size sends one
    # of 1 MiB + 1 instead, which the socket's buffers hold.)
    size = 16 * MIB
    with websockets_client(servers(backend), None) as ws:
        ws.send(b"\xfe" * size)
        assert ws.recv(timeout=4 * SECONDS) == b"\xfe" * size


# -- wsproto over a raw socket -----------------------------------------------------


class WsprotoClient:
    """wsproto's client side driven over a blocking socket."""

    def __init__(self, port: int, subprotocols: list[str] | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=SECONDS)
        self.connection = WSConnection(ConnectionType.CLIENT)
        self.eof = False
        self.sock.sendall(self.connection.send(Request(
            host="localhost", target="/chat", subprotocols=subprotocols or [],
            extensions=[PerMessageDeflate()])))
        (accepted,) = self.events(1)
        assert isinstance(accepted, AcceptConnection), accepted
        self.accepted = accepted

    def __enter__(self) -> WsprotoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, event: Any) -> None:
        self.sock.sendall(self.connection.send(event))

    def events(self, count: int) -> list[Any]:
        """The next `count` events (pings answered on the way)."""
        got: list[Any] = []
        deadline = time.monotonic() + SECONDS
        while len(got) < count:
            for event in self.connection.events():
                if isinstance(event, Ping):
                    self.send(event.response())
                else:
                    got.append(event)
            if len(got) >= count:
                break
            assert time.monotonic() < deadline, f"only {got} in {SECONDS} s"
            data = self.sock.recv(65536)
            if not data:
                self.eof = True
            self.connection.receive_data(data or None)
        return got

    def message(self) -> str | bytes:
        """The next whole message."""
        parts: list[Any] = []
        while True:
            (event,) = self.events(1)
            assert isinstance(event, TextMessage | BytesMessage), event
            parts.append(event.data)
            if event.message_finished:
                return "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)

    def server_closed(self) -> bool:
        self.sock.settimeout(SECONDS)
        return self.eof or self.sock.recv(1) == b""


def test_wsproto_client_messages(servers: ServersFn, backend: str) -> None:
    with WsprotoClient(servers(backend).port, ["chat"]) as ws:
        assert ws.accepted.subprotocol == "chat"
        assert any(isinstance(e, PerMessageDeflate) for e in ws.accepted.extensions)
        messages: list[str | bytes] = ["Hello, world!", b"\x00\xff" * 10, "\u03ba" * (MIB // 2),
                                       bytes(range(256)) * (MIB // 256)]
        for data in messages:
            ws.send(TextMessage(data) if isinstance(data, str) else BytesMessage(data))
            assert ws.message() == data
        ws.send(TextMessage("frag", message_finished=False))
        ws.send(TextMessage("ment\u03ba", message_finished=False))
        ws.send(TextMessage("ed"))
        assert ws.message() == "fragment\u03baed"
        ws.send(Ping(b"ping payload"))
        assert ws.events(1) == [Pong(b"ping payload")]
        ws.send(CloseConnection(1000, "done"))
        (closed,) = ws.events(1)
        assert isinstance(closed, CloseConnection) and closed.code == 1000
        assert ws.server_closed()


def test_wsproto_client_hears_the_server_close(servers: ServersFn, backend: str) -> None:
    with WsprotoClient(servers(backend).port) as ws:
        ws.send(TextMessage("close"))
        (closed,) = ws.events(1)
        assert isinstance(closed, CloseConnection)
        assert (closed.code, closed.reason) == (1000, "bye")
        ws.send(closed.response())
        assert ws.server_closed()

