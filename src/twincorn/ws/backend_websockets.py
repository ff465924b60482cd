"""The `websockets` package's sans-IO ServerProtocol, as a twincorn Backend.

Why this library first (`--ws auto`): its frames are unmasked by a C
extension, and it is the faster of the two by far (bench/ws_protocols.py:
an echoed 64-byte message costs it about 1 µs of CPU, wsproto about 20;
16 KiB, 2 µs against 50). It parses the handshake that ws/handshake.py
passed (`accept`), negotiates permessage-deflate, answers pings, echoes a
close and fails the connection on a protocol error, each as RFC 6455 says;
it hands over frames, which core.Assembler makes into messages.

The library parses its handshake request from bytes: the head the HTTP core
already parsed is given to it again (core.request_head), once per
connection, so that only its public API is used.
"""

from __future__ import annotations

import logging

from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request as HandshakeRequest
from websockets.server import ServerProtocol

from twincorn.http import Request
from twincorn.ws.core import (
    CLOSE_NO_STATUS,
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

# The library logs every connection's opening and closing at INFO; the
# server's own log says what matters, once.
_QUIET = logging.getLogger("twincorn.ws.websockets")
_QUIET.setLevel(logging.WARNING)
_QUIET.propagate = False
_QUIET.addHandler(logging.NullHandler())

_TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
_CLOSE, _PONG = Opcode.CLOSE, Opcode.PONG


def open_websockets(request: Request, limits: Limits) -> Backend | Refusal:
    extensions = [ServerPerMessageDeflateFactory()] if limits.per_message_deflate else None
    protocol = ServerProtocol(extensions=extensions, max_size=limits.max_size, logger=_QUIET)
    protocol.receive_data(request_head(request))
    events = protocol.events_received()
    if len(events) != 1 or not isinstance(events[0], HandshakeRequest):
        return Refusal(400, "not a valid WebSocket handshake request")
    handshake = events[0]
    response = protocol.accept(handshake)
    if protocol.extensions and limits.max_size is not None:  # permessage-deflate agreed
        protocol.max_message_size = _deflate_bound(limits.max_size)
    if response.status_code != 101:
        reason = str(protocol.handshake_exc or response.reason_phrase)
        headers = tuple((k.encode("latin-1"), v.encode("latin-1"))
                        for k, v in response.headers.raw_items()
                        if k.lower() in ("allow", "upgrade", "sec-websocket-version"))
        return Refusal(response.status_code, reason, headers)
    offered = [p.strip() for value in handshake.headers.get_all("Sec-WebSocket-Protocol")
               for p in value.split(",") if p.strip()]
    return WebsocketsBackend(protocol, response, offered, limits.max_size)


def _deflate_bound(size: int) -> int:
    """What the library may let a frame's bytes reach, compressed or not,
    once permessage-deflate is agreed.

    It puts one number on a frame as it comes on the wire and on what it
    inflates to, but a compressed frame of incompressible data is a little
    larger than the message: at max_size itself it would be refused. The
    library is given zlib's compressBound of max_size (the most deflate
    adds); the Assembler holds the message to max_size exactly, and
    inflating stops within a few bytes of it all the same."""
    return size + (size >> 12) + (size >> 14) + (size >> 25) + 13


class WebsocketsBackend:
    """One connection's ServerProtocol and the Assembler of its messages."""

    __slots__ = ("_assembler", "_closed", "_protocol", "_response", "subprotocols")

    def __init__(self, protocol: ServerProtocol, response: object, subprotocols: list[str],
                 max_size: int | None) -> None:
        self._protocol = protocol
        self._response = response
        self._assembler = Assembler(max_size)
        self._closed = False  # a Closed event was given
        self.subprotocols = subprotocols

    def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        response = self._response
        assert response is not None
        fields = response.headers  # type: ignore[attr-defined]
        if subprotocol is not None:
            fields["Sec-WebSocket-Protocol"] = subprotocol
        for name, value in headers:
            fields[name.decode("latin-1")] = value.decode("latin-1")
        self._response = None
        self._protocol.send_response(response)  # type: ignore[arg-type]

    def receive(self, data: bytes) -> list[Event]:
        protocol = self._protocol
        protocol.receive_data(data)
        return self._events()

    def receive_eof(self) -> list[Event]:
        self._protocol.receive_eof()
        return self._events()

    def _events(self) -> list[Event]:
        protocol = self._protocol
        events: list[Event] = []
        assembler = self._assembler
        frames: list[Frame] = protocol.events_received()  # type: ignore[assignment]
        for frame in frames:
            if self._closed:
                break
            opcode = frame.opcode
            if opcode is _TEXT or opcode is _BINARY or opcode is _CONT:
                text = opcode is _TEXT or (opcode is _CONT and assembler.text)
                try:
                    message = assembler.add(text, bytes(frame.data), frame.fin)
                except AssemblyError as exc:
                    protocol.fail(exc.code, exc.reason)
                    self._closed = True
                    events.append(Closed(exc.code, exc.reason, by_peer=False))
                    break
                if message is not None:
                    events.append(message)
            elif opcode is _PONG:
                events.append(Pong(bytes(frame.data)))
            elif opcode is _CLOSE:
                received = protocol.close_rcvd
                self._closed = True
                if received is None:
                    events.append(Closed(CLOSE_NO_STATUS, "", by_peer=True))
                else:
                    events.append(Closed(int(received.code), received.reason, by_peer=True))
        if not self._closed and protocol.eof_sent:
            # The library failed the connection (a protocol error, an
            # oversized frame, the end of the stream): its close says why.
            self._closed = True
            sent: Close | None = protocol.close_sent
            if sent is not None:
                events.append(Closed(int(sent.code), sent.reason, by_peer=False))
            else:
                events.append(Closed(1006, str(protocol.parser_exc or "connection ended"),
                                     by_peer=False))
        return events

    def send(self, data: str | bytes) -> None:
        if isinstance(data, str):
            self._protocol.send_text(data.encode("utf-8"))
        else:
            self._protocol.send_binary(data)

    def ping(self, payload: bytes) -> None:
        self._protocol.send_ping(payload)

    def close(self, code: int, reason: str) -> None:
        self._protocol.send_close(code, reason)

    def output(self) -> bytes:
        writes = self._protocol.data_to_send()
        if not writes:
            return b""
        return writes[0] if len(writes) == 1 else b"".join(writes)

    @property
    def done(self) -> bool:
        return self._protocol.eof_sent

    @property
    def pending(self) -> bool:
        # `writes` is the list data_to_send() hands over (the pong of a
        # ping, the echo of a close, a failure's close frame and SEND_EOF).
        protocol = self._protocol
        return bool(protocol.writes) or protocol.eof_sent
