"""The ASGI websocket scope: one WebSocket, from its upgrade request to its end.

A request asking for a WebSocket (ws.is_websocket_request) gets a
`WebSocketExchange` instead of an HTTP one (ASGIAdapter.new_exchange). It
starts as any exchange, on the HTTP connection: the backend checks the
handshake (an invalid one is answered with its HTTP status, and the
application never sees it), then the application runs and hears
`websocket.connect`. What it sends first decides, `Phase`:

    CONNECTING -> OPEN        websocket.accept: the 101 goes out, the
                              connection is handed to server/websocket.py
               -> DENIED      websocket.close (403), a failure or a return
                              (500), the handshake deadline (503)
               -> RESPONDING  websocket.http.response.start: the app's own
                              denial (the websocket.http.response extension)
    RESPONDING -> DENIED      its last websocket.http.response.body
    OPEN       -> CLOSING     websocket.close: our close frame is out
    OPEN, CLOSING -> CLOSED   the close handshake ended, or the socket went
                              (on_closed): receive() says websocket.disconnect
    CONNECTING -> CLOSED      the client left before an answer

Messages wait in a queue for receive(); at `max_queue` the connection stops
reading frames until the application takes one (nothing grows in memory but
the socket's own buffer, and the client's sends slow down: back-pressure).
send() of a message waits while the socket's send buffer is full.

After CLOSED (or DENIED), send() raises ClientDisconnected, the OSError the
spec asks for; receive() keeps answering websocket.disconnect.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from dataclasses import dataclass
from time import monotonic
from typing import TYPE_CHECKING, Any

from twincorn.asgi_spec import ASGI_VERSION, ClientDisconnected, Message, Scope, scope_path
from twincorn.exchange import SERVING, Channel, WebSocketChannel
from twincorn.http import Request
from twincorn.http.errors import ResponseError
from twincorn.http.request import RequestLine
from twincorn.http.response import ResponseWriter, encode_error_response
from twincorn.ws.core import (
    CLOSE_ABNORMAL,
    CLOSE_INTERNAL_ERROR,
    CLOSE_NORMAL,
    Backend,
    Limits,
    Opener,
    Refusal,
    valid_close_code,
)

if TYPE_CHECKING:
    from twincorn.asgi import ASGIAdapter

log = logging.getLogger("twincorn.error")


@dataclass(frozen=True, slots=True)
class WebSocketOptions:
    """A worker's WebSocket settings (the --ws-* ones the adapter uses)."""

    backend: str  # "websockets" or "wsproto"
    open: Opener  # ws.core.opener(backend)
    limits: Limits
    max_queue: int = 32  # messages received and not yet read by the app
    handshake_timeout: float = 10.0  # for the app's accept (or denial)


class Phase(enum.Enum):
    """Where the WebSocket stands; the module's docstring draws the moves."""

    CONNECTING = "connecting"
    RESPONDING = "responding"
    DENIED = "denied"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


_CONNECTING, _RESPONDING, _DENIED = Phase.CONNECTING, Phase.RESPONDING, Phase.DENIED
_OPEN, _CLOSING, _CLOSED = Phase.OPEN, Phase.CLOSING, Phase.CLOSED
_CONNECT: Message = {"type": "websocket.connect"}
_EXTENSIONS: dict[str, dict[str, object]] = {"websocket.http.response": {}}



def _payload(text: Any, data: Any) -> str | bytes:
    """What a websocket.send message carries, checked: exactly one of its
    'text' (a str) and 'bytes' (bytes-like)."""
    if (text is None) == (data is None):
        raise RuntimeError("websocket.send needs exactly one of 'bytes' and 'text'")
    if text is not None:
        if not isinstance(text, str):
            raise TypeError(f"websocket.send 'text' must be str, not {type(text).__name__}")
        return text
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"websocket.send 'bytes' must be bytes, not {type(data).__name__}")
    return bytes(data)


class WebSocketExchange:
    """One WebSocket's scope, receive and send, and its application call."""

    def __init__(self, adapter: ASGIAdapter, request: Request, channel: Channel,
                 options: WebSocketOptions) -> None:
        self.adapter = adapter
        self.request = request
        self.channel = channel
        self.options = options
        self.status = 0  # 101 once accepted; the HTTP status of a denial
        self.bytes_sent = 0  # of the denial's body; once open, of the frames sent
        self.bytes_received = 0  # of the frames received (on_finished)
        self.phase = _CONNECTING
        self._backend: Backend | None = None
        self._socket: WebSocketChannel | None = None
        self._writer: ResponseWriter | None = None  # a denial response
        self._connect_given = False
        self._queue: deque[str | bytes] = deque()
        self._max_queue = options.max_queue
        self._paused = False
        self._close: tuple[int, str] = (CLOSE_ABNORMAL, "")  # as websocket.disconnect says
        self._waiter: asyncio.Future[None] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    # -- Exchange (called by the HTTP connection, before the upgrade) -----

    def start(self) -> None:
        opened = self.options.open(self.request, self.options.limits)
        if isinstance(opened, Refusal):
            self.status = opened.status
            self.phase = _DENIED
            response = encode_error_response(opened.status, opened.reason,
                                             self.adapter.server_header)
            if opened.headers:  # (Allow, Upgrade...: after the status line)
                head, _, rest = response.partition(b"\r\n")
                extra = b"".join(b"%s: %s\r\n" % field for field in opened.headers)
                response = head + b"\r\n" + extra + rest
            self.channel.write(response)
            self.channel.response_complete(False)
            return
        self._backend = opened
        loop = self.adapter.loop
        self._deadline = loop.call_later(self.options.handshake_timeout, self._too_slow)
        context = self.adapter.context.copy()
        self._task = loop.create_task(self._run(self._scope(opened)), context=context)

    def feed_body(self, data: bytes) -> None:
        """An upgrade request has no body (the parser refuses one)."""

    def body_complete(self) -> None:
        """Nothing to do: the application was started by start()."""

    def client_gone(self) -> None:
        if self.phase is _CONNECTING or self.phase is _RESPONDING:
            self._ended(CLOSE_ABNORMAL, "")

    def input_closed(self) -> None:
        # The client's FIN before our answer: it can send no frame, ever.
        self.client_gone()

    def _scope(self, backend: Backend) -> Scope:
        adapter, request, channel = self.adapter, self.request, self.channel
        path, raw_path = scope_path(adapter.root_path, adapter.raw_root, request.path)
        client, scheme, server = channel.client, channel.scheme, channel.server
        headers = request.headers
        forwarded = request.forwarded
        if forwarded is not None:  # a trusted proxy's word (http/forwarded.py)
            client, scheme, server = forwarded.client, forwarded.scheme, forwarded.server
            headers = forwarded.headers(headers)
        return {
            "type": "websocket",
            "asgi": ASGI_VERSION,
            "http_version": request.http_version,
            "scheme": "wss" if scheme == "https" else "ws",
            "server": server,
            "client": client,
            "root_path": adapter.root_path,
            "path": path,
            "raw_path": raw_path,
            "query_string": request.query,
            "headers": headers,
            "subprotocols": backend.subprotocols,
            "state": adapter.lifespan.state.copy() if adapter.lifespan.state else {},
            "extensions": _EXTENSIONS if channel.tls is None else {
                **_EXTENSIONS, "tls": channel.tls.scope},
        }

    # -- WebSocketSession (called by server/websocket.py, once open) -------

    def on_message(self, data: str | bytes) -> None:
        queue = self._queue
        queue.append(data)
        if len(queue) >= self._max_queue and not self._paused:
            self._paused = True
            assert self._socket is not None
            self._socket.pause_reading()
        waiter = self._waiter  # _wake(), inline: once per message
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def on_closed(self, code: int, reason: str) -> None:
        self._ended(code, reason)

    def on_finished(self, seconds: float, bytes_in: int, bytes_out: int) -> None:
        self.bytes_sent = bytes_out
        self.bytes_received = bytes_in

    # -- receive and send ------------------------------------------------

    async def receive(self) -> Message:
        if not self._connect_given:
            self._connect_given = True
            return _CONNECT
        while True:
            queue = self._queue
            if queue:
                data = queue.popleft()
                if self._paused and len(queue) < self._max_queue:
                    self._paused = False
                    if self._socket is not None:
                        self._socket.resume_reading()
                if type(data) is str:
                    return {"type": "websocket.receive", "text": data, "bytes": None}
                return {"type": "websocket.receive", "bytes": data, "text": None}
            if self.phase is _CLOSED or self.phase is _DENIED:
                code, reason = self._close
                return {"type": "websocket.disconnect", "code": code, "reason": reason}
            waiter = self._waiter = self.adapter.loop.create_future()
            await waiter

    async def send(self, message: Message) -> None:
        kind = message["type"]
        phase = self.phase
        if phase is _OPEN:
            if kind == "websocket.send":
                # _send_message's work, here: one coroutine less per message.
                text, data = message.get("text"), message.get("bytes")
                if type(data) is bytes and text is None:
                    payload: str | bytes = data
                elif type(text) is str and data is None:
                    payload = text
                else:
                    payload = _payload(text, data)
                socket = self._socket
                assert socket is not None
                if socket.write_paused:
                    await socket.drain()
                    if self.phase is not _OPEN:
                        raise ClientDisconnected(f"the WebSocket is {self.phase.value}")
                socket.send(payload)
            elif kind == "websocket.close":
                self._app_closes(message)
            else:
                raise RuntimeError(f"unexpected ASGI message {kind!r} on an open WebSocket")
        elif phase is _CONNECTING:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                self._deny(403)
            elif kind == "websocket.http.response.start":
                self._respond(message)
            else:
                raise RuntimeError(f"unexpected ASGI message {kind!r} before "
                                   "websocket.accept (or websocket.close)")
        elif phase is _RESPONDING:
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"unexpected ASGI message {kind!r} during a denial "
                                   "response: websocket.http.response.body expected")
            await self._respond_body(message)
        elif phase is _CLOSING and kind in ("websocket.send", "websocket.close"):
            raise ClientDisconnected("the WebSocket is closing: websocket.close was sent")
        else:
            raise ClientDisconnected(f"the WebSocket is {phase.value}")

    def _app_closes(self, message: Message) -> None:
        code = message.get("code") or CLOSE_NORMAL
        reason = message.get("reason") or ""
        if not isinstance(code, int) or not valid_close_code(code):
            raise ValueError(f"websocket.close code {code!r} cannot be sent (RFC 6455 "
                             "section 7.4: 1000-1003, 1007-1014 or 3000-4999)")
        if not isinstance(reason, str) or len(reason.encode("utf-8")) > 123:
            raise ValueError("websocket.close reason must be a str of at most 123 bytes "
                             "in UTF-8 (RFC 6455 section 5.5: a control frame's 125)")
        self.phase = _CLOSING
        assert self._socket is not None
        self._socket.close(code, reason)

    def _accept(self, message: Message) -> None:
        backend = self._backend
        assert backend is not None
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and not isinstance(subprotocol, str):
            raise TypeError("websocket.accept 'subprotocol' must be a str or None")
        headers = [(bytes(name).lower(), bytes(value))
                   for name, value in message.get("headers") or ()]
        if self.adapter.server_header:
            headers.append((b"server", self.adapter.server_header))
        self._cancel_deadline()
        backend.accept(subprotocol, headers)
        self.status = 101
        self.phase = _OPEN
        self._socket = self.channel.upgrade(backend, self)

    def _deny(self, status: int, message: str = "") -> None:
        self._cancel_deadline()
        self.status = status
        self.phase = _DENIED
        self.channel.write(encode_error_response(status, message, self.adapter.server_header))
        self.channel.response_complete(False)

    def _respond(self, message: Message) -> None:
        self._cancel_deadline()
        try:
            writer = ResponseWriter(message["status"], message.get("headers") or (),
                                    self.request, self.adapter.server_header, False)
        except ResponseError as exc:
            log.error("response refused: %s, serving WebSocket %s", exc,
                      RequestLine(self.request))
            self._deny(500)
            raise
        self._writer = writer
        self.status = writer.status
        self.phase = _RESPONDING

    async def _respond_body(self, message: Message) -> None:
        writer = self._writer
        assert writer is not None
        more = message.get("more_body", False)
        data = writer.body(message.get("body", b""), more)
        if data:
            self.bytes_sent += len(data)
            self.channel.write(data)
        if not more:
            self.phase = _DENIED
            self.channel.response_complete(False)
        elif self.channel.write_paused:
            await self.channel.drain()

    def _too_slow(self) -> None:
        self._deadline = None
        if self.phase is _CONNECTING:
            log.warning("the application did not accept the WebSocket within %g s, "
                        "serving WebSocket %s: 503", self.options.handshake_timeout,
                        RequestLine(self.request))
            self._deny(503, "the application did not answer the WebSocket in time")

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _ended(self, code: int, reason: str) -> None:
        if self.phase is not _CLOSED:
            self._cancel_deadline()
            self.phase = _CLOSED
            self._close = (code, reason)
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- the application call ---------------------------------------------

    async def _run(self, scope: Scope) -> None:
        SERVING.set((self, monotonic()))
        try:
            await self.adapter.app(scope, self.receive, self.send)
        except BaseException as exc:
            self._app_failed(exc)
            if not isinstance(exc, Exception | asyncio.CancelledError):
                raise  # KeyboardInterrupt, SystemExit
        else:
            self._app_returned()

    def _app_returned(self) -> None:
        phase = self.phase
        if phase is _CONNECTING:
            log.error("ASGI application returned without accepting or closing, "
                      "serving WebSocket %s", RequestLine(self.request))
            self._deny(500)
        elif phase is _RESPONDING:
            log.error("ASGI application returned before completing its denial response, "
                      "serving WebSocket %s", RequestLine(self.request))
            self.phase = _DENIED
            self.channel.abort()
        elif phase is _OPEN:
            # Returning ends the WebSocket, as a close would (the spec).
            self.phase = _CLOSING
            assert self._socket is not None
            self._socket.close(CLOSE_NORMAL, "")

    def _app_failed(self, exc: BaseException) -> None:
        phase = self.phase
        if isinstance(exc, ClientDisconnected) and phase is _CLOSED:
            return  # it sent after its client left: what the error is for
        if isinstance(exc, asyncio.CancelledError):
            if phase is _OPEN and self._socket is not None:
                self.phase = _CLOSING
                self._socket.close(CLOSE_INTERNAL_ERROR, "")
            return
        log.error("exception in ASGI application, serving WebSocket %s",
                  RequestLine(self.request), exc_info=exc)
        if phase is _CONNECTING:
            self._deny(500)
        elif phase is _RESPONDING:
            self.phase = _DENIED
            self.channel.abort()
        elif phase is _OPEN:
            # RFC 6455 section 7.4.1: 1011, the server met a condition that
            # prevented it from fulfilling the request.
            self.phase = _CLOSING
            assert self._socket is not None
            self._socket.close(CLOSE_INTERNAL_ERROR, "")

