"""The lean WebSocket echo: `twincorn load ws://HOST/PATH`, as fast as one
Python process can drive it.

ws_echo.py says what the echo does (one message in flight per socket, the
same message each time, a reply of another type, length or content an
"echo mismatch"); this is how the URL-only run does it. As for a bare HTTP
URL (fastpath.py), nothing is made per round trip but the frames: each
socket sends its next message from its own data_received, as soon as the
echo of the last one came (closed model), or takes the next arrival (open
model). The drivers are fastpath.py's (LeanClosed, LeanOpen), aimed at a
WebSocket instead of a request: `WsAim` gives them the message, the rows
("WS connect /echo" for each handshake, "WS /echo" for the round trips)
and a connection that is a LeanWebSocket, ws_connection.py's client
connection reporting to the driver.

Per round trip that leaves: one send and one recv (uvloop, in C), the
library's framing (websockets' ClientProtocol, its C masking), one
comparison with the message sent, two perf_counter() calls, one histogram
record. Timeouts are swept twice a second, as for HTTP.

A socket that fails a round trip (closed by the server, reset, a protocol
error, the timeout) is dropped, so that a late echo cannot pass for the
next message's, and its user opens a new one (after a failed connect:
10 ms, doubling up to 1 s). At the end of the run each open socket gets a
close frame (1000) and up to STOP_CLOSE_SECONDS for the server's answer.
"""

from __future__ import annotations

import asyncio
import ssl
from time import perf_counter
from typing import Any

from websockets.client import ClientProtocol
from websockets.http11 import Request

from twincorn.load.connection import RequestError
from twincorn.load.fastpath import LeanClosed, LeanConn, LeanDriver, LeanOpen
from twincorn.load.ws_client import STOP_CLOSE_SECONDS, handshake
from twincorn.load.ws_connection import MISMATCH, WS, Message, WsConnection
from twincorn.load.ws_echo import WsEcho, mismatch

#: LeanWebSocket.status of a reply that is not the echo (>= 400: the
#: drivers then call record_status, as for an HTTP error).
_NOT_THE_ECHO = 1000


class LeanWebSocket(WsConnection):
    """A client WebSocket that makes its driver's round trips by itself."""

    def __init__(self, driver: WsAim, loop: asyncio.AbstractEventLoop,
                 protocol: ClientProtocol, request: Request) -> None:
        super().__init__(loop, protocol, request)
        self.driver = driver
        self.busy = False
        self.sent_at = 0.0
        self.scheduled = 0.0
        self.status = 0  # _NOT_THE_ECHO for a reply that is not
        self.size = 0
        self.problem = ""  # why, then
        self._gone = False  # connection_lost came

    # -- LeanConn -----------------------------------------------------------------------

    def send(self, data: Any, head_only: bool = False) -> None:
        self.busy = True
        self.sent_at = perf_counter()
        WsConnection.send(self, data)

    def fail(self, error: RequestError) -> None:
        """The sweep's timeout: the round trip fails, the socket is dropped."""
        self._fail(error)

    def close(self) -> None:
        self.start_close(1000, "")

    # -- WsConnection's events ----------------------------------------------------------

    def _deliver(self, now: float, message: Message) -> None:
        driver = self.driver
        if not self.busy:
            if driver.stopping:
                return  # the echo of a round trip the end of the run abandoned
            # Nothing was sent that this could answer (the server spoke
            # first, or twice): a failure of the row, without a latency.
            driver.context.collector.no_response(
                driver.tally, MISMATCH, f"{MISMATCH}: a message came with none sent")
            return
        self.busy = False
        self.size = len(message)
        sent = driver.request
        if message == sent:
            self.status = 0
        else:
            self.status = _NOT_THE_ECHO
            self.problem = mismatch(sent, message) or MISMATCH
        driver.completed(self)

    def _fail(self, error: RequestError) -> None:
        super()._fail(error)
        if self.busy:
            self.busy = False
            self.driver.failed(self, self.error or error)
            if not self._gone:
                # Not from connection_lost: a transport aborted in there
                # left uvloop's loop.close() waiting for ever.
                self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone = True
        super().connection_lost(exc)


class WsAim(LeanDriver):
    """What turns fastpath.py's drivers into the WebSocket echo's: listed
    first among a driver's bases (LeanWsClosed, LeanWsOpen)."""

    timeout_text = "receive timeout: no message within"
    echo: WsEcho

    def aim(self, target: Any) -> None:
        assert isinstance(target, WsEcho)
        self.echo = target
        self.request = target.message
        self.head_only = False
        collector = self.context.collector
        self.tally = collector.tally(WS, target.name)
        self.connect_tally = collector.tally(WS, f"connect {target.name}")
        self.headers = dict(target.headers)

    def tls(self) -> ssl.SSLContext:
        """The TLS context of a wss:// URL (load/tls.py: --insecure, --ca-certs...)."""
        return self.context.tls.context()

    async def open_connection(self) -> LeanConn | RequestError:
        context = self.context
        conn, error = await handshake(
            self.loop, self.echo.url, lambda loop, protocol, request:
            LeanWebSocket(self, loop, protocol, request),
            None, self.headers, "", self.tls, context.connect_timeout, context.timeout,
        )
        if error is not None:
            conn.abort()
            return error
        us = int((conn.handshake_done - conn.started) * 1_000_000)
        context.collector.record(self.connect_tally, us, 0)
        return conn

    def connect_failed(self, error: RequestError) -> None:
        self.context.collector.no_response(self.connect_tally, error.kind, error.message)

    def record_status(self, conn: LeanConn) -> None:
        assert isinstance(conn, LeanWebSocket)
        self.context.collector.failure(self.tally, MISMATCH, conn.problem)

    async def stop(self) -> None:
        # RFC 6455 section 7.1.2: a close frame each, then the server closes.
        self.stopping = True
        closing = []
        for conn in list(self.conns):
            assert isinstance(conn, LeanWebSocket)
            conn.busy = False  # abandoned: not recorded
            if conn.open:
                conn.close()
                closing.append(conn.lost)
        if closing:
            await asyncio.wait(closing, timeout=STOP_CLOSE_SECONDS)
        await super().stop()


class LeanWsClosed(WsAim, LeanClosed):
    """Closed model: N sockets, each sending its next message as soon as the
    echo of the last came."""


class LeanWsOpen(WsAim, LeanOpen):
    """Open model: each arrival at --rate is one round trip, on an idle socket
    (opened up to --max-in-flight; beyond that it waits, up to --max-queue)."""
