"""What twincorn asks of a WebSocket library, and what it does around one.

A WebSocket begins as an HTTP/1.1 request (RFC 6455 section 4.1) that the
HTTP core parsed. `opener(name)` checks its handshake (ws/handshake.py) and
hands it to a sans-IO library (a `Backend`): the result is a `Refusal` (the
HTTP status to answer) or a backend waiting for the application's accept.
From then on the driver (server/websocket.py) feeds it the socket's bytes
and gets `Event`s back, and whatever the backend wants written comes out of
`output()`: frames, the pongs it answers by itself, the echo of a close.

The libraries deliver frames or fragments; the `Assembler` here makes whole
messages of them, the same way for every backend: a text message's UTF-8 is
checked as its fragments come (RFC 6455 section 8.1: invalid data fails the
connection with 1007, even in the middle of a message), and a message is
refused with 1009 as soon as it passes `Limits.max_size`, before it is
whole. The backends decompress (permessage-deflate, RFC 7692) with the same
bound, so a small frame that would inflate past it is refused while it
inflates: what a message may cost in memory is max_size, whatever its ratio.
"""

from __future__ import annotations

import codecs
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from twincorn.http import Request

#: The libraries twincorn can drive, in the order `auto` tries them.
BACKENDS = ("websockets", "wsproto")

# RFC 6455 section 7.4.1 and the IANA registry: the close codes a close
# frame may carry on the wire (1005, 1006 and 1015 are never sent).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # the server stops (TERM)
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005  # received without a code
CLOSE_ABNORMAL = 1006  # the connection ended without a close frame
CLOSE_INVALID_DATA = 1007  # a text message that is not UTF-8
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009  # a message over --ws-max-size
CLOSE_INTERNAL_ERROR = 1011  # the application failed
CLOSE_SERVICE_RESTART = 1012  # the worker is replaced (HUP, recycling)


def valid_close_code(code: int) -> bool:
    """May an application close with `code`? (RFC 6455 section 7.4.)"""
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013,
                    1014) or 3000 <= code <= 4999


@dataclass(frozen=True, slots=True)
class Limits:
    """What a backend enforces itself; see the --ws-* settings."""

    max_size: int | None = 16 << 20  # bytes of one message, decompressed (None: any)
    per_message_deflate: bool = True


@dataclass(slots=True)
class Message:
    """A whole data message: str for a text message, bytes for binary.
    (Not frozen: one is made per message, and a frozen dataclass's
    __init__ costs twice as much.)"""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class Pong:
    """The peer answered a ping."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Closed:
    """The WebSocket is over: the peer closed (`by_peer`), or its data broke
    a rule and the backend failed the connection with `code`. Whatever the
    backend still has to write (the close frame) is in its output."""

    code: int
    reason: str
    by_peer: bool


Event = Message | Pong | Closed


@dataclass(frozen=True, slots=True)
class Refusal:
    """The upgrade request is not a valid WebSocket handshake: answer it
    with this HTTP status and reason, and close."""

    status: int
    reason: str
    headers: tuple[tuple[bytes, bytes], ...] = ()


class Backend(Protocol):
    """One WebSocket, as a sans-IO library runs it (one per connection)."""

    #: Sec-WebSocket-Protocol, as the client offered them (the ASGI scope's).
    subprotocols: list[str]

    def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        """Queue the 101 response: the chosen subprotocol and extra headers."""
        ...

    def receive(self, data: bytes) -> list[Event]:
        """The socket's bytes in; the messages (and the close) they make."""
        ...

    def receive_eof(self) -> list[Event]:
        """The client's FIN: a Closed (1006) unless the close was done."""
        ...

    def send(self, data: str | bytes) -> None:
        """Queue one message: text for str, binary for bytes."""
        ...

    def ping(self, payload: bytes) -> None: ...

    def close(self, code: int, reason: str) -> None:
        """Begin the closing handshake (our close frame)."""
        ...

    def output(self) -> bytes:
        """Every byte the backend wants written now (b"" for none)."""
        ...

    @property
    def done(self) -> bool:
        """True once the closing handshake ended (or the connection failed):
        the server closes the TCP connection (RFC 6455 section 7.1.1)."""
        ...

    @property
    def pending(self) -> bool:
        """True if output() has bytes or the backend is done: what the
        driver checks before it flushes after a read (most reads of an
        open socket leave nothing to answer)."""
        ...


class Assembler:
    """Whole messages out of fragments, UTF-8 and size checked as they come.

    `add` takes each fragment (bytes, or str when the library decoded it)
    and returns the message once its final fragment came; it raises
    `AssemblyError` (with the close code) when the message breaks a rule.
    """

    __slots__ = ("_decoder", "_max_size", "_parts", "_size", "text")

    def __init__(self, max_size: int | None) -> None:
        self._max_size = max_size
        self._parts: list[Any] = []  # str pieces of a text message, else bytes
        self.text = False  # the message being assembled is text
        self._size = 0
        self._decoder: codecs.IncrementalDecoder | None = None

    def add(self, text: bool, data: bytes | str, final: bool) -> Message | None:
        parts = self._parts
        if final and not parts:  # the usual case: one unfragmented message
            if self._max_size is not None and len(data) > self._max_size:
                self._check_size(len(data))
            if not text:
                return Message(data)
            return Message(data if isinstance(data, str) else self._whole_text(data))
        if not parts:
            self.text = text
            self._size = 0
            self._decoder = codecs.getincrementaldecoder("utf-8")() if text else None
        self._size += len(data)
        self._check_size(self._size)
        if self.text and isinstance(data, bytes):
            parts.append(self._decode(data, final))
        else:
            parts.append(data)
        if not final:
            return None
        self._parts = []
        return Message("".join(parts) if self.text else b"".join(parts))

    def _check_size(self, size: int) -> None:
        if self._max_size is not None and size > self._max_size:
            self._parts = []
            raise AssemblyError(CLOSE_TOO_BIG, f"message over {self._max_size} bytes")

    def _whole_text(self, data: bytes) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise AssemblyError(CLOSE_INVALID_DATA, "invalid UTF-8 in a text message") from None

    def _decode(self, data: bytes, final: bool) -> str:
        assert self._decoder is not None
        try:
            return self._decoder.decode(data, final)
        except UnicodeDecodeError:
            self._parts = []
            raise AssemblyError(CLOSE_INVALID_DATA, "invalid UTF-8 in a text message") from None


class AssemblyError(Exception):
    """A message broke a rule: fail the connection with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def is_websocket_request(request: Request) -> bool:
    """Does this upgrade request ask for a WebSocket? (RFC 6455 section 4.2.1:
    an Upgrade header naming "websocket", in any case.) An HTTP/1.0 request
    does not, whatever it says: RFC 9110 section 7.8, a server MUST ignore
    Upgrade in one. The handshake's other rules are ws/handshake.py's."""
    if not request.upgrade or request.http_version == "1.0":
        return False
    for name, value in request.headers:
        if name == b"upgrade" and any(token.strip().lower() == b"websocket"
                                      for token in value.split(b",")):
            return True
    return False


def request_head(request: Request) -> bytes:
    """The upgrade request's head again, as the client sent it: the
    libraries check a handshake from its bytes (each parses them its own
    way), once per connection."""
    lines = [b"%s %s HTTP/1.1\r\n" % (request.method.encode("ascii"), request.target)]
    lines.extend(b"%s: %s\r\n" % field for field in request.headers)
    lines.append(b"\r\n")
    return b"".join(lines)


Opener = Callable[[Request, Limits], "Backend | Refusal"]


def available(name: str) -> bool:
    """Is this backend's library installed?"""
    return importlib.util.find_spec(name) is not None


def resolve(choice: str) -> str:
    """The backend `--ws` names: `auto` is the first one installed, or
    "none" when neither is (upgrade requests are then plain HTTP)."""
    if choice != "auto":
        return choice
    return next((name for name in BACKENDS if available(name)), "none")


def opener(name: str) -> Opener:
    """The function that opens a backend of this name, imported once (a
    worker resolves it at start: ImportError if the library is missing).
    The handshake is checked first, the same way for every backend
    (ws/handshake.py)."""
    from twincorn.ws.handshake import check

    if name == "websockets":
        from twincorn.ws.backend_websockets import open_websockets as open_backend
    elif name == "wsproto":
        from twincorn.ws.backend_wsproto import open_wsproto as open_backend
    else:
        raise ValueError(f"no WebSocket backend named {name!r}")

    def open_checked(request: Request, limits: Limits) -> Backend | Refusal:
        refusal = check(request)
        return refusal if refusal is not None else open_backend(request, limits)

    return open_checked
