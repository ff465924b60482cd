"""WebSockets in a scenario: `self.client.websocket(...)`, timed and counted.

    async with self.client.websocket("/ws", subprotocols=["chat"]) as ws:
        await ws.send("hello")               # opens a round trip...
        reply = await ws.receive()           # ...which the next message closes
        await ws.send(b"tick", reply=False)  # counted, not timed
    # leaving the block sends a close frame (1000) and waits for the server's

`ws = await self.client.websocket("/ws")` opens one without a block; it is
closed by `await ws.close()`, or at the end of the run.

Every step is a row of the statistics, of Type `WS` (the HTTP rows have
their method there), named after the socket's name (the URL as written, or
`name=`), unless the step is given a `name=` of its own:

    WS connect /ws   the handshake: TCP connect to the 101 response
    WS /ws           a round trip: from a send to the message that answers it
    WS send /ws      a message sent with reply=False: counted, no latency
    WS recv /ws      a message received with no round trip open (a push):
                     counted, no latency
    WS close /ws     close(): from our close frame to the server's TCP close

Round trips are matched in order: each message received answers the oldest
send still open (one at a time, the usual case, or several pipelined). A
round trip's latency runs to the reply's arrival (when its bytes came, not
when receive() was called); in the open model the task's first round trip
(or request) counts from the arrival's scheduled time, as for HTTP.

A step that cannot complete is a failure of its row, one of: handshake
refused (with the HTTP status), closed by the server (code and reason),
timeout (connect, handshake, receive, close), reset (connection reset or
closed without a close frame), protocol error (from the library, or text
that is not UTF-8). It is then raised as WebSocketError, which ends the
task without being counted again as the task's exception; catch it to go on.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable, Generator, Mapping, Sequence
from time import perf_counter
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urljoin, urlsplit

from websockets.client import ClientProtocol
from websockets.http11 import Request
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from twincorn.load.connection import RESET, TIMEOUT, RequestError, connect_error
from twincorn.load.context import WebSocketError
from twincorn.load.response import Headers
from twincorn.load.stats import Tally
from twincorn.load.ws_connection import (
    CLOSED_BY_SERVER,
    NO_REPLY,
    WS,
    Message,
    WsConnection,
    close_text,
)

if TYPE_CHECKING:
    from twincorn.load.client import HttpClient

_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
# At the end of a run (or a task cancelled by it), how long a close may wait
# for the server's answer before the connection is dropped.
STOP_CLOSE_SECONDS = 2.0


def ws_url(base: str, url: str) -> str:
    """The absolute ws:// or wss:// URL of `url`: a relative one is joined to
    the base (the user's host), and http becomes ws, https wss."""
    absolute = urljoin(_as_ws(base), url) if base else url
    parts = urlsplit(absolute)
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise ValueError(
            f"cannot open a WebSocket to {url!r}: give the host (-H, a User's host), "
            "or a full ws:// or wss:// URL"
        )
    return _as_ws(absolute)


def _as_ws(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in _SCHEMES:
        return f"{_SCHEMES[scheme.lower()]}://{rest}"
    return url


class WebSocketContext:
    """What `client.websocket(...)` returns: await it, or use it with
    `async with` (nothing is sent until then)."""

    __slots__ = ("_args", "_client", "_socket", "_used")

    def __init__(
        self,
        client: HttpClient,
        url: str,
        name: str,
        subprotocols: Sequence[str] | None,
        headers: Mapping[str, str] | None,
        timeout: float | None,
    ) -> None:
        self._client = client
        self._args = _Options(url, name, subprotocols, headers, timeout)
        self._socket: WebSocket | None = None
        self._used = False

    def __del__(self) -> None:
        if not self._used:
            self._client.dropped_unsent(f"self.client.websocket({self._args.url!r})")

    def __await__(self) -> Generator[Any, None, WebSocket]:
        self._used = True
        return self._open().__await__()

    async def _open(self) -> WebSocket:
        ws = WebSocket(self._client, self._args)
        await ws._connect()
        return ws

    async def __aenter__(self) -> WebSocket:
        self._used = True
        self._socket = await self._open()
        return self._socket

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._socket is not None:
            await self._socket.close()


class _Options:
    __slots__ = ("headers", "name", "subprotocols", "timeout", "url")

    def __init__(
        self,
        url: str,
        name: str,
        subprotocols: Sequence[str] | None,
        headers: Mapping[str, str] | None,
        timeout: float | None,
    ) -> None:
        self.url = url
        self.name = name
        self.subprotocols = list(subprotocols) if subprotocols is not None else None
        self.headers = dict(headers) if headers else {}
        self.timeout = timeout


class WebSocket:
    """One open WebSocket of a user (see the module docstring)."""

    def __init__(self, client: HttpClient, options: _Options) -> None:
        self.client = client
        self.context = client.context
        self.url = ws_url(client.base_url, options.url)
        self.name = options.name
        self.timeout = client.context.timeout if options.timeout is None else options.timeout
        self._options = options
        self._conn: WsConnection | None = None
        # Round trips sent and not yet answered: (sent at, row, scheduled at).
        self._open: deque[tuple[float, Tally, float]] = deque()
        self._closed = False  # close() was called
        self._last: Tally | None = None  # the row of the last round trip answered

    # -- what the scenario reads --------------------------------------------------------

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server chose (None: none)."""
        return None if self._conn is None else self._conn.protocol.subprotocol

    @property
    def response_headers(self) -> Headers:
        """The headers of the handshake's 101 response."""
        response = None if self._conn is None else self._conn.response
        if response is None:
            return Headers([])
        return Headers([(k.encode("latin-1"), v.encode("latin-1"))
                        for k, v in response.headers.raw_items()])

    @property
    def open(self) -> bool:
        return self._conn is not None and self._conn.open and not self._closed

    @property
    def close_code(self) -> int | None:
        """The code of the server's close frame (None: none came yet)."""
        received = None if self._conn is None else self._conn.protocol.close_rcvd
        return None if received is None else received.code

    @property
    def close_reason(self) -> str | None:
        received = None if self._conn is None else self._conn.protocol.close_rcvd
        return None if received is None else received.reason

    def in_flight_since(self) -> list[float]:
        return [sent for sent, _, _ in self._open]

    # -- the steps ----------------------------------------------------------------------

    async def send(self, message: Message, *, reply: bool = True, name: str | None = None) -> None:
        """Send a text (str) or binary (bytes) message. With reply=True it
        opens a round trip that the next message received answers; with
        reply=False it is counted under "send NAME" and not timed."""
        if not isinstance(message, str | bytes | bytearray | memoryview):
            raise TypeError(f"send() takes str or bytes, not {type(message).__name__}")
        if self._closed:
            raise RuntimeError(f"send() on a WebSocket already closed ({self.name})")
        self.context.take()
        tally = self._tally(name, "" if reply else "send")
        conn = self._conn
        assert conn is not None
        if not conn.open:
            self._failed(tally, self._ended_error(), count=True)
        if reply:
            self._open.append((perf_counter(), tally, self.client.scheduled))
            self.client.scheduled = 0.0
            self.context.in_flight += 1
        else:
            self.context.collector.count(tally)
        conn.send(message if isinstance(message, str | bytes) else bytes(message))

    async def receive(self, timeout: float | None = None, *, name: str | None = None) -> Message:
        """The next message (str for text, bytes for binary), waiting at
        most `timeout` seconds (default: the run's --timeout)."""
        if self._closed:
            raise RuntimeError(f"receive() on a WebSocket already closed ({self.name})")
        conn = self._conn
        assert conn is not None
        item = conn.next_message()
        if item is None:
            await self._wait(conn, self.timeout if timeout is None else timeout, name)
            item = conn.next_message()
            assert item is not None
        arrived, message = item
        collector = self.context.collector
        if self._open:
            sent, tally, scheduled = self._open.popleft()
            self.context.in_flight -= 1
            us = int((arrived - sent) * 1_000_000)
            corrected = int((arrived - scheduled) * 1_000_000) if scheduled else us
            collector.record(tally, corrected, len(message), us)
            self._last = tally
        else:
            collector.count(self._tally(name, "recv"), len(message))
        return message

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame and wait for the server's answer (RFC 6455
        section 7.1.2); counted under "close NAME" (not at the run's end)."""
        conn = self._conn
        if self._closed or conn is None:
            return
        self._closed = True
        self.client.websockets.discard(self)
        stopping = self.context.stopping
        self._drop_round_trips(None if stopping else "no reply: closed before it came")
        if conn.lost.done() or not conn.open:  # the server closed it first
            await _wait_for(conn.lost, STOP_CLOSE_SECONDS)
            conn.abort()
            return
        started = perf_counter()
        conn.start_close(code, reason)
        limit = min(self.timeout, STOP_CLOSE_SECONDS) if stopping else self.timeout
        done = await _wait_for(conn.lost, limit)
        if not done:
            conn.abort()
        if stopping:
            return
        tally = self._tally(None, "close")
        if not done:
            error = RequestError(TIMEOUT, f"close timeout: the server did not close "
                                          f"within {limit:g}s")
            self.context.collector.no_response(tally, error.kind, error.message)
        elif conn.error is not None:
            self.context.collector.no_response(tally, conn.error.kind, conn.error.message)
        elif (answer := conn.protocol.close_rcvd) and answer.code not in (code, 1000, 1001):
            # The server usually echoes our code (RFC 6455 section 5.5.1); an
            # error code instead says something went wrong on its side.
            self.context.collector.no_response(
                tally, CLOSED_BY_SERVER,
                f"closed by the server: {close_text(answer.code, answer.reason)}")
        else:
            self.context.collector.record(tally, int((perf_counter() - started) * 1_000_000), 0)

    def failure(self, message: str, *, kind: str = "check") -> None:
        """Count the last round trip answered as failed, with this message
        (a reply that is not what the scenario expected)."""
        if self._last is None:
            raise RuntimeError("failure(): no round trip of this WebSocket was answered yet")
        self.context.collector.failure(self._last, kind, message)

    def abort(self) -> None:
        """Drop the connection at once, without a close frame or a count."""
        self._closed = True
        self.client.websockets.discard(self)
        self._drop_round_trips(None)
        if self._conn is not None:
            self._conn.abort()

    # -- inside ------------------------------------------------------------------------

    async def _connect(self) -> None:
        client, context = self.client, self.context
        context.take()
        tally = self._tally(None, "connect")
        context.in_flight += 1
        try:
            error = await self._handshake()
        finally:
            context.in_flight -= 1
        if error is not None:
            self._failed(tally, error, count=True)
        conn = self._conn
        assert conn is not None
        context.collector.record(tally, int((conn.handshake_done - conn.started) * 1_000_000), 0)
        client.websockets.add(self)

    async def _handshake(self) -> RequestError | None:
        """Open the connection and wait for the 101; the error, or None."""
        options, client = self._options, self.client
        cookies = ("; ".join(f"{k}={v}" for k, v in client.cookies.items())
                   if client.cookies else "")
        conn, error = await handshake(
            client.loop, self.url, WsConnection, options.subprotocols, options.headers,
            cookies, client.tls, self.context.connect_timeout, self.timeout,
        )
        self._conn = conn
        return error

    async def _wait(self, conn: WsConnection, timeout: float, name: str | None) -> None:
        """Wait for a message; on a timeout or the end of the connection,
        fail the open round trips (or the receive itself) and raise."""
        while not conn.messages:
            if not conn.open:
                self._fail_step(name, self._ended_error())
            if not await conn.wait(timeout):
                self._fail_step(name, RequestError(
                    TIMEOUT, f"receive timeout: no message within {timeout:g}s"))

    def _fail_step(self, name: str | None, error: RequestError) -> None:
        """A receive that cannot complete: each open round trip fails with
        `error` (or, with none open, the receive's own row); raised."""
        if self._open:
            self._drop_round_trips(error.message, error.kind)
            raise WebSocketError(error.kind, error.message)
        self._failed(self._tally(name, "recv"), error, count=True)

    def _drop_round_trips(self, message: str | None, kind: str = NO_REPLY) -> None:
        """Forget the open round trips: failed with `message`, or (None)
        abandoned uncounted, as requests in flight are at the end of a run."""
        while self._open:
            _, tally, _ = self._open.popleft()
            self.context.in_flight -= 1
            if message is not None:
                self.context.collector.no_response(tally, kind, message)

    def _failed(self, tally: Tally, error: RequestError, count: bool) -> None:
        if count:
            self.context.collector.no_response(tally, error.kind, error.message)
        raise WebSocketError(error.kind, error.message)

    def _ended_error(self) -> RequestError:
        conn = self._conn
        if conn is not None and conn.error is not None:
            return conn.error
        return RequestError(RESET, "the WebSocket is closed")

    def _tally(self, name: str | None, step: str) -> Tally:
        if name is None:
            name = f"{step} {self.name}" if step else self.name
        return self.context.collector.tally(WS, name)


C = TypeVar("C", bound=WsConnection)


async def handshake(
    loop: asyncio.AbstractEventLoop,
    url: str,
    factory: Callable[[asyncio.AbstractEventLoop, ClientProtocol, Request], C],
    subprotocols: Sequence[str] | None,
    headers: Mapping[str, str],
    cookies: str,
    tls: Callable[[], ssl.SSLContext],
    connect_timeout: float,
    timeout: float,
) -> tuple[C, RequestError | None]:
    """Open a WebSocket to `url` (a `factory` connection: WsConnection, or
    the lean echo's) and wait for the 101: the connection, with its
    `started` and `handshake_done` times, and the error or None. A
    connection that never connected is returned too, unconnected."""
    uri = parse_uri(url)
    offered = [Subprotocol(s) for s in subprotocols] if subprotocols is not None else None
    protocol = ClientProtocol(uri, subprotocols=offered, max_size=None)
    request = protocol.connect()
    given = {name.lower() for name in headers}
    if "user-agent" not in given:
        from twincorn.load.client import USER_AGENT

        request.headers["User-Agent"] = USER_AGENT
    for key, value in headers.items():
        if key.lower() in request.headers:
            del request.headers[key]
        request.headers[key] = value
    if cookies and "cookie" not in given:
        request.headers["Cookie"] = cookies
    started = perf_counter()
    try:
        async with asyncio.timeout(connect_timeout):
            _, conn = await loop.create_connection(
                lambda: factory(loop, protocol, request),
                uri.host,
                uri.port,
                ssl=tls() if uri.secure else None,
            )
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        never = factory(loop, protocol, request)  # never connected
        never.started = never.handshake_done = started
        return never, connect_error(exc, connect_timeout)
    conn.started = started
    try:
        answered = await _wait_for(conn.handshake, timeout)
    except BaseException:
        # Cancelled (the end of the run): nobody else holds this connection,
        # and a loop closed with it open waits for it for ever (uvloop).
        conn.abort()
        raise
    if not answered:
        conn.abort()
        return conn, RequestError(TIMEOUT, f"timeout: no handshake response within "
                                           f"{timeout:g}s")
    conn.handshake_done = perf_counter()
    return conn, conn.error


async def _wait_for(future: asyncio.Future[None], timeout: float) -> bool:
    """Wait for `future` at most `timeout` seconds: whether it is done. (Not
    asyncio.timeout: this also runs in a task being cancelled, in __aexit__.)"""
    if future.done():
        return True
    done, _ = await asyncio.wait({future}, timeout=timeout)
    return bool(done)
