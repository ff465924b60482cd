"""The ASGI 3.0 adapter: http scope, receive/send, lifespan.

(A request that asks for a WebSocket gets asgi_websocket.py's exchange.)

Each request runs as an asyncio Task in a fresh contextvars context, so that
`asyncio.current_task()`, `asyncio.timeout`, TaskGroup and the libraries built
on them (anyio, hence Starlette and FastAPI) work from the application's first
line. On Python 3.12+ the Task starts eagerly (`ASGIExchange.start`): an
application that answers without waiting for anything finishes inside
`start`, with no trip through the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
from time import monotonic
from typing import Any

from twincorn.asgi_spec import (
    ASGI_VERSION,
    ASGIApp,
    Message,
    Scope,
    scope_path,
)
from twincorn.asgi_spec import (
    ClientDisconnected as ClientDisconnected,  # re-exported: applications catch it
)
from twincorn.asgi_websocket import WebSocketExchange, WebSocketOptions
from twincorn.exchange import SERVING, Channel
from twincorn.http import Request
from twincorn.http.errors import ResponseError
from twincorn.http.request import RequestLine
from twincorn.http.response import ResponseWriter, encode_error_response
from twincorn.ws import is_websocket_request

log = logging.getLogger("twincorn.error")

_DISCONNECT: Message = {"type": "http.disconnect"}
# Above this many buffered body bytes the socket stops being read until the
# application receives them (request-side back-pressure).
_BODY_HIGH_WATER = 1 << 16
# Python 3.12+ can start a Task eagerly: its first step runs at once, so a
# response that needs no waiting is written without a trip through the loop.
_EAGER = sys.version_info >= (3, 12)
_Task: Any = asyncio.Task  # typeshed for 3.11 does not know eager_start


class ASGIAdapter:
    """Makes an ASGIExchange per request for one ASGI application."""

    busy = False  # the event loop never waits for an ASGI application

    def __init__(
        self,
        app: ASGIApp,
        loop: asyncio.AbstractEventLoop,
        *,
        root_path: str = "",
        server_header: bytes = b"",
        lifespan: str = "auto",
        websocket: WebSocketOptions | None = None,
    ) -> None:
        self.app = app
        self.loop = loop
        self.root_path = root_path
        self.raw_root = root_path.encode("utf-8")
        self.server_header = server_header
        self.lifespan = Lifespan(app, lifespan)
        self.context = contextvars.copy_context()
        self.description = "asgi"
        #: None: upgrade requests are plain HTTP (--ws none).
        self.websocket = websocket

    def new_exchange(self, request: Request,
                     channel: Channel) -> ASGIExchange | WebSocketExchange:
        if request.upgrade and self.websocket is not None and is_websocket_request(request):
            return WebSocketExchange(self, request, channel, self.websocket)
        return ASGIExchange(self, request, channel)

    async def startup(self) -> None:
        await self.lifespan.startup()

    async def shutdown(self) -> None:
        await self.lifespan.shutdown()


class ASGIExchange:
    """One request's http scope, its receive and send, and its app call."""

    __slots__ = (
        "_body",
        "_body_size",
        "_done",
        "_gone",
        "_input_closed",
        "_more_body",
        "_told_disconnect",
        "_waiter",
        "_writer",
        "adapter",
        "bytes_sent",
        "channel",
        "request",
        "status",
    )

    def __init__(self, adapter: ASGIAdapter, request: Request, channel: Channel) -> None:
        self.adapter = adapter
        self.request = request
        self.channel = channel
        self.status = 0
        self.bytes_sent = 0
        self._body: list[bytes] = []
        self._body_size = 0
        self._more_body = True
        self._waiter: asyncio.Future[None] | None = None
        self._gone = False
        self._input_closed = False  # the client will send nothing more
        self._told_disconnect = False  # receive() gave the app http.disconnect
        self._writer: ResponseWriter | None = None
        self._done = False  # the response is complete (or abandoned)

    # -- called by the connection ---------------------------------------

    def feed_body(self, data: bytes) -> None:
        self._body.append(data)
        self._body_size += len(data)
        if self._body_size > _BODY_HIGH_WATER:
            self.channel.pause_reading()
        self._wake()

    def body_complete(self) -> None:
        self._more_body = False
        self._wake()

    def client_gone(self) -> None:
        self._gone = True
        self._wake()

    def input_closed(self) -> None:
        self._input_closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def start(self) -> None:
        adapter = self.adapter
        request = self.request
        channel = self.channel
        path, raw_path = scope_path(adapter.root_path, adapter.raw_root, request.path)
        scope: Scope = {
            "type": "http",
            "asgi": ASGI_VERSION,
            "http_version": request.http_version,
            "server": channel.server,
            "client": channel.client,
            "scheme": channel.scheme,
            "method": request.method,
            "root_path": adapter.root_path,
            "path": path,
            "raw_path": raw_path,
            "query_string": request.query,
            "headers": request.headers,
            "state": adapter.lifespan.state.copy() if adapter.lifespan.state else {},
        }
        if channel.tls is not None:
            scope["extensions"] = {"tls": channel.tls.scope}
        forwarded = request.forwarded
        if forwarded is not None:  # a trusted proxy's word (http/forwarded.py)
            scope["client"] = forwarded.client
            scope["scheme"] = forwarded.scheme
            scope["server"] = forwarded.server
            scope["headers"] = forwarded.headers(request.headers)
        context = adapter.context.copy()
        run = self._run(scope)
        if _EAGER:
            # The first step runs now, inside the Task: an application that
            # answers without suspending is done before this returns.
            _Task(run, loop=adapter.loop, context=context, eager_start=True)
        else:
            adapter.loop.create_task(run, context=context)

    async def _run(self, scope: Scope) -> None:
        """The body of the request's Task: call the app, report how it ended
        (here rather than in a done callback, which would cost a loop trip)."""
        SERVING.set((self, monotonic()))  # this Task's own context
        try:
            await self.adapter.app(scope, self.receive, self.send)
        except BaseException as exc:  # the app's error: reported, not raised
            self._app_failed(exc)
            if not isinstance(exc, Exception | asyncio.CancelledError):
                raise  # KeyboardInterrupt, SystemExit
        else:
            self._app_returned()

    # -- receive and send -------------------------------------------------

    async def receive(self) -> Message:
        if self.request.expect_continue and self._writer is None and not self._gone:
            # RFC 9110 section 10.1.1: the client waits for 100 Continue
            # before it sends the body; it goes out when the body is first
            # wanted (the channel sends it once, and only if still owed).
            self.channel.send_continue()
        while True:
            if self._body or (not self._more_body and self._body_size >= 0):
                return self._take_body()
            if self._gone or self._done or self._input_closed:
                # After the whole body: the client left, the response is
                # complete, or the client shut its side (its FIN: whether it
                # left or half-closed, nothing more will come to wait for).
                self._told_disconnect = True
                return _DISCONNECT
            waiter = self._waiter = self.adapter.loop.create_future()
            await waiter

    def _take_body(self) -> Message:
        body = self._body
        data = body[0] if len(body) == 1 else b"".join(body)
        body.clear()
        more = self._more_body
        if more:
            if self._body_size > _BODY_HIGH_WATER:
                self.channel.resume_reading()
            self._body_size = 0
        else:
            self._body_size = -1  # the final message was given
        return {"type": "http.request", "body": data, "more_body": more}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            writer = self._writer
            if writer is None:
                raise RuntimeError("http.response.body before http.response.start")
            if self._gone:
                # HTTP spec 2.4: an OSError, which the app may catch to clean
                # up; _app_failed does not log it.
                raise ClientDisconnected("the client is gone")
            if self._done:
                return  # the response is complete: later messages are ignored
            more = message.get("more_body", False)
            data = writer.body(message.get("body", b""), more)
            if data:
                self.channel.write(data)
            if not more:
                self.bytes_sent = writer.bytes_sent
                self._done = True
                self.channel.response_complete(writer.keep_alive)
                self._wake()  # a pending receive() now gets http.disconnect
            elif self.channel.write_paused:
                await self.channel.drain()
        elif kind == "http.response.start":
            if self._writer is not None:
                raise RuntimeError("http.response.start sent twice")
            try:
                self._writer = ResponseWriter(
                    message["status"],
                    message.get("headers", ()),
                    self.request,
                    self.adapter.server_header,
                    self.channel.keep_alive,
                )
            except ResponseError as exc:
                self._refuse_response(exc)
                raise
            self.status = self._writer.status
        else:
            raise RuntimeError(f"unexpected ASGI message type {kind!r}")

    # -- the end of the application call -----------------------------------

    def _app_returned(self) -> None:
        if self._done:
            return
        if self._gone or self._told_disconnect:
            # The app was told the client left (an event stream, a long
            # poll) and stopped: no error; the connection closes, as a
            # response cut short cannot keep it alive.
            self._finish(False)
        elif self._writer is None:
            log.error("ASGI application returned without starting a response, serving %s",
                      RequestLine(self.request))
            self._respond_500()
        else:
            log.error("ASGI application returned before completing its response, serving %s",
                      RequestLine(self.request))
            self._abort()

    def _app_failed(self, exc: BaseException) -> None:
        if self._done or self._gone:
            self._finish(False)
            return
        log.error("exception in ASGI application, serving %s", RequestLine(self.request),
                  exc_info=exc)
        if self._writer is None:
            self._respond_500()
        else:
            self._abort()

    def _refuse_response(self, exc: ResponseError) -> None:
        log.error("response refused: %s, serving %s", exc, RequestLine(self.request))
        self._respond_500()

    def _respond_500(self) -> None:
        self.status = 500
        self.channel.write(encode_error_response(500, "", self.adapter.server_header))
        self._finish(False)

    def _abort(self) -> None:
        self._done = True
        self.channel.abort()

    def _finish(self, keep_alive: bool) -> None:
        if not self._done:
            self._done = True
            self.channel.response_complete(keep_alive)
            self._wake()


class LifespanFailure(Exception):
    """The application's lifespan startup (or shutdown) failed."""


class Lifespan:
    """Runs the ASGI lifespan protocol around the worker's life.

    mode "on": the application must support it; "off": never run; "auto":
    run it, and carry on without it if the application raises before it
    answers startup (the usual sign of an app that does not speak it).
    """

    def __init__(self, app: ASGIApp, mode: str) -> None:
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] = {}
        self._events: asyncio.Queue[Message] | None = None
        self._answers: asyncio.Queue[Message] | None = None
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The task running the application's lifespan call, if it runs."""
        return self._task

    async def startup(self) -> None:
        if self.mode == "off":
            return
        self._events = asyncio.Queue()
        self._answers = asyncio.Queue()
        scope: Scope = {"type": "lifespan", "asgi": ASGI_VERSION, "state": self.state}
        self._task = asyncio.get_running_loop().create_task(self._run(scope))
        await self._events.put({"type": "lifespan.startup"})
        answer = await self._answer()
        if answer is None:
            if self.mode == "on":
                raise LifespanFailure(f"lifespan startup raised: {self._error!r}")
            log.info("lifespan: the application did not answer startup; going on without it")
            self._task = None
            return
        if answer["type"] == "lifespan.startup.failed":
            await self._abandon()
            raise LifespanFailure(answer.get("message") or "lifespan startup failed")
        if answer["type"] != "lifespan.startup.complete":
            await self._abandon()
            raise LifespanFailure(f"unexpected lifespan message {answer['type']!r}")

    async def _abandon(self) -> None:
        """After a failed startup: end the app's lifespan call if it still
        waits for events, so that no task is left pending when the loop closes."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1)

    async def shutdown(self) -> None:
        if self._task is None or self._events is None:
            return
        await self._events.put({"type": "lifespan.shutdown"})
        answer = await self._answer()
        self._task = None
        if answer is None:
            log.error("lifespan shutdown raised: %r", self._error)
        elif answer["type"] == "lifespan.shutdown.failed":
            log.error("lifespan shutdown failed: %s", answer.get("message", ""))

    async def _answer(self) -> Message | None:
        """The app's next lifespan message, or None if the app ended."""
        assert self._answers is not None and self._task is not None
        getter = asyncio.ensure_future(self._answers.get())
        await asyncio.wait({getter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            return getter.result()
        getter.cancel()
        return None

    async def _run(self, scope: Scope) -> None:
        assert self._events is not None and self._answers is not None
        try:
            await self.app(scope, self._events.get, self._answers.put)
        except BaseException as exc:
            self._error = exc
            if isinstance(exc, asyncio.CancelledError):
                raise
            if self.mode == "on" or not isinstance(exc, Exception):
                log.error("exception in lifespan", exc_info=exc)
