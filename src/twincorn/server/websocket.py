"""One WebSocket connection, once its handshake is done: frames in and out,
keep-alive pings, the closing handshake, deadlines, back-pressure.

An HTTP connection (server/protocol.py) that the application upgraded
hands its transport over to a `WebSocketConnection` (asyncio's
set_protocol) and leaves the worker's connections; this one takes its
place there, so that it counts against --worker-connections, its deadlines
are swept with the others' once a second, and a graceful stop finds it.
The backend (ws/) turns bytes into messages and back; the session
(asgi_websocket.py) is the application's side.

The connection's life, `Phase`:

    OPEN    -> CLOSING  we sent a close frame (the application's, a stop's:
                        1001 or 1012); the client's answer is awaited for
                        at most CLOSE_SECONDS, then the socket is aborted
    OPEN, CLOSING
            -> CLOSED   the closing handshake ended, or the backend failed
                        the connection (a protocol error, 1002; invalid
                        UTF-8, 1007; a message too big, 1009): the server
                        closes the TCP connection first (RFC 6455 7.1.1)
    any     -> LOST     connection_lost: the session hears it (1006 if no
                        close came), the access log gets the line

Deadlines are numbers checked by the worker's sweep, as for HTTP: the next
ping (--ws-ping-interval), its pong (--ws-ping-timeout: then closed with
1011, the peer is taken for dead), the close's answer, and the client that
leaves what we send unread (--timeout-send: aborted).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from twincorn.server.flow import LAG as _LAG
from twincorn.server.flow import WriteFlow
from twincorn.ws.core import CLOSE_ABNORMAL, CLOSE_INTERNAL_ERROR, Backend, Closed, Message, Pong

if TYPE_CHECKING:
    from twincorn.exchange import WebSocketSession
    from twincorn.server.state import WorkerState

log = logging.getLogger("twincorn.error")

#: How long the client has to answer our close frame (websockets' and
#: uvicorn's close timeout is 10 s; a live client answers at once).
CLOSE_SECONDS = 5.0
_PING = struct.Struct("!I")


@dataclass(frozen=True, slots=True)
class WebSocketTimeouts:
    """Seconds; see the --ws-ping-* settings (0: no pings)."""

    ping_interval: float = 20.0
    ping_timeout: float = 20.0


class Phase(enum.Enum):
    """The connection's life; see the module's docstring for the moves."""

    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"
    LOST = "lost"


_OPEN, _CLOSING, _CLOSED, _LOST = Phase.OPEN, Phase.CLOSING, Phase.CLOSED, Phase.LOST


class WebSocketConnection(WriteFlow, asyncio.Protocol):
    """The WebSocket driver (one per upgraded socket)."""

    def __init__(self, state: WorkerState, transport: asyncio.BaseTransport,
                 backend: Backend, session: WebSocketSession, write_paused: bool,
                 client: tuple[str, int] | None) -> None:
        self.state = state
        self.client = client  # for the access log
        self.transport: asyncio.Transport | None = cast(asyncio.Transport, transport)
        self.backend = backend
        self.session: WebSocketSession | None = session
        self.phase = _OPEN
        self.bytes_in = 0
        self.bytes_out = 0
        self._write_paused = write_paused
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._told = False  # the session heard on_closed
        self._pings = 0
        now = state.now
        self._started = state.loop.time()
        interval = state.websocket.ping_interval
        self._next_ping = now + _LAG + interval if interval else 0.0
        self._pong_due = 0.0
        self._close_due = 0.0
        self._send_due = 0.0

    def begin(self, rest: bytes) -> None:
        """Called once the transport is ours: write the 101 (queued by the
        backend) and read what the client sent after its handshake."""
        self.state.connections.add(self)
        self._flush()
        self.bytes_out = 0  # frames only, each way (the access log's %(b)s and %(I)s)
        if rest:
            self.data_received(rest)
        if self.state.going_away:  # accepted while the worker stops
            self.going_away(self.state.going_away)

    # -- asyncio.Protocol ---------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.phase is _LOST or self.phase is _CLOSED:
            return
        self.bytes_in += len(data)
        events = self.backend.receive(data)
        if len(events) == 1 and type(events[0]) is Message and not self.backend.pending:
            # The usual read: one whole message, nothing to answer.
            session = self.session
            if session is not None and not self._told:
                session.on_message(events[0].data)
            return
        self._handle(events)

    def eof_received(self) -> bool:
        if self.phase is not _LOST:
            self._handle(self.backend.receive_eof())
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        state = self.state
        if self.phase is not _OPEN:
            state.leaving -= 1
        self.phase = _LOST
        state.connections.discard(self)
        self._send_due = self._close_due = self._pong_due = self._next_ping = 0.0
        self._wake_drainers()
        self._tell(CLOSE_ABNORMAL, "")
        session = self.session
        if session is not None:
            seconds = state.loop.time() - self._started
            session.on_finished(seconds, self.bytes_in, self.bytes_out)
            state.served += 1
            if state.access_log is not None:
                state.access_log(self, session, seconds)
        self.session = None
        self.transport = None

    # -- WebSocketChannel (called by the session) ---------------------------

    def send(self, data: str | bytes) -> None:
        if self.phase is _OPEN:
            backend = self.backend
            backend.send(data)
            out = backend.output()
            transport = self.transport
            if out and transport is not None and not backend.done:
                # The usual send: one frame out, the socket still open.
                self.bytes_out += len(out)
                transport.write(out)
            else:
                self._flush(out)

    def close(self, code: int, reason: str) -> None:
        if self.phase is not _OPEN:
            return
        self.backend.close(code, reason)
        self._leave(_CLOSING)
        self._close_due = self.state.now + _LAG + CLOSE_SECONDS
        self._flush()

    def pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and self.phase is not _LOST:
            self.transport.resume_reading()

    # -- what the worker asks -----------------------------------------------

    def check_deadline(self, now: float) -> bool:
        """Called by the sweep: act on a passed deadline; True if it did."""
        if self._send_due and now >= self._send_due:
            log.debug("a WebSocket client left our messages unread for %g s: aborted",
                      self.state.timeouts.send)
            self.abort()
            return True
        if self._close_due and now >= self._close_due:
            log.debug("a WebSocket client did not answer our close in %g s: aborted",
                      CLOSE_SECONDS)
            self.abort()
            return True
        if self._pong_due and now >= self._pong_due:
            log.debug("a WebSocket client did not answer a ping in %g s: closed",
                      self.state.websocket.ping_timeout)
            self._tell(CLOSE_INTERNAL_ERROR, "keepalive ping timeout")
            self.close(CLOSE_INTERNAL_ERROR, "keepalive ping timeout")
            self.abort()  # a peer that answers no ping will not answer a close
            return True
        if self._next_ping and now >= self._next_ping and self.phase is _OPEN:
            settings = self.state.websocket
            self._next_ping = now + settings.ping_interval
            if not self._pong_due:
                self._pings += 1
                self.backend.ping(_PING.pack(self._pings & 0xFFFFFFFF))
                self._flush()
                if settings.ping_timeout:
                    self._pong_due = now + _LAG + settings.ping_timeout
        return False

    def shed_rank(self) -> float | None:
        """Never shed to make room: an open WebSocket is the application's."""
        return None

    def shed(self) -> None:  # never chosen (shed_rank is None)
        self.abort()

    def going_away(self, code: int) -> None:
        """A graceful stop began: close with `code` (1001, or 1012 when the
        worker is replaced); the application hears websocket.disconnect once
        the client answers."""
        self.close(code, "server restart" if code == 1012 else "server shutdown")

    def abort(self) -> None:
        transport = self.transport
        if self.phase is _LOST or transport is None:
            return
        self._leave(_CLOSED)
        transport.abort()

    # -- internals ----------------------------------------------------------

    def _handle(self, events: list[Message | Pong | Closed]) -> None:
        session = self.session
        for event in events:
            if type(event) is Message:
                if session is not None and not self._told:
                    session.on_message(event.data)
            elif type(event) is Pong:
                self._pong_due = 0.0
            elif type(event) is Closed:
                self._tell(event.code, event.reason)
        self._flush()

    def _flush(self, out: bytes | None = None) -> None:
        if out is None:
            out = self.backend.output()
        transport = self.transport
        if transport is None:
            return
        if out:
            self.bytes_out += len(out)
            transport.write(out)
        if self.backend.done and self.phase is not _CLOSED:
            # RFC 6455 section 7.1.1: the server closes the TCP connection
            # first, once the closing handshake is done (or failed).
            self._leave(_CLOSED)
            self._close_due = 0.0
            transport.close()

    def _tell(self, code: int, reason: str) -> None:
        if not self._told and self.session is not None:
            self._told = True
            self.session.on_closed(code, reason)

    def _leave(self, phase: Phase) -> None:
        if self.phase is _OPEN:
            self.state.leaving += 1
        self.phase = phase

