"""The WebSocket core fed bytes (no I/O), for both backends.

Every case of tests/ws_cases.py (Autobahn's categories, as raw frames) is
fed whole, byte by byte, and in random pieces (several seeds): each way must
give the same events, the same bytes out, and what the case expects. Then
the opening handshake (what is refused, with which status, the same for
both backends: ws/handshake.py), what the server sends (framing, deflate),
the closing handshake it begins, and a compression bomb.
"""

from __future__ import annotations

import random
import tracemalloc
import zlib
from dataclasses import dataclass

import pytest

from twincorn.http import Request, RequestParser, RequestPolicy
from twincorn.ws.core import (
    Backend,
    Closed,
    Event,
    Limits,
    Message,
    Pong,
    Refusal,
    is_websocket_request,
    opener,
)
from ws_cases import BACKENDS, CASES, DEFLATE, NO_CODE, Case
from ws_frames import (
    ACCEPT,
    BINARY,
    CLOSE,
    CONT,
    KEY,
    PING,
    PONG,
    RSV1,
    TEXT,
    Deflater,
    binary,
    bomb,
    close,
    deflated,
    frame,
    handshake_head,
    inflate_server,
    parse_frames,
    splits,
    text,
)

pytestmark = pytest.mark.timeout(30)
SEEDS = range(3)


class Heads:
    """A RequestHandler keeping the request heads it is told of."""

    def __init__(self) -> None:
        self.requests: list[Request] = []

    def on_request(self, request: Request) -> None:
        self.requests.append(request)

    def on_body(self, data: bytes) -> None: ...

    def on_request_complete(self) -> None: ...


def parse_head(head: bytes) -> Request:
    """The request the HTTP core makes of `head`."""
    heads = Heads()
    RequestParser(heads, RequestPolicy()).feed(head)
    (request,) = heads.requests
    return request


def open_backend(backend: str, *extra: str, max_size: int | None = 16 << 20,
                 **fields: str) -> tuple[Backend, bytes]:
    """A backend past its handshake (accepted): it and its 101 response."""
    opened = opener(backend)(parse_head(handshake_head("/chat", *extra, **fields)),
                             Limits(max_size=max_size))
    assert not isinstance(opened, Refusal), opened
    opened.accept(None, [])
    return opened, opened.output()


@dataclass
class Outcome:
    events: list[Event]
    output: bytes
    done: bool


def feed(backend: str, case: Case, pieces: list[bytes]) -> Outcome:
    extra = (f"Sec-WebSocket-Extensions: {case.offer}",) if case.offer else ()
    ws, response = open_backend(backend, *extra, max_size=case.max_size)
    assert response.startswith(b"HTTP/1.1 101 ")
    events: list[Event] = []
    output = b""
    for piece in pieces:
        events += ws.receive(piece)
        output += ws.output()
    return Outcome(events, output, ws.done)


def ways(data: bytes) -> dict[str, list[bytes]]:
    """The ways a case is fed: whole, a byte at a time (997 bytes at a
    time for the long ones, as Autobahn's chopped cases), random pieces."""
    step = 1 if len(data) <= 20_000 else 997
    fed = {"whole": [data], "bytewise": [data[i:i + step] for i in range(0, len(data), step)]}
    fed.update((f"seed {seed}", splits(data, seed)) for seed in SEEDS)
    return fed


@pytest.fixture(name="backend", params=BACKENDS)
def backend_fixture(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.autobahn or '-'} {c.name}" for c in CASES])
def test_case(backend: str, case: Case) -> None:
    case = case.on(backend)
    outcomes = {way: feed(backend, case, pieces) for way, pieces in ways(case.data).items()}
    whole = outcomes["whole"]
    for way, outcome in outcomes.items():
        assert outcome == whole, f"fed {way}, not as fed whole"
    check(case, whole)


def check(case: Case, outcome: Outcome) -> None:
    """The outcome is what `case` says, in events and in bytes out."""
    events = outcome.events
    assert [e.data for e in events if isinstance(e, Message)] == list(case.messages)
    assert [e.payload for e in events if isinstance(e, Pong)] == list(case.pongs)
    frames, rest = parse_frames(outcome.output)
    assert rest == b""
    assert not any(f.masked or f.rsv for f in frames)  # section 5.1: a server never masks
    assert [f.payload for f in frames if f.opcode == PONG] == list(case.pings)
    closes = [f for f in frames if f.opcode == CLOSE]
    closed = [e for e in events if isinstance(e, Closed)]
    if case.close is None:
        assert (closes, closed, outcome.done) == ([], [], False)
        assert all(f.opcode == PONG for f in frames)
        return
    assert len(closed) == 1 and events[-1] is closed[0], events
    assert (closed[0].code, closed[0].by_peer) == (case.close, case.echoed)
    assert type(closed[0].code) is int
    assert len(closes) == 1 and frames[-1] is closes[0], "the close frame comes last"
    assert closes[0].close_code == (None if case.close == NO_CODE else case.close)
    assert outcome.done


# -- the opening handshake ----------------------------------------------------

# (name, head, status, a header of the refusal); None: accepted. The same
# for both backends: ws/handshake.py checks them first. docs/websocket.md
# says what each library answers on its own.
REFUSALS: list[tuple[str, bytes, int | None, tuple[bytes, bytes] | None]] = [
    ("valid", handshake_head(), None, None),
    ("Upgrade and Connection in other cases", handshake_head(
        upgrade="WebSocket", connection="keep-alive, UPGRADE"), None, None),
    ("subprotocols", handshake_head("/", "Sec-WebSocket-Protocol: chat, v2.chat"), None, None),
    ("no Sec-WebSocket-Key", handshake_head(key=""), 400, None),
    ("a key of 3 bytes", handshake_head(key="YWJj"), 400, None),
    ("a key of 17 bytes", handshake_head(key="AAAAAAAAAAAAAAAAAAAAAAA="), 400, None),
    ("a key that is not base64", handshake_head(key="!" * 22 + "=="), 400, None),
    ("a key without its padding", handshake_head(key=KEY.rstrip("=")), 400, None),
    ("two keys", handshake_head("/", f"Sec-WebSocket-Key: {KEY}"), 400, None),
    ("version 8", handshake_head(version="8"), 426, (b"Sec-WebSocket-Version", b"13")),
    ("no version", handshake_head(version=""), 426, (b"Sec-WebSocket-Version", b"13")),
    ("two versions", handshake_head("/", "Sec-WebSocket-Version: 8"), 426,
     (b"Sec-WebSocket-Version", b"13")),
    ("POST", handshake_head(method="POST"), 405, (b"Allow", b"GET")),
    ("HEAD", handshake_head(method="HEAD"), 405, (b"Allow", b"GET")),
    ("HTTP/1.0", handshake_head().replace(b"HTTP/1.1", b"HTTP/1.0"), 400, None),
    ("no Connection: upgrade", handshake_head(connection="keep-alive"), 426,
     (b"Upgrade", b"websocket")),
    ("no Connection", handshake_head(connection=""), 426, (b"Upgrade", b"websocket")),
    ("Upgrade: h2c", handshake_head(upgrade="h2c"), 426, (b"Upgrade", b"websocket")),
    ("Upgrade: a list", handshake_head(upgrade="websocket, h2c"), 426,
     (b"Upgrade", b"websocket")),
    ("a subprotocol that is no token", handshake_head("/", "Sec-WebSocket-Protocol: a b"),
     400, None),
]


@pytest.mark.parametrize(("head", "status", "header"), [r[1:] for r in REFUSALS],
                         ids=[r[0] for r in REFUSALS])
def test_handshake(backend: str, head: bytes, status: int | None,
                   header: tuple[bytes, bytes] | None) -> None:
    opened = opener(backend)(parse_head(head), Limits())
    if status is None:
        assert not isinstance(opened, Refusal), opened
        opened.accept(None, [])
        response = opened.output()
        assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        assert b"\r\nSec-WebSocket-Accept: %s\r\n" % ACCEPT.encode() in response
        return
    assert isinstance(opened, Refusal)
    assert opened.status == status, opened
    assert opened.reason
    if header is not None:
        assert header in opened.headers


def test_accept_names_the_subprotocol_and_headers(backend: str) -> None:
    head = handshake_head("/", "Sec-WebSocket-Protocol: chat, superchat")
    ws = opener(backend)(parse_head(head), Limits())
    assert not isinstance(ws, Refusal)
    assert ws.subprotocols == ["chat", "superchat"]
    ws.accept("superchat", [(b"x-served-by", b"twincorn")])
    response = ws.output().lower()
    assert b"\r\nsec-websocket-protocol: superchat\r\n" in response
    assert b"\r\nx-served-by: twincorn\r\n" in response


@pytest.mark.parametrize(("head", "expected"), [
    (handshake_head(), True),
    (handshake_head(upgrade="WebSocket"), True),
    (handshake_head(upgrade="h2c, websocket"), True),  # then refused: 426
    (handshake_head(upgrade="notwebsocket"), False),
    (handshake_head(upgrade="h2c"), False),
    (handshake_head(connection="keep-alive"), False),  # no upgrade at all for llhttp
    # RFC 9110 section 7.8: Upgrade in an HTTP/1.0 request is ignored.
    (handshake_head().replace(b"HTTP/1.1", b"HTTP/1.0"), False),
])
def test_which_requests_ask_for_a_websocket(head: bytes, expected: bool) -> None:
    assert is_websocket_request(parse_head(head)) is expected


# -- what the server sends ----------------------------------------------------


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_messages_sent_take_the_shortest_length(backend: str, size: int) -> None:
    ws, _ = open_backend(backend)
    ws.send(b"\xfe" * size)
    ws.send("*" * size)
    out = ws.output()
    # Section 5.2: 7 bits up to 125, then 126 and 16 bits, then 127 and 64.
    marker = size if size < 126 else 126 if size < 65536 else 127
    assert out[:2] == bytes([0x82, marker])
    frames, rest = parse_frames(out)
    assert rest == b""
    assert [(f.fin, f.rsv, f.opcode, f.masked, f.payload) for f in frames] == [
        (True, 0, BINARY, False, b"\xfe" * size), (True, 0, TEXT, False, b"*" * size)]


@pytest.mark.parametrize("offer", [DEFLATE, f"{DEFLATE}; server_no_context_takeover",
                                   f"{DEFLATE}; server_max_window_bits=9"])
def test_messages_sent_compressed(backend: str, offer: str) -> None:
    ws, response = open_backend(backend, f"Sec-WebSocket-Extensions: {offer}")
    agreed = next(line for line in response.split(b"\r\n")
                  if line.lower().startswith(b"sec-websocket-extensions:"))
    for parameter in offer.split("; ")[1:]:
        assert parameter.encode() in agreed
    words = [b"the same words " * 30, b"the same words " * 30, b"other words"]
    for data in words:
        ws.send(data)
    frames, _ = parse_frames(ws.output())
    assert all(f.rsv == RSV1 and f.opcode == BINARY for f in frames)
    payloads = [f.payload for f in frames]
    if "no_context_takeover" in offer:  # each message inflates on its own
        assert [inflate_server([p])[0] for p in payloads] == words
    else:
        assert inflate_server(payloads) == words
        assert len(payloads[1]) < len(payloads[0])  # the second refers to the first


@pytest.mark.parametrize("offer", [f"{DEFLATE}; client_max_window_bits",
                                   f"{DEFLATE}; client_max_window_bits=9",
                                   f"{DEFLATE}; client_no_context_takeover"])
def test_client_compression_parameters(backend: str, offer: str) -> None:
    # Autobahn 13: the client's window and context, as it offered them.
    ws, response = open_backend(backend, f"Sec-WebSocket-Extensions: {offer}")
    assert b"permessage-deflate" in response
    bits = 9 if offer.endswith("=9") else 15
    words = [b"Hello, compressed world! " * 40] * 3
    compressor = zlib.compressobj(wbits=-bits)
    data = b""
    for message in words:
        if "no_context_takeover" in offer:
            compressor = zlib.compressobj(wbits=-bits)
        compressed = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
        data += frame(BINARY, compressed[:-4], rsv=RSV1)
    assert [e.data for e in ws.receive(data) if isinstance(e, Message)] == words


@pytest.mark.parametrize("offer", [f"{DEFLATE}; client_max_window_bits=abc",
                                   f"{DEFLATE}; server_max_window_bits=8",
                                   f"{DEFLATE}; server_max_window_bits",
                                   f"{DEFLATE}; unknown_parameter",
                                   f"{DEFLATE}; server_no_context_takeover=1",
                                   f"{DEFLATE}; client_max_window_bits; client_max_window_bits",
                                   "x-webkit-deflate-frame"])
def test_offers_declined(backend: str, offer: str) -> None:
    # RFC 7692 section 5: an offer with an unknown, repeated or invalid
    # parameter is declined, and the WebSocket opens without compression.
    ws, response = open_backend(backend, f"Sec-WebSocket-Extensions: {offer}")
    assert response.startswith(b"HTTP/1.1 101 ")
    assert b"sec-websocket-extensions" not in response.lower()
    events = ws.receive(frame(TEXT, deflated(b"compressed"), rsv=RSV1))
    assert [(type(e), getattr(e, "code", None)) for e in events] == [(Closed, 1002)]


def test_an_offer_declined_then_one_accepted(backend: str) -> None:
    offer = f"{DEFLATE}; server_max_window_bits=8, {DEFLATE}"
    ws, response = open_backend(backend, f"Sec-WebSocket-Extensions: {offer}")
    assert b"\r\nSec-WebSocket-Extensions: permessage-deflate\r\n" in response
    assert ws.receive(frame(TEXT, deflated(b"hi"), rsv=RSV1)) == [Message("hi")]


def test_server_pings_and_hears_the_pong(backend: str) -> None:
    ws, _ = open_backend(backend)
    ws.ping(b"\x00\x00\x00\x01")
    (sent,), _ = parse_frames(ws.output())
    assert (sent.opcode, sent.payload, sent.masked) == (PING, b"\x00\x00\x00\x01", False)
    assert ws.receive(frame(PONG, b"\x00\x00\x00\x01")) == [Pong(b"\x00\x00\x00\x01")]


@pytest.mark.parametrize(("code", "reason"), [(1000, ""), (1001, "server shutdown"),
                                              (1012, "server restart"), (4000, "\u03ba" * 61)])
def test_server_closes_and_the_client_answers(backend: str, code: int, reason: str) -> None:
    ws, _ = open_backend(backend)
    ws.close(code, reason)
    (sent,), _ = parse_frames(ws.output())
    assert (sent.opcode, sent.close_code, sent.close_reason) == (CLOSE, code,
                                                                 reason.encode())
    assert not ws.done  # RFC 6455 section 7.1.1: wait for the answer
    # The client may still send before it reads our close: its messages come.
    assert ws.receive(text("in flight")) == [Message("in flight")]
    events = ws.receive(close(code))
    assert [(type(e), getattr(e, "code", None)) for e in events] == [(Closed, code)]
    assert ws.done
    assert parse_frames(ws.output())[0] == []  # no second close frame


@pytest.mark.parametrize("data", [b"", text("unfinished")[:5],
                                  frame(TEXT, b"frag", fin=False)])
def test_end_of_stream_without_a_close(backend: str, data: bytes) -> None:
    ws, _ = open_backend(backend)
    assert ws.receive(data) == []
    events = ws.receive_eof()
    assert [(type(e), getattr(e, "code", None), getattr(e, "by_peer", None))
            for e in events] == [(Closed, 1006, False)]
    assert ws.done
    assert ws.receive_eof() == []


def test_end_of_stream_after_the_close_handshake(backend: str) -> None:
    ws, _ = open_backend(backend)
    ws.receive(close(1000))
    assert ws.done
    assert ws.receive_eof() == []


# -- a compression bomb -------------------------------------------------------

BOMB_LIMIT = 1 << 20  # max_size; the bomb inflates to 200 times it


@pytest.mark.parametrize("fragmented", [False, True], ids=["one frame", "fragments"])
def test_compression_bomb(backend: str, fragmented: bool) -> None:
    # A frame smaller than max_size that inflates to 200 times it: refused
    # (1009) while it inflates, and what it cost stays near max_size.
    payload = bomb(BOMB_LIMIT * 200)
    assert len(payload) < BOMB_LIMIT
    if fragmented:
        step = len(payload) // 8 + 1
        pieces = [payload[i:i + step] for i in range(0, len(payload), step)]
        data = b"".join(frame(TEXT if i == 0 else CONT, piece, fin=i == len(pieces) - 1,
                              rsv=RSV1 if i == 0 else 0) for i, piece in enumerate(pieces))
    else:
        data = frame(BINARY, payload, rsv=RSV1)
    ws, _ = open_backend(backend, f"Sec-WebSocket-Extensions: {DEFLATE}", max_size=BOMB_LIMIT)
    tracemalloc.start()
    try:
        events = ws.receive(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [(type(e), getattr(e, "code", None)) for e in events] == [(Closed, 1009)]
    (sent,), _ = parse_frames(ws.output())
    assert sent.close_code == 1009
    assert ws.done
    # The frame itself is held (its copy unmasked), and at most max_size
    # inflated: a few MiB, not the 200 it would inflate to.
    assert peak < len(data) * 3 + 3 * BOMB_LIMIT, f"peak {peak >> 10} KiB"


def test_compressed_message_of_max_size_from_incompressible_data(backend: str) -> None:
    # Deflate makes incompressible data a little larger: the limit is on
    # the message, as it inflates, not on the frame (backend_websockets.py).
    data = random.Random(1).randbytes(BOMB_LIMIT)
    ws, _ = open_backend(backend, f"Sec-WebSocket-Extensions: {DEFLATE}", max_size=BOMB_LIMIT)
    compressed = deflated(data)
    assert len(compressed) > BOMB_LIMIT
    assert ws.receive(frame(BINARY, compressed, rsv=RSV1)) == [Message(data)]
    ws.receive(binary(data + b"!"))
    assert ws.done


def test_the_deflater_helper_keeps_its_context() -> None:
    # The tests' own compressor: a second identical message is shorter.
    deflater = Deflater()
    first, second = deflater.message(b"abc" * 100), deflater.message(b"abc" * 100)
    assert len(second) < len(first)
    assert inflate_server([first, second]) == [b"abc" * 100] * 2
