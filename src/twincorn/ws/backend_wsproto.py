"""wsproto (h11's sibling, pure Python) as a twincorn Backend: `--ws wsproto`.

Slower than `websockets` (bench/ws_protocols.py), kept for those who run
it under uvicorn today and for a second opinion in the tests. wsproto
parses the handshake that ws/handshake.py passed (from the request's bytes,
through h11), decodes
text incrementally (1007 on invalid UTF-8) and hands over message pieces as
they arrive; it leaves to its user the answers to pings and closes, which
are given here, and sets no bound on a message: core.Assembler bounds its
size, and `_BoundedDeflate` bounds what one message may inflate to, which
wsproto's own permessage-deflate does not (a compression bomb would
otherwise be inflated whole, at the pace of zlib, into memory).
"""

from __future__ import annotations

import zlib
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    TextMessage,
)
from wsproto.events import Pong as PongEvent
from wsproto.events import Request as HandshakeRequest
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import RemoteProtocolError

from twincorn.http import Request
from twincorn.ws.core import (
    CLOSE_ABNORMAL,
    CLOSE_INVALID_DATA,
    Assembler,
    AssemblyError,
    Backend,
    Closed,
    Event,
    Limits,
    Pong,
    Refusal,
    request_head,
)


class _BoundedDeflate(PerMessageDeflate):
    """permessage-deflate that refuses (1009) a message inflating past
    `max_size` while it inflates, and declines an offer it cannot read. It
    reaches into wsproto's own state (`_inbound_compressed`,
    `_decompressor`): the one place the library gives no hook for a bound."""

    def __init__(self, max_size: int | None) -> None:
        super().__init__()
        self._max_size = max_size
        self._inflated = 0

    def accept(self, offer: str) -> bool | str | None:
        # wsproto takes any parameter, and raises ValueError on a window
        # size that is not a number (the application's accept would fail).
        return super().accept(offer) if _valid_offer(offer) else None

    def frame_inbound_payload_data(self, proto: Any, data: bytes) -> bytes | CloseReason:
        if not (self._inbound_compressed and self._inbound_is_compressible):
            return data
        assert self._decompressor is not None
        limit = 0 if self._max_size is None else self._max_size - self._inflated + 1
        try:
            out = self._decompressor.decompress(bytes(data), limit)
        except zlib.error:
            return CloseReason.PROTOCOL_ERROR  # as websockets answers it
        self._inflated += len(out)
        if self._max_size is not None and self._inflated > self._max_size:
            return CloseReason.MESSAGE_TOO_BIG
        return out

    def frame_inbound_complete(self, proto: Any, fin: bool) -> bytes | CloseReason | None:
        if fin:
            self._inflated = 0
        out = super().frame_inbound_complete(proto, fin)
        if out is CloseReason.INVALID_FRAME_PAYLOAD_DATA:  # (zlib.error)
            return CloseReason.PROTOCOL_ERROR
        return out


# RFC 7692 section 7.1: the parameters of an offer, each at most once; a
# server declines an offer with any other (section 5). A window size is
# 8 to 15; zlib's raw deflate cannot use 8, which wsproto and websockets
# both decline.
_FLAGS = {"server_no_context_takeover", "client_no_context_takeover"}
_WINDOW_BITS = {"server_max_window_bits", "client_max_window_bits"}
_BITS = {str(bits) for bits in range(9, 16)}


def _valid_offer(offer: str) -> bool:
    seen: set[str] = set()
    for param in offer.split(";")[1:]:
        name, equals, value = (part.strip() for part in param.partition("="))
        if name in seen:
            return False
        seen.add(name)
        if name in _FLAGS:
            if equals:
                return False
        elif name in _WINDOW_BITS:
            if (equals or name == "server_max_window_bits") and value.strip('"') not in _BITS:
                return False
        else:
            return False
    return True


def open_wsproto(request: Request, limits: Limits) -> Backend | Refusal:
    connection = WSConnection(ConnectionType.SERVER)
    try:
        connection.receive_data(request_head(request))
        events = list(connection.events())
    except RemoteProtocolError as exc:
        hint = exc.event_hint
        status = getattr(hint, "status_code", 400) or 400
        return Refusal(status, str(exc))
    if len(events) != 1 or not isinstance(events[0], HandshakeRequest):
        return Refusal(400, "not a valid WebSocket handshake request")
    return WsprotoBackend(connection, list(events[0].subprotocols), limits)


class WsprotoBackend:
    """One connection's WSConnection and the Assembler of its messages."""

    __slots__ = ("_assembler", "_connection", "_failed", "_limits", "_out", "subprotocols")

    def __init__(self, connection: WSConnection, subprotocols: list[str],
                 limits: Limits) -> None:
        self._connection = connection
        self._limits = limits
        self._assembler = Assembler(limits.max_size)
        self._out: list[bytes] = []
        self._failed = False
        self.subprotocols = subprotocols

    def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        extensions: list[Extension] = ([_BoundedDeflate(self._limits.max_size)]
                      if self._limits.per_message_deflate else [])
        self._out.append(self._connection.send(AcceptConnection(
            subprotocol=subprotocol, extensions=extensions, extra_headers=headers)))

    def receive(self, data: bytes) -> list[Event]:
        if self.done:
            return []
        self._connection.receive_data(data)
        return self._events()

    def receive_eof(self) -> list[Event]:
        if self._connection.state is ConnectionState.CLOSED:
            return []
        self._connection.receive_data(None)
        return self._events()

    def _events(self) -> list[Event]:
        connection = self._connection
        events: list[Event] = []
        for event in connection.events():
            if isinstance(event, TextMessage | BytesMessage):
                try:
                    data = event.data if isinstance(event.data, str) else bytes(event.data)
                    message = self._assembler.add(isinstance(event, TextMessage), data,
                                                  event.message_finished)
                except AssemblyError as exc:
                    self._fail(exc.code, exc.reason)
                    events.append(Closed(exc.code, exc.reason, by_peer=False))
                    break
                if message is not None:
                    events.append(message)
            elif isinstance(event, Ping):
                self._out.append(connection.send(event.response()))
            elif isinstance(event, PongEvent):
                events.append(Pong(bytes(event.payload)))
            elif isinstance(event, CloseConnection):
                events.append(self._closed(event))
                break
        return events

    def _closed(self, event: CloseConnection) -> Closed:
        connection = self._connection
        code, reason = int(event.code), event.reason or ""
        if code == CLOSE_ABNORMAL:
            return Closed(code, reason or "connection ended", by_peer=False)
        if connection.state is ConnectionState.REMOTE_CLOSING:
            self._out.append(connection.send(event.response()))  # the echo
            return Closed(code, reason, by_peer=True)
        if connection.state is ConnectionState.CLOSED:
            return Closed(code, reason, by_peer=True)  # the answer to our close
        # A parse failure: wsproto reports it as a close it did not send.
        if code == CLOSE_INVALID_DATA:
            # Its reason is the codec's, with a position that depends on how
            # the bytes arrived: said here once, the same whatever the pieces.
            reason = ("invalid UTF-8 in the close reason" if "CLOSE" in reason
                      else "invalid UTF-8 in a text message")
        self._fail(code, reason)
        return Closed(code, reason, by_peer=False)

    def _fail(self, code: int, reason: str) -> None:
        # RFC 6455 section 7.1.7: send a close if we can, then close the TCP
        # connection without waiting for the answer.
        if self._connection.state is ConnectionState.OPEN:
            self._out.append(self._connection.send(CloseConnection(code, reason)))
        self._failed = True

    def send(self, data: str | bytes) -> None:
        message = TextMessage(data) if isinstance(data, str) else BytesMessage(data)
        self._out.append(self._connection.send(message))

    def ping(self, payload: bytes) -> None:
        self._out.append(self._connection.send(Ping(payload)))

    def close(self, code: int, reason: str) -> None:
        self._out.append(self._connection.send(CloseConnection(code, reason)))

    def output(self) -> bytes:
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)

    @property
    def done(self) -> bool:
        return self._failed or self._connection.state is ConnectionState.CLOSED

    @property
    def pending(self) -> bool:
        return bool(self._out) or self.done
