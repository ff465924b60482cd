"""One WebSocket client connection: the handshake, whole messages, the close.

Theory of operation. The protocol is not ours: `websockets`' sans-IO
`ClientProtocol` (websockets.client) writes the handshake request, checks
the 101 response (RFC 6455 section 4.1), parses and masks frames (its C
speed-up for the masking), answers pings, echoes a close and validates
close frames. It does no I/O. `WsConnection` is the asyncio Protocol that
drives it over a loop transport (uvloop's, where installed), as
connection.py drives httptools for HTTP:

    data_received(bytes)  -> protocol.receive_data -> events_received()
                             (the handshake Response, then Frames)
    anything to write     -> protocol.data_to_send() -> transport.write
                             (b"", the library's SEND_EOF, closes the transport)

What this module adds is what a load tester needs around it: the time each
chunk arrived (perf_counter(), once per data_received, shared by the
messages in it), whole messages (a text or binary frame and its
continuation frames joined, RFC 6455 section 5.4; text decoded as UTF-8,
section 8.1, or the connection fails with 1007), a queue of messages not
yet read (reading pauses while it is full), and the reason a connection
ended, sorted into one of the failure kinds of the statistics.

The states are the library's (`protocol.state`):

    state       meaning                                  left by
    CONNECTING  handshake sent, no 101 yet               101 -> OPEN; else `error` set
    OPEN        messages both ways                       a close frame sent or received
    CLOSING     a close frame sent (ours, or the echo    the TCP connection closes
                of the server's); waiting for the TCP
                close (section 7.1.1: the server closes
                it first)
    CLOSED      the TCP connection is closed             -

`error` is set once, by the first thing that went wrong (a refused
handshake, a close frame from the server, a reset, a protocol error) and
stays: it is what the next step of the user fails with. A close that we
started and the server answered is no error.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from time import perf_counter

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus
from websockets.frames import BINARY, CLOSE, CONT, TEXT, Frame
from websockets.frames import CLOSE_CODE_EXPLANATIONS as CLOSE_CODES
from websockets.http11 import Request, Response
from websockets.protocol import OPEN

from twincorn.load.connection import PROTOCOL, RESET, RequestError, status_message
from twincorn.ws.core import Assembler, AssemblyError

WS = "WS"  # the Type column of every WebSocket row in the statistics
# The failure kinds WebSocket adds to connection.py's (refused, reset,
# timeout, protocol error...).
HANDSHAKE = "handshake refused"
CLOSED_BY_SERVER = "closed by the server"
MISMATCH = "echo mismatch"
NO_REPLY = "no reply"  # a round trip left open when its socket was closed

Message = str | bytes
# Messages received and not yet read, beyond which reading pauses (the
# server then waits on TCP's flow control, and no memory grows).
MAX_QUEUE = 1024


def close_text(code: int, reason: str) -> str:
    """'1008 (policy violation) too many' for a close frame's code and reason."""
    if 3000 <= code < 4000:
        meaning = "registered"
    elif 4000 <= code < 5000:
        meaning = "private use"
    else:
        meaning = CLOSE_CODES.get(code, "unknown")
    return f"{code} ({meaning})" + (f" {reason}" if reason else "")


class WsConnection(asyncio.Protocol):
    """A WebSocket client connection (see the module docstring)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, protocol: ClientProtocol, request: Request
    ) -> None:
        self.loop = loop
        self.protocol = protocol
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.response: Response | None = None  # the handshake's, once it came
        self.handshake: asyncio.Future[None] = loop.create_future()  # 101, or `error`
        self.lost: asyncio.Future[None] = loop.create_future()  # the TCP connection closed
        self.messages: deque[tuple[float, Message]] = deque()  # (arrival, message)
        self.waiter: asyncio.Future[bool] | None = None  # a receive() waiting
        self.error: RequestError | None = None
        self.closed_by_us = False  # we sent the first close frame
        self.started = 0.0  # perf_counter() when the TCP connect began
        self.handshake_done = 0.0  # ...and when the 101 came
        # Fragments into messages, UTF-8 checked as they come: the server's
        # own Assembler (ws/core.py), one copy of RFC 6455's rules.
        self._assembler = Assembler(None)
        self._paused = False
        self.deadline = 0.0  # of a swept wait(); 0: none

    # -- what the client calls -------------------------------------------------------

    @property
    def open(self) -> bool:
        return self.protocol.state is OPEN and self.error is None

    def send(self, message: Message) -> None:
        """Write one message: str as a text frame, bytes as a binary frame."""
        if isinstance(message, str):
            self.protocol.send_text(message.encode())
        else:
            self.protocol.send_binary(message)
        self._flush()

    def next_message(self) -> tuple[float, Message] | None:
        """The oldest message not yet read, with its arrival time (or None)."""
        if not self.messages:
            return None
        item = self.messages.popleft()
        if self._paused and len(self.messages) < MAX_QUEUE // 2:
            self._paused = False
            if self.transport is not None:
                self.transport.resume_reading()
        return item

    def wait(self, timeout: float) -> asyncio.Future[bool]:
        """A future done when a message comes or the connection ends (True),
        or after `timeout` seconds (False)."""
        waiter = self.waiter = self.loop.create_future()
        if timeout < SWEPT_TIMEOUT:
            timer = self.loop.call_later(timeout, _expire, waiter)
            waiter.add_done_callback(lambda _: timer.cancel())
        else:
            # The usual wait (the run's --timeout, seconds): no timer of its
            # own, made and cancelled once per message, but the loop's sweep.
            self.deadline = self.loop.time() + timeout
            _sweep_of(self.loop).waiting.add(self)
        return waiter

    def start_close(self, code: int, reason: str) -> None:
        """Send a close frame (RFC 6455 section 7.1.2), if the socket is open;
        the server answers with its own and closes the TCP connection."""
        if self.protocol.state is OPEN:
            self.closed_by_us = self.protocol.close_rcvd is None
            self.protocol.send_close(code, reason)
            self._flush()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.protocol.send_request(self.request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        # The hot path: one clock reading, the library's parser, the events.
        now = perf_counter()
        protocol = self.protocol
        protocol.receive_data(data)
        for event in protocol.events_received():
            if isinstance(event, Frame):
                self._frame(event, now)
            elif isinstance(event, Response):
                self._handshake_response(event)
        if protocol.parser_exc is not None and self.error is None:
            self._fail(RequestError(PROTOCOL, f"protocol error: {protocol.parser_exc}"))
        elif protocol.handshake_exc is not None and not self.handshake.done():
            self._handshake_failed()
        self._flush()

    def eof_received(self) -> bool | None:
        self.protocol.receive_eof()
        self._flush()
        return None  # close our side too: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self.error is None and not (self.closed_by_us and self.protocol.close_rcvd):
            if isinstance(exc, ConnectionResetError):
                self._fail(RequestError(RESET, "connection reset by peer"))
            elif exc is not None:
                self._fail(RequestError(RESET, f"connection lost: {exc}"))
            elif not self.handshake.done():
                self._fail(RequestError(RESET, "connection closed during the handshake"))
            elif self.protocol.close_rcvd is None:
                self._fail(RequestError(RESET, "connection closed without a close frame (1006)"))
        if not self.handshake.done():
            self.handshake.set_result(None)
        if not self.lost.done():
            self.lost.set_result(None)
        self._wake()

    # -- events ----------------------------------------------------------------------

    def _frame(self, frame: Frame, now: float) -> None:
        opcode = frame.opcode
        if opcode is BINARY or opcode is TEXT or opcode is CONT:
            text = opcode is TEXT or (opcode is CONT and self._assembler.text)
            try:
                message = self._assembler.add(text, bytes(frame.data), frame.fin)
            except AssemblyError as exc:
                # RFC 6455 section 8.1: invalid UTF-8 fails the connection with 1007.
                self.protocol.fail(exc.code, exc.reason)
                self._fail(RequestError(PROTOCOL, f"protocol error: {exc.reason} (closed "
                                                  f"with {exc.code})"))
                return
            if message is not None:
                self._deliver(now, message.data)
        elif opcode is CLOSE:
            received = self.protocol.close_rcvd
            if not self.closed_by_us and received is not None and self.error is None:
                self._fail(RequestError(
                    CLOSED_BY_SERVER,
                    f"closed by the server: {close_text(received.code, received.reason)}",
                ))
        # PING: the library has queued the pong (section 5.5.2); _flush writes it.

    def _deliver(self, now: float, message: Message) -> None:
        self.messages.append((now, message))
        if len(self.messages) >= MAX_QUEUE and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def _handshake_response(self, response: Response) -> None:
        self.response = response
        if self.protocol.handshake_exc is None:
            self.handshake.set_result(None)
        else:
            self._handshake_failed()

    def _handshake_failed(self) -> None:
        exc = self.protocol.handshake_exc
        if isinstance(exc, InvalidStatus):
            status = exc.response.status_code
            self._fail(RequestError(HANDSHAKE, f"handshake refused: {status_message(status)}"))
        else:
            cause = f" ({exc.__cause__})" if exc is not None and exc.__cause__ else ""
            self._fail(RequestError(PROTOCOL, f"protocol error: handshake: {exc}{cause}"))
        if self.transport is not None:
            self.transport.close()  # nothing more to say on this connection
        if not self.handshake.done():
            self.handshake.set_result(None)

    def _fail(self, error: RequestError) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)
            self.deadline = 0.0

    def _flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for data in self.protocol.data_to_send():
            if data:
                transport.write(data)
            else:  # SEND_EOF: the server has closed its side, or the handshake failed
                transport.close()



def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


#: Waits this long or longer are timed by a sweep of the loop's waiting
#: connections every SWEEP_SECONDS (so late by at most that: 10% of one
#: second); shorter ones by a timer each.
SWEPT_TIMEOUT = 1.0
SWEEP_SECONDS = 0.1


class _Sweep:
    """The waiting connections of one loop, and the timer that expires
    those past their deadline (running while any waits)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: set[WsConnection] = set()
        self._timer = loop.call_later(SWEEP_SECONDS, self._sweep)

    def _sweep(self) -> None:
        now = self.loop.time()
        for conn in list(self.waiting):
            waiter = conn.waiter
            if waiter is None or waiter.done() or not conn.deadline:
                self.waiting.discard(conn)  # woken since
            elif now >= conn.deadline:
                self.waiting.discard(conn)
                conn.deadline = 0.0
                waiter.set_result(False)
        if self.waiting:
            self._timer = self.loop.call_later(SWEEP_SECONDS, self._sweep)
        else:
            _sweeps.pop(self.loop, None)


_sweeps: dict[asyncio.AbstractEventLoop, _Sweep] = {}


def _sweep_of(loop: asyncio.AbstractEventLoop) -> _Sweep:
    sweep = _sweeps.get(loop)
    if sweep is None:
        sweep = _sweeps[loop] = _Sweep(loop)
    return sweep
