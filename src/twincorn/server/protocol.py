"""One HTTP/1.1 connection: bytes in and out, deadlines, flow control.

Theory of operation
-------------------
asyncio calls the driver (`HttpConnection`, one per accepted socket) with what
the socket does: `data_received`, `eof_received` (the client's FIN),
`connection_lost`, `pause_writing` and `resume_writing` (the send buffer).
Received bytes go to the core's RequestParser, which reports requests; for
each, the adapter makes an Exchange, queued in order. Requests are answered
strictly in order (pipelining, RFC 9112 section 9.3.2): the next one starts
when the current response is complete, and not while the client leaves what
we wrote unread. The exchange reaches back through this object, which
implements the Channel contract of twincorn.exchange.

The connection's life, `Phase`:

    PROXY   -> OPEN     --proxy-protocol, from --proxy-allow-ips: the PROXY
                        header was read; `client` and `server` are now the
                        ones it gives, before any HTTP byte is parsed (so
                        every request, and the trust of forwarded headers,
                        sees the real client); the bytes after it are HTTP
    PROXY   -> CLOSED   the header is malformed, absent, or not complete
                        within --timeout-request-head: closed with nothing
                        written (HAProxy's proxy-protocol.txt, section 2: a
                        receiver configured for it must not guess, so none
                        of it is HTTP). A connection from any other peer
                        begins OPEN: its bytes are HTTP, a PROXY line there
                        a bad request (400), and a spoofed header has no effect.
    OPEN    -> CLOSING  we end it while the client may still be sending: our
                        FIN goes out after what is queued, and whatever comes
                        is read and dropped until the client's FIN, for at
                        most LINGER_SECONDS (RFC 9112 section 9.6: closing at
                        once could reset the connection before the client
                        read our last response)
    OPEN    -> CLOSED   we end it after the client's FIN, or abort it
    CLOSING -> CLOSED   the client's FIN came, or the linger ran out
    any     -> LOST     connection_lost: nothing more happens, and every
                        reference to other objects is dropped, so that the
                        connection is freed at once by reference counting

What the client owes us is an input deadline, `Deadline`: its PROXY header
(PROXY, under the head's timeout), a request (IDLE: the first, or the next
on a kept-alive connection), the rest of a head (HEAD, from its first
byte), of a body (BODY, and DRAIN for the unread body of a request already
answered: silence, and a minimum rate), or its FIN (LINGER). NONE while
the application has the turn. The output deadline (`_send_due`) bounds how
long the client may leave our bytes unread. All are
plain numbers checked by the worker's once-a-second sweep (WorkerState.sweep):
setting one costs an assignment, not a timer. No input deadline runs while we
stopped reading ourselves, and none fires while bytes wait unread in the
socket (after a long blocking call, the sweep may run before the loop reads).

When the worker is full (--worker-connections), the connections that made
the least progress are shed to make room (`shed_rank`, WorkerState.make_room).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import select
from typing import IO, TYPE_CHECKING, Any, cast

from twincorn.http import ParserState, ProtocolError, Request, RequestParser
from twincorn.http.proxy_protocol import ProxyHeaderError, ProxyHeaderReader
from twincorn.http.response import encode_error_response, informational
from twincorn.server.flow import LAG as _LAG
from twincorn.server.flow import WriteFlow
from twincorn.server.state import FRESH_SECONDS
from twincorn.server.websocket import WebSocketConnection

if TYPE_CHECKING:
    from twincorn.exchange import Exchange, TlsInfo, WebSocketChannel, WebSocketSession
    from twincorn.http.forwarded import ProxyHeaders
    from twincorn.server.state import WorkerState
    from twincorn.ws import Backend

log = logging.getLogger("twincorn.error")


class Phase(enum.Enum):
    """The connection's life; see the module's docstring for the moves."""

    PROXY = "proxy"  # waiting for the PROXY protocol header
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"
    LOST = "lost"


class Deadline(enum.Enum):
    """What the input deadline waits for; its expiry means what it says."""

    NONE = "none"  # the application has the turn
    IDLE = "idle"  # a request: the connection is closed
    HEAD = "head"  # the rest of a head, since its first byte: 408
    PROXY = "proxy"  # the PROXY header, since the connection began: closed
    BODY = "body"  # more of a body the application waits for: 408
    DRAIN = "drain"  # more of an answered request's body: closed
    LINGER = "linger"  # the client's FIN after ours: closed


# Read on every request: module constants rather than Enum look-ups.
_OPEN, _CLOSING, _CLOSED, _LOST = Phase.OPEN, Phase.CLOSING, Phase.CLOSED, Phase.LOST
_NONE, _IDLE, _HEAD, _BODY = Deadline.NONE, Deadline.IDLE, Deadline.HEAD, Deadline.BODY
_DRAIN, _LINGER = Deadline.DRAIN, Deadline.LINGER
_PROXY, _PROXY_WAIT = Phase.PROXY, Deadline.PROXY
_P_IDLE, _P_HEAD, _P_BODY, _P_CLOSED = (
    ParserState.IDLE, ParserState.HEAD, ParserState.BODY, ParserState.CLOSED)

#: How long a closing connection waits for the client's FIN (nginx's
#: lingering_timeout is 5 s; most clients close at once on our FIN).
LINGER_SECONDS = 2.0
_CONTINUE = informational(100)
# shed_rank's tiers: waiting on the client in the middle of something, then
# idle between requests; within a tier, the longest waiting first.
_TIER = 1e12
# poll() takes any descriptor (select() stops at 1024); Windows lacks it.
_poll = getattr(select, "poll", None)


def _peer_text(client: tuple[str, int] | None) -> str:
    return "a unix: socket's peer" if client is None else f"{client[0]}:{client[1]}"


def _address(info: Any) -> tuple[str, int] | None:
    if isinstance(info, tuple) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    return None


class HttpConnection(WriteFlow, asyncio.Protocol):
    """The connection driver (one per accepted socket)."""

    #: From a peer in --proxy-allow-ips (with --proxy-protocol), the first
    #: bytes are a PROXY header, read here (TLS reads its own: server/tls.py).
    reads_proxy_header = True

    def __init__(self, state: WorkerState) -> None:
        self.state = state
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.scheme = "http"
        self.tls: TlsInfo | None = None  # set by server/tls.py's TlsConnection
        self.adapter_state: Any = None
        # The proxy-headers policy if the peer is a trusted proxy, else None:
        # judged once (trust()), so that other requests pay one test.
        self._forwarded: ProxyHeaders | None = None  # a trusted proxy's headers are read
        self.parser = RequestParser(self, state.policy)
        self._phase = _OPEN
        self._proxy: ProxyHeaderReader | None = None  # in Phase.PROXY
        # Requests parsed and not yet started, in order. A list, not a deque:
        # it holds max_pipeline (32) at most, and an empty deque costs 760
        # bytes of every idle connection (16% of one), a list 56.
        self._pending: list[Exchange] = []
        self._current: Exchange | None = None
        self._parsing: Exchange | None = None  # where body bytes go
        self._draining = 0  # >0: bytes of an answered request's body discarded
        self._error: ProtocolError | None = None  # to answer once in-flight ends
        self._continue_sent = False  # 100 Continue went out for the current request
        self._eof = False  # the client shut down its sending side
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        # Why reading is off: the exchange holds the body back, or we want
        # no more requests for now (pipeline full, or refused).
        self._hold_body = False
        self._hold_requests = False
        self._hold_upgrade = False  # after an Upgrade head: the rest is not HTTP
        self._reading_paused = False
        self._in_run_next = False
        self._requests = 0  # requests parsed on this connection
        self._fresh: asyncio.TimerHandle | None = None  # counted in WorkerState.fresh
        self._deadline_kind = _NONE
        self._deadline = 0.0
        self._since = 0.0  # when the current wait on the client began
        self._send_due = 0.0  # 0: writing is not paused
        self._started = 0.0

    # -- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but
        # they have the same methods.
        self.transport = transport = cast(asyncio.Transport, transport)
        self.client = _address(transport.get_extra_info("peername"))
        self.server = _address(transport.get_extra_info("sockname"))
        self.trust()
        state = self.state
        state.connections.add(self)
        state.fresh += 1
        self._fresh = state.loop.call_later(FRESH_SECONDS, self._settled)
        peers = state.proxy_peers
        if (peers is not None and self.reads_proxy_header
                and (self.client[0] if self.client else None) in peers):
            self._phase = _PROXY
            self._proxy = ProxyHeaderReader()
            self._set_deadline(_PROXY_WAIT, state.timeouts.request_head)
        else:
            self._set_deadline(_IDLE, state.timeouts.keep_alive)
        if state.full and not state.make_room():
            log.warning("connection limit (%d) reached, every connection busy: 503",
                        state.max_connections)
            self._send_error(ProtocolError(503, "too many connections"))

    def data_received(self, data: bytes) -> None:
        if self._phase is not _OPEN:
            if self._phase is _PROXY:
                self._read_proxy_header(data)
            return  # closing: read and dropped until the client's FIN
        if self._fresh is not None:
            # Its first bytes are here: whatever they begin, this connection
            # no longer holds a WSGI slot by merely existing. (Held until a
            # whole request came, a slow-loris connection held it too: a
            # one-thread worker then accepted five connections a second.)
            self._settled()
        parser = self.parser
        begun = parser.messages
        try:
            parser.feed(data)
        except ProtocolError as exc:
            self._refuse(exc)
            return
        parsed = parser.state
        if parsed is _P_HEAD:
            if parser.messages != begun or self._deadline_kind is not _HEAD:
                self._set_deadline(_HEAD, self.state.timeouts.request_head)
        elif parsed is _P_BODY:
            self._body_progress(len(data))
        elif self._current is None and not self._pending:
            self._finish_idle()  # e.g. the drained body of an answered request ended
        else:
            self._deadline_kind = _NONE  # the application's turn
        if self._current is None and self._pending:
            self._run_next()
        elif len(self._pending) >= self.state.max_pipeline:
            self._hold_requests = True
            self._apply_reading()

    def eof_received(self) -> bool:
        # A half-close is not an abort: the client may still be reading, so
        # every response owed is written before the connection closes.
        self._eof = True
        if self._phase is _CLOSING:
            self._close()  # the FIN that ends the linger
            return True
        if self._phase is _PROXY:
            assert self._proxy is not None
            if not self._proxy.pending:
                # Opened and closed with nothing sent: a TCP health check
                # (AWS NLB's, for one), not worth a line each time.
                log.debug("%s closed before sending anything", _peer_text(self.client))
                self._proxy = None
                self._close(linger=False)
            else:
                self._refuse_proxy(ProxyHeaderError("the connection ended inside its PROXY "
                                                    "header"))
            return True
        if self._phase is not _OPEN:
            return True
        parsed = self.parser.state
        if parsed is _P_HEAD:
            self._refuse(ProtocolError(400, "request head cut short"))
        elif parsed is _P_BODY and self._draining:
            self._close()
        elif parsed is _P_BODY:
            self._refuse(ProtocolError(400, "request body cut short"))
        elif self._current is None and not self._pending:
            self._close()
        else:
            # Complete requests are owed responses. Their applications hear
            # that no more input comes: one waiting in receive() for the
            # client to leave (SSE, long polling) learns it now.
            if self._current is not None:
                self._current.input_closed()
            for exchange in self._pending:
                exchange.input_closed()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        state = self.state
        if self._phase is _CLOSING or self._phase is _CLOSED:
            state.leaving -= 1
        self._phase = _LOST
        self._proxy = None
        state.connections.discard(self)
        self._settled()
        self._deadline_kind = _NONE
        self._send_due = 0.0
        self._wake_drainers()
        current, parsing, pending = self._current, self._parsing, self._pending
        self._current = self._parsing = None
        self._pending = []
        if current is not None:
            current.client_gone()
        if parsing is not None and parsing is not current:
            parsing.client_gone()
        for exchange in pending:
            if exchange is not parsing:
                exchange.client_gone()  # never started: it lets its body go
        # No cycle is left (see the module's docstring, LOST).
        self.parser.release()
        self.transport = None
        self.adapter_state = None

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._current is None and self._pending and self._phase is _OPEN:
            self._run_next()  # held back while the client did not read

    # -- RequestHandler (called by the parser) ------------------------------

    def on_request(self, request: Request) -> None:
        self._requests += 1
        proxy = self._forwarded
        if proxy is not None:
            request.forwarded = proxy.resolve(request.headers, self.client, self.scheme,
                                              self.server, request.host)
        exchange = self.state.adapter.new_exchange(request, self)
        self._parsing = exchange
        self._pending.append(exchange)
        if request.upgrade:
            # What follows an upgrade head belongs to the other protocol
            # (the parser keeps what came in this read): read no more until
            # the application has answered, so that nothing is lost; the
            # socket's own buffer holds it (a WebSocket takes it over).
            self._hold_upgrade = True
            self._apply_reading()

    def on_body(self, data: bytes) -> None:
        if self._draining:
            self._draining += len(data)
            if self._draining > self.state.drain_limit:
                self._close()
            return
        if self._parsing is not None:
            self._parsing.feed_body(data)

    def on_request_complete(self) -> None:
        parsing, self._parsing = self._parsing, None
        if self._hold_body:
            # The exchange held back its own body, which is whole now: the
            # next request's bytes are no business of its buffer.
            self._hold_body = False
            self._apply_reading()
        if self._draining:
            self._draining = 0
        elif parsing is not None:
            # Cleared first: body_complete may run the application and end
            # its response at once (WSGI), and response_complete must then
            # see the body as read, not as left for draining.
            parsing.body_complete()

    # -- Channel (called by the exchange) -----------------------------------

    @property
    def keep_alive(self) -> bool:
        if self._phase is not _OPEN:
            return False
        if self.state.stopping and not self._pending:
            # RFC 9112 section 9.6: the close is announced on a response. A
            # request queued behind this one is still answered first.
            return False
        current = self._current
        # RFC 9110 section 10.1.1: the client waits for 100 Continue before
        # sending the body; without it, the body may or may not follow, so
        # the next request cannot be found: close after this response.
        return current is None or not (
            current.request.expect_continue and not self._continue_sent
            and self._parsing is current
        )

    def send_continue(self) -> None:
        current = self._current
        if (current is not None and current.request.expect_continue
                and not self._continue_sent and self._phase is _OPEN):
            self._continue_sent = True
            self.write(_CONTINUE)

    def write(self, data: bytes) -> None:
        if self._phase is _OPEN and self.transport is not None:
            self.transport.write(data)

    async def sendfile(self, file: IO[bytes], offset: int, count: int) -> None:
        loop = self.state.loop
        transport = self.transport
        if transport is None or self._phase is not _OPEN:
            return
        try:
            await loop.sendfile(transport, file, offset, count)
            return
        except NotImplementedError:
            pass  # uvloop has no sendfile: read and write in blocks instead
        file.seek(offset)
        while count > 0 and self._phase is _OPEN:
            block = file.read(min(count, 1 << 16))
            if not block:
                break
            count -= len(block)
            transport.write(block)
            if self._write_paused:
                await self.drain()

    def pause_reading(self) -> None:
        self._hold_body = True
        self._apply_reading()

    def resume_reading(self) -> None:
        self._hold_body = False
        self._apply_reading()

    def response_complete(self, keep_alive: bool) -> None:
        exchange, self._current = self._current, None
        if exchange is None or self._phase is not _OPEN:
            return
        state = self.state
        state.served += 1
        if state.access_log is not None:
            state.access_log(self, exchange, state.loop.time() - self._started)
        if self._parsing is exchange and self._error is None:
            keep_alive = self._drain_unread(exchange.request, keep_alive)
        self._continue_sent = False
        if self._pending and keep_alive:
            self._run_next()
        elif self._error is not None and (keep_alive or exchange.status == 0):
            self._send_error(self._error)
        elif not keep_alive:
            self._close()
        else:
            self._finish_idle()

    def abort(self) -> None:
        transport = self.transport
        if self._phase is _LOST or transport is None:
            return
        self._leave(_CLOSED)
        transport.abort()

    def upgrade(self, backend: Backend, session: WebSocketSession) -> WebSocketChannel:
        """The current exchange became a WebSocket: hand the socket over to
        a WebSocketConnection, which takes this one's place among the
        worker's connections. This object is then done (as if LOST, with
        no connection_lost to come: asyncio now calls the other)."""
        transport = self.transport
        assert transport is not None and self._phase is _OPEN
        state = self.state
        ws = WebSocketConnection(state, transport, backend, session, self._write_paused,
                                 self.client)
        rest = self.parser.upgrade_rest
        state.connections.discard(self)
        self._settled()
        self._phase = _LOST
        self._deadline_kind = _NONE
        self._send_due = 0.0
        self._current = self._parsing = None
        self._pending = []
        self._wake_drainers()
        self.parser.release()
        self.transport = None
        self.adapter_state = None
        transport.set_protocol(ws)
        if self._reading_paused:
            transport.resume_reading()
        ws.begin(rest)
        return ws

    # -- what the worker asks -----------------------------------------------

    def trust(self) -> None:
        """Judge whether the peer is a trusted proxy (--forwarded-allow-ips):
        once, when the connection is made, and again by whatever replaces
        `client` before the first request (the PROXY protocol's header)."""
        proxy = self.state.proxy_headers
        self._forwarded = proxy if proxy is not None and proxy.trusts(self.client) else None

    def check_deadline(self, now: float) -> bool:
        """Called by the sweep: act on a passed deadline; True if it did."""
        if self._send_due and now >= self._send_due:
            log.debug("%s left our response unread for %g s: aborted", self.client,
                      self.state.timeouts.send)
            self.abort()
            return True
        kind = self._deadline_kind
        if kind is _NONE or now < self._deadline:
            return False
        if kind is not _LINGER and self._reading_paused:
            return False  # we stopped reading: not the client's fault (re-armed on resume)
        if kind is not _LINGER and self._unread_input():
            # The loop has not read what the client sent (it was blocked):
            # the client kept its side; look again at the next sweep.
            self._deadline = now
            return False
        self._deadline_kind = _NONE
        if kind is _IDLE:
            self._close(linger=False)
        elif kind is _DRAIN:
            self._close()
        elif kind is _HEAD:
            self._refuse(ProtocolError(408, "request head not received in time"))
        elif kind is _BODY:
            self._refuse(ProtocolError(408, "request body not received in time"))
        elif kind is _PROXY_WAIT:
            self._refuse_proxy(ProxyHeaderError(
                f"no whole PROXY header within {self.state.timeouts.request_head:g} s"))
        else:  # _LINGER
            self._finish_linger()
        return True

    def shed_rank(self) -> float | None:
        """Where this connection stands when the worker must make room:
        lower goes first; None, never (the application has the turn, or the
        connection is brand new: most likely the newcomer's own kind)."""
        if self._phase is not _OPEN:
            if self._phase is _PROXY and self._fresh is None:
                return _TIER + self._since  # no whole PROXY header yet, slowly
            return None  # leaving already: it no longer counts
        if self._write_paused:
            return _TIER + self._since  # not reading what we send
        kind = self._deadline_kind
        if kind is _HEAD or kind is _BODY or kind is _DRAIN:
            return _TIER + self._since  # in the middle of a request, slowly
        if kind is _IDLE:
            if self._requests:
                return 2 * _TIER + self._since  # idle between requests
            if self._fresh is None:
                return _TIER + self._since  # connected, and silent since
        return None

    def going_away(self, code: int) -> None:
        """A graceful stop began. Nothing to do here: the next response says
        Connection: close, and an idle connection closes at its deadline."""

    def shed(self) -> None:
        """Close to make room (WorkerState.make_room chose this one)."""
        kind = self._deadline_kind
        if self._phase is _PROXY:
            self._close(linger=False)
        elif self._phase is not _OPEN or self._write_paused:
            self.abort()
        elif kind is _HEAD or kind is _BODY:
            self._refuse(ProtocolError(503, "the server is full: slowest connections closed"))
        else:
            self._close(linger=kind is _DRAIN)

    # -- internals ----------------------------------------------------------

    def _read_proxy_header(self, data: bytes) -> None:
        """Phase.PROXY: feed the header's reader; once the header is whole,
        take its addresses and hand what followed to the HTTP parser."""
        if self._fresh is not None:
            self._settled()
        reader = self._proxy
        assert reader is not None
        try:
            header = reader.feed(data)
        except ProxyHeaderError as exc:
            self._refuse_proxy(exc)
            return
        if header is None:
            return  # more to come, under the deadline set in connection_made
        self._proxy = None
        if header.source is not None:
            self.client, self.server = header.source, header.destination
            self.trust()  # the real client now: is it a trusted proxy?
        log.debug("PROXY v%d header (%s): client %s, server %s", header.version,
                  header.kind.value, self.client, self.server)
        self._phase = _OPEN
        self._set_deadline(_IDLE, self.state.timeouts.keep_alive)
        if reader.rest:
            self.data_received(reader.rest)

    def _refuse_proxy(self, error: ProxyHeaderError) -> None:
        """Close a connection whose PROXY header is missing or malformed,
        with nothing written: what it sent is not ours to answer."""
        log.info("closed %s (--proxy-protocol, a peer in --proxy-allow-ips): %s",
                 _peer_text(self.client), error)
        self._proxy = None
        self._close(linger=False)

    def _settled(self) -> None:
        """The connection sent its first bytes, went away, or stayed quiet
        for FRESH_SECONDS: it no longer counts as taking a slot."""
        fresh = self._fresh
        if fresh is not None:
            self._fresh = None
            fresh.cancel()  # drops its reference to this connection
            state = self.state
            state.fresh -= 1
            if state.on_room is not None:
                state.on_room()

    def _run_next(self) -> None:
        if self._in_run_next:
            return  # the loop below, further up the stack, will see it
        self._in_run_next = True
        try:
            while (self._current is None and self._pending and self._phase is _OPEN
                   and not self._write_paused):
                exchange = self._current = self._pending.pop(0)
                if self.state.access_log is not None:
                    self._started = self.state.loop.time()
                exchange.start()
            if self._hold_requests and len(self._pending) < self.state.max_pipeline:
                if self._error is None:
                    self._hold_requests = False
                    self._apply_reading()
        finally:
            self._in_run_next = False
        # An exchange that completed inside start() went through
        # response_complete, which already decided what comes next.

    def _drain_unread(self, request: Request, keep_alive: bool) -> bool:
        """The application answered without reading the whole body. If 100
        Continue was never sent, the client may not send the body at all
        (RFC 9110 section 10.1.1), so framing is lost: close. Otherwise the
        rest is read and thrown away, up to --drain-limit."""
        if request.expect_continue and not self._continue_sent:
            keep_alive = False
        elif request.content_length is not None:
            keep_alive = keep_alive and request.content_length <= self.state.drain_limit
        self._draining = 1
        if self._deadline_kind is _BODY:
            self._deadline_kind = _DRAIN
        # The exchange may have held the body back (its buffer was full);
        # nobody would let it go again, and the drain would stall.
        self._hold_body = False
        self._apply_reading()
        return keep_alive

    def _finish_idle(self) -> None:
        """Nothing in flight: answer a pending error, close, or wait."""
        if self._error is not None:
            self._send_error(self._error)
        elif self._eof or self.parser.state is _P_CLOSED:
            self._close()
        elif self.parser.state is _P_IDLE and not self._draining:
            self._set_deadline(_IDLE, self.state.timeouts.keep_alive)

    def _body_progress(self, size: int) -> None:
        """Body bytes came: a deadline of silence, which also asks a
        minimum rate once the first `request_body` seconds are spent (each
        byte buys 1/rate seconds; a trickle soon runs out)."""
        timeouts = self.state.timeouts
        kind = _DRAIN if self._draining else _BODY
        silence = self.state.now + _LAG + timeouts.request_body
        if self._deadline_kind is not kind:
            self._deadline_kind = kind
            self._since = self.state.now
            self._deadline = silence
        elif timeouts.min_body_rate:
            bought = self._deadline + size / timeouts.min_body_rate
            self._deadline = silence if silence < bought else bought
        else:
            self._deadline = silence

    def _unread_input(self) -> bool:
        """Are bytes (or the client's FIN) waiting in the socket, unread?"""
        transport = self.transport
        if transport is None or self._reading_paused:
            return False
        sock = transport.get_extra_info("socket")
        if sock is None or _poll is None:
            return False
        try:
            poller = _poll()
            poller.register(sock.fileno(), select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return False

    def _apply_reading(self) -> None:
        """Read, or not, as the holds say (a closing connection always
        reads: it must see the client's FIN)."""
        transport = self.transport
        if transport is None or self._phase is _LOST or self._phase is _CLOSED:
            return
        wanted = self._phase is _CLOSING or not (
            self._hold_body or self._hold_requests or self._hold_upgrade)
        if wanted and self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
            if self._deadline_kind is not _NONE and self._deadline_kind is not _LINGER:
                # The time we were not reading is not the client's: start over.
                self._set_deadline(self._deadline_kind, self._timeout_of(self._deadline_kind))
        elif not wanted and not self._reading_paused:
            self._reading_paused = True
            transport.pause_reading()

    def _timeout_of(self, kind: Deadline) -> float:
        timeouts = self.state.timeouts
        if kind is _IDLE:
            return timeouts.keep_alive
        if kind is _HEAD:
            return timeouts.request_head
        return timeouts.request_body

    def _refuse(self, error: ProtocolError) -> None:
        """Answer `error` once the responses already owed are written."""
        log.debug("refused request from %s: %s", self.client, error)
        self._error = error
        self._deadline_kind = _NONE  # what comes now is ours to do
        self.parser.close()
        self._hold_requests = True
        self._apply_reading()
        parsing, self._parsing = self._parsing, None
        if parsing is not None and parsing is not self._current:
            # A pipelined request that never started: it is not answered.
            if parsing in self._pending:
                self._pending.remove(parsing)
            parsing.client_gone()
        elif parsing is not None:
            parsing.client_gone()  # it ends with response_complete()
            return
        if self._current is None:
            if self._pending:
                # Good requests parsed in the same read as the bad one: they
                # are answered first; the last response_complete sends error.
                self._run_next()
            else:
                self._send_error(error)

    def _send_error(self, error: ProtocolError) -> None:
        self.write(encode_error_response(error.status, error.reason, self.state.server_header))
        self._close()

    def _close(self, linger: bool = True) -> None:
        """End the connection once what is queued is written: at once if the
        client is done sending, else through CLOSING (the linger). An idle
        connection needs no linger (`linger=False`): its last response went
        out long ago, and a request the client sends now is lost either way."""
        transport = self.transport
        if transport is None or self._phase is _CLOSED or self._phase is _LOST:
            return
        if not linger or self._eof or self._phase is _CLOSING or transport.is_closing() or \
                not transport.can_write_eof():
            self._leave(_CLOSED)
            transport.close()  # writes what is buffered, then closes
            return
        self._leave(_CLOSING)
        self.parser.close()
        transport.write_eof()
        self._set_deadline(_LINGER, LINGER_SECONDS)
        self._apply_reading()

    def _finish_linger(self) -> None:
        transport = self.transport
        if transport is None:
            return
        if transport.get_write_buffer_size():
            self.abort()  # our last bytes are still unread: give up on them
        else:
            self._leave(_CLOSED)
            transport.close()

    def _leave(self, phase: Phase) -> None:
        if self._phase is _OPEN or self._phase is _PROXY:
            self.state.leaving += 1
        self._phase = phase

    def _set_deadline(self, kind: Deadline, seconds: float) -> None:
        now = self.state.now
        self._deadline_kind = kind
        self._since = now
        self._deadline = now + _LAG + seconds
