"""One HTTP/1.1 connection: bytes in and out, timers, flow control.

The driver feeds received bytes to the core's RequestParser and queues the
requests it reports. Requests are answered strictly in order (pipelining,
RFC 9112 section 9.3.2): the next one starts only when the current
response is complete. The application side of each request is an Exchange
made by the adapter; the exchange reaches back through this object, which
implements the Channel contract of twincorn.exchange.

Deadlines are kept as plain numbers checked by the worker's once-a-second
sweep (WorkerState.sweep): setting one costs an assignment, not a timer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import IO, TYPE_CHECKING, Any, cast

from twincorn.http import ProtocolError, Request, RequestParser, encode_error_response
from twincorn.http.parser import BODY, CLOSED, HEAD, IDLE

if TYPE_CHECKING:
    from twincorn.exchange import Exchange
    from twincorn.server.state import WorkerState

from twincorn.server.state import FRESH_SECONDS

log = logging.getLogger("twincorn.error")

# What a deadline, once passed, means.
_IDLE, _HEAD, _BODY = 1, 2, 3
# WorkerState.now is the time of the last sweep, up to one sweep interval
# (a second) behind the real time. Deadlines are counted from one interval
# later, so that a timeout never fires early (timeout_keep_alive=1 would
# otherwise close a connection idle for a tenth of a second); a deadline may
# fire up to two intervals late instead.
_LAG = 1.0


def _address(info: Any) -> tuple[str, int] | None:
    if isinstance(info, tuple) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    return None


class HttpConnection(asyncio.Protocol):
    """The connection driver (one per accepted socket)."""

    def __init__(self, state: WorkerState) -> None:
        self.state = state
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.scheme = "http"
        self.adapter_state: Any = None
        self.parser = RequestParser(self, state.policy)
        self._pending: deque[Exchange] = deque()
        self._current: Exchange | None = None
        self._parsing: Exchange | None = None  # where body bytes go
        self._draining = 0  # >0: bytes of an answered request's body discarded
        self._error: ProtocolError | None = None  # to answer once in-flight ends
        self._eof = False  # the client shut down its sending side
        self._closed = False
        self._lost = False  # connection_lost was called
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._reading_paused = False
        self._in_run_next = False
        self._requests = 0  # requests parsed on this connection
        self._fresh = False  # counted in WorkerState.fresh
        self._deadline = 0.0
        self._deadline_kind = 0
        self._started = 0.0

    # -- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but
        # they have the same methods.
        self.transport = transport = cast(asyncio.Transport, transport)
        self.client = _address(transport.get_extra_info("peername"))
        self.server = _address(transport.get_extra_info("sockname"))
        state = self.state
        state.connections.add(self)
        state.fresh += 1
        self._fresh = True
        state.loop.call_later(FRESH_SECONDS, self._settled)
        if len(state.connections) > state.max_connections:
            log.warning("connection limit (%d) reached: 503", state.max_connections)
            self._send_error(ProtocolError(503, "too many connections"))
            return
        self._set_deadline(_IDLE, state.timeouts.keep_alive)

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if parser.state is IDLE:
            self._set_deadline(_HEAD, self.state.timeouts.request_head)
        try:
            parser.feed(data)
        except ProtocolError as exc:
            self._refuse(exc)
            return
        state = parser.state
        if state is BODY:
            self._set_deadline(_BODY, self.state.timeouts.request_body)
        elif state is not HEAD:
            self._deadline_kind = 0
        if self._current is None and self._pending:
            self._run_next()
        elif len(self._pending) >= self.state.max_pipeline:
            self.pause_reading()

    def eof_received(self) -> bool:
        # A half-close is not an abort: the client may still be reading, so
        # every response owed is written before the connection closes.
        self._eof = True
        state = self.parser.state
        if state is HEAD:
            self._refuse(ProtocolError(400, "request head cut short"))
        elif state is BODY and self._draining:
            self._close()
        elif state is BODY:
            self._refuse(ProtocolError(400, "request body cut short"))
        elif self._current is None and not self._pending:
            self._close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = self._lost = True
        self.state.connections.discard(self)
        if self._fresh:
            self._settled()
        self._deadline_kind = 0
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()
        current, self._current = self._current, None
        self._pending.clear()
        if current is not None:
            current.client_gone()
        elif self._parsing is not None:
            self._parsing.client_gone()
        self._parsing = None

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()

    # -- RequestHandler (called by the parser) ------------------------------

    def on_request(self, request: Request) -> None:
        if self._fresh:
            self._settled()
        self._requests += 1
        if self.state.stopping:
            request.keep_alive = False  # the response says Connection: close
        exchange = self.state.adapter.new_exchange(request, self)
        self._parsing = exchange
        self._pending.append(exchange)

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
        if self._draining:
            self._draining = 0
        elif parsing is not None:
            # Cleared first: body_complete may run the application and end
            # its response at once (WSGI), and response_complete must then
            # see the body as read, not as left for draining.
            parsing.body_complete()

    # -- Channel (called by the exchange) -----------------------------------

    @property
    def write_paused(self) -> bool:
        # A transport that is closing (the client reset the connection, or
        # it was aborted) drops what it is given and never pauses: until
        # connection_lost runs, a producer must wait in drain(), not spin.
        transport = self.transport
        return self._write_paused or (transport is not None and transport.is_closing())

    def write(self, data: bytes) -> None:
        if not self._closed and self.transport is not None:
            self.transport.write(data)

    def drain(self) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = self.state.loop.create_future()
        if not self._lost and self.write_paused:
            self._drain_waiters.append(waiter)
        else:
            waiter.set_result(None)
        return waiter

    async def sendfile(self, file: IO[bytes], offset: int, count: int) -> None:
        loop = self.state.loop
        transport = self.transport
        if transport is None or self._closed:
            return
        try:
            await loop.sendfile(transport, file, offset, count)
            return
        except NotImplementedError:
            pass  # uvloop has no sendfile: read and write in blocks instead
        file.seek(offset)
        while count > 0 and not self._closed:
            block = file.read(min(count, 1 << 16))
            if not block:
                break
            count -= len(block)
            transport.write(block)
            if self._write_paused:
                await self.drain()

    def pause_reading(self) -> None:
        if not self._reading_paused and not self._closed and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._reading_paused and not self._closed and self.transport:
            if len(self._pending) < self.state.max_pipeline:
                self._reading_paused = False
                self.transport.resume_reading()

    def response_complete(self, keep_alive: bool) -> None:
        exchange, self._current = self._current, None
        if exchange is None or self._closed:
            return
        state = self.state
        state.served += 1
        if state.access_log is not None:
            state.access_log(self, exchange, state.loop.time() - self._started)
        request = exchange.request
        if self._parsing is exchange and self._error is None:
            # The application answered without reading the whole body. If
            # 100 Continue was never sent the client may not send the body
            # at all (RFC 9110 section 10.1.1), so framing is lost: close.
            # Otherwise the rest is read and thrown away, up to a limit.
            if request.expect_continue:
                keep_alive = False
            elif request.content_length is not None:
                keep_alive = keep_alive and request.content_length <= state.drain_limit
            self._draining = 1
            # The exchange may have paused reading (its buffer was full);
            # nobody would ever resume it, and the drain would stall.
            self.resume_reading()
        keep_alive = keep_alive and not state.stopping
        if self._pending and keep_alive:
            self._run_next()
        elif self._error is not None and (keep_alive or exchange.status == 0):
            self._send_error(self._error)
        elif not keep_alive:
            self._close()
        else:
            self._finish_idle()

    def shutdown(self) -> None:
        """A graceful stop began: close when idle, else after this response.

        A connection that has not sent its first request yet (one just taken
        from the listen queue) gets a second to send it: closing it at once
        would fail a client that did nothing wrong.
        """
        if self._current is None and not self._pending:
            if self._requests or self.parser.state is not IDLE:
                if self.parser.state is IDLE:
                    self._close()
                return
            self._deadline_kind = _IDLE
            self._deadline = self.state.now + _LAG + 1.0
            return
        for exchange in (self._current, *self._pending):
            if exchange is not None:
                exchange.request.keep_alive = False

    def abort(self) -> None:
        self._closed = True
        if self.transport is not None:
            self.transport.abort()

    # -- internals ----------------------------------------------------------

    def _settled(self) -> None:
        """The connection sent its first request, went away, or stayed
        quiet for FRESH_SECONDS: it no longer counts as taking a slot."""
        if self._fresh:
            self._fresh = False
            state = self.state
            state.fresh -= 1
            if state.on_room is not None:
                state.on_room()

    def _run_next(self) -> None:
        if self._in_run_next:
            return  # the loop below, further up the stack, will see it
        self._in_run_next = True
        try:
            while self._current is None and self._pending and not self._closed:
                exchange = self._current = self._pending.popleft()
                if self.state.access_log is not None:
                    self._started = self.state.loop.time()
                exchange.start()
            if self._reading_paused and len(self._pending) < self.state.max_pipeline:
                self.resume_reading()
        finally:
            self._in_run_next = False
        # An exchange that completed inside start() went through
        # response_complete, which already decided what comes next.

    def _finish_idle(self) -> None:
        """Nothing in flight: answer a pending error, close, or wait."""
        if self._error is not None:
            self._send_error(self._error)
        elif self._eof or self.parser.state is CLOSED:
            self._close()
        elif self.parser.state is IDLE:
            self._deadline_kind = _IDLE
            self._deadline = self.state.now + _LAG + self.state.timeouts.keep_alive

    def _refuse(self, error: ProtocolError) -> None:
        """Answer `error` once the responses already owed are written."""
        log.debug("refused request from %s: %s", self.client, error)
        self._error = error
        self.parser.close()
        self.pause_reading()
        parsing, self._parsing = self._parsing, None
        if parsing is not None and parsing is not self._current:
            # A pipelined request that never started: it is not answered.
            if parsing in self._pending:
                self._pending.remove(parsing)
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

    def _close(self) -> None:
        if not self._closed and self.transport is not None:
            self._closed = True
            self.transport.close()  # writes what is buffered, then closes

    def _set_deadline(self, kind: int, seconds: float) -> None:
        self._deadline_kind = kind
        self._deadline = self.state.now + _LAG + seconds

    def check_deadline(self, now: float) -> None:
        """Called by the sweep: act on a passed deadline."""
        kind = self._deadline_kind
        if not kind or now < self._deadline:
            return
        self._deadline_kind = 0
        if kind == _IDLE:
            self._close()
        elif kind == _HEAD:
            self._refuse(ProtocolError(408, "request head not received in time"))
        elif self._draining:
            # The body being thrown away belongs to a request already
            # answered: a 408 now would answer no request. Just close.
            self._close()
        else:
            self._refuse(ProtocolError(408, "request body not received in time"))
