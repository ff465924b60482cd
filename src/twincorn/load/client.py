"""The HTTP client a virtual user holds as `self.client`.

    r = await self.client.get("/")                       # recorded at once
    async with self.client.post("/items", json={"a": 1}, check=True) as r:
        if r.status != 201:
            r.failure("expected 201")                    # recorded on leaving

Every request is recorded in the run's statistics under its name (the path
by default, `name=` to group URLs such as /item/1 and /item/2). A request
fails when it gets no response (refused, reset, timeout, protocol error) or
a status >= 400; with `check=True` the block decides instead, through
`r.success()` and `r.failure(message)`, or by raising ResponseError.
Transport errors are not raised: the response comes back with status 0 and
`r.error` set, as in Locust's FastHttpUser.

Each client keeps one keep-alive connection per origin (a user talks to one
server over one connection, as a browser tab would, minus the parallel
ones), and a cookie jar. Request heads are encoded once per method, URL and
headers, and reused.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import ssl
from collections.abc import Generator, Mapping, Sequence
from time import perf_counter
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin, urlsplit

from twincorn.load.connection import (
    HTTP,
    RESET,
    TIMEOUT,
    Connection,
    RequestError,
    connect_error,
    status_message,
)
from twincorn.load.context import NotAwaited, ResponseError, RunContext
from twincorn.load.response import Response

if TYPE_CHECKING:
    from twincorn.load.ws_client import WebSocket, WebSocketContext

USER_AGENT = "twincorn-load/0.1"
# Methods that may be sent again when a reused connection turns out to have
# been closed by the server before it read them (RFC 9110 section 9.2.2,
# RFC 9112 section 9.3.1).
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
_HEAD_CACHE_SIZE = 1024


class ClientConnection(Connection):
    """A Connection whose responses, headers and body included, are awaited."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.error: RequestError | None = None
        self.done_at = 0.0
        self.waiter: asyncio.Future[None] | None = None
        self.timeout = 0.0

    def exchange(self, data: bytes, head_only: bool, timeout: float) -> asyncio.Future[None]:
        """Send a request; the future is done when its response is (or failed)."""
        self.error = None
        self.waiter = self.loop.create_future()
        self.timeout = timeout
        self.send(data, head_only)
        return self.waiter

    def time_out(self) -> None:
        self.fail(RequestError(TIMEOUT, f"timeout: no response within {self.timeout:g}s"))

    def on_message_begin(self) -> None:
        self.headers = []
        self.chunks = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.size += len(body)

    def ends_at_close(self) -> bool:
        # RFC 9112 section 6.3: neither chunked nor Content-Length.
        for name, value in self.headers:
            lowered = name.lower()
            if lowered == b"content-length":
                return False
            if lowered == b"transfer-encoding" and b"chunked" in value.lower():
                return False
        return True

    def response_complete(self) -> None:
        self._wake()

    def response_failed(self, error: RequestError) -> None:
        self.error = error
        self._wake()

    def _wake(self) -> None:
        self.done_at = perf_counter()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class RequestContext:
    """What `client.get(...)` returns: await it, or use it with `async with`.

    Nothing is sent until then. One that is dropped unused (a task that
    wrote `self.client.get("/")` without await) tells its client so, which
    the driver reports as the task's NotAwaited."""

    __slots__ = ("_check", "_client", "_request", "_response", "_used")

    def __init__(self, client: HttpClient, request: _Request, check: bool) -> None:
        self._client = client
        self._request = request
        self._check = check
        self._response: Response | None = None
        self._used = False

    def __del__(self) -> None:
        if not self._used:
            self._client.not_awaited(self._request)

    def __await__(self) -> Generator[Any, None, Response]:
        self._used = True
        return self._send_and_record().__await__()

    async def _send_and_record(self) -> Response:
        response = await self._client._send(self._request)
        self._client._record(response)
        return response

    async def __aenter__(self) -> Response:
        self._used = True
        response = self._response = await self._client._send(self._request)
        if not self._check:
            self._client._record(response)
        return response

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        response = self._response
        if not self._check or response is None:
            return False
        if isinstance(exc, ResponseError):
            response._verdict = str(exc) or "ResponseError"
            self._client._record(response)
            return True  # handled: the request failed with that message
        if isinstance(exc, Exception):
            response._verdict = f"{type(exc).__name__}: {exc}"
        self._client._record(response)
        return False


class _Request:
    __slots__ = ("data", "head_only", "method", "name", "origin", "timeout", "url")

    def __init__(
        self,
        method: str,
        url: str,
        name: str,
        origin: tuple[str, str, int],
        data: bytes,
        timeout: float,
    ) -> None:
        self.method = method
        self.url = url
        self.name = name
        self.origin = origin
        self.data = data
        self.head_only = method == "HEAD"
        self.timeout = timeout


class HttpClient:
    """One user's HTTP client: a connection per origin, cookies, encoded heads."""

    def __init__(self, base_url: str | None, context: RunContext) -> None:
        self.base_url = base_url or ""
        self.context = context
        self.loop = asyncio.get_running_loop()
        self.cookies: dict[str, str] = {}
        # Open model: when the current task was due (perf_counter); its first
        # request is measured from then as well (0: not set).
        self.scheduled = 0.0
        self._connections: dict[tuple[str, str, int], ClientConnection] = {}
        self._heads: dict[tuple[Any, ...], bytes] = {}
        self._targets: dict[str, tuple[str, str, tuple[str, str, int], str]] = {}
        self._ssl: ssl.SSLContext | None = None
        self.websockets: set[WebSocket] = set()  # open, made by websocket() (ws_client.py)
        # Requests made and dropped without being awaited, since the driver
        # last looked (take_not_awaited), and the last of them.
        self.dropped_requests = 0
        self.last_dropped = ""

    # -- the public methods ------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        name: str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | str | bytes | None = None,
        content: str | bytes | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> RequestContext:
        """A request; await it, or enter it with `async with` (see the module doc)."""
        method = method.upper()
        absolute, target, origin, host_header = self._resolve(url, params)
        if json is None and data is None and content is None:
            body, content_type = None, None
        else:
            body, content_type = _body(json, data, content)
        head = self._head(method, target, host_header, headers, content_type)
        data_out = self._finish_head(head, body)
        request = _Request(
            method, absolute, name or url, origin, data_out,
            self.context.timeout if timeout is None else timeout,
        )
        return RequestContext(self, request, check)

    def get(self, url: str, **kwargs: Any) -> RequestContext:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> RequestContext:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> RequestContext:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> RequestContext:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> RequestContext:
        return self.request("DELETE", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> RequestContext:
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> RequestContext:
        return self.request("OPTIONS", url, **kwargs)

    def websocket(
        self,
        url: str,
        *,
        subprotocols: Sequence[str] | None = None,
        headers: Mapping[str, str] | None = None,
        name: str | None = None,
        timeout: float | None = None,
    ) -> WebSocketContext:
        """A WebSocket to `url` (relative to the host; http becomes ws):
        `async with` it, or await it (see ws_client.py)."""
        from twincorn.load.ws_client import WebSocketContext, ws_url

        ws_url(self.base_url, url)  # a URL that cannot be opened fails here, in the task
        return WebSocketContext(self, url, name or url, subprotocols, headers, timeout)

    def not_awaited(self, request: _Request) -> None:
        """A request of this client was dropped unsent (RequestContext.__del__)."""
        parts = urlsplit(request.url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        self.dropped_unsent(f"self.client.{request.method.lower()}({target!r})")

    def dropped_unsent(self, call: str) -> None:
        """`call` (as the scenario wrote it) was made and never awaited."""
        self.dropped_requests += 1
        self.last_dropped = call

    def take_not_awaited(self) -> NotAwaited | None:
        """What was dropped unsent since the last call, as a NotAwaited (or None)."""
        if not self.dropped_requests:
            return None
        count, self.dropped_requests = self.dropped_requests, 0
        call = self.last_dropped
        method = call[len("self.client."):call.index("(")]
        times = "" if count == 1 else f" (and {count - 1:,} more)"
        return NotAwaited(
            f"{call} was not awaited{times}, so it was never sent: "
            f"write `await self.client.{method}(...)`"
        )

    def in_flight_since(self) -> list[float]:
        """When (perf_counter) each request (or WebSocket round trip) now in
        flight was sent."""
        sent = [c.sent_at for c in self._connections.values() if c.busy]
        for ws in self.websockets:
            sent += ws.in_flight_since()
        return sent

    async def close_websockets(self) -> None:
        """Close the WebSockets still open (the run ends): a close frame
        each, and the servers' answers awaited a moment."""
        if self.websockets:
            await asyncio.gather(*(ws.close() for ws in list(self.websockets)))

    def close(self) -> None:
        for conn in self._connections.values():
            conn.abort()
        self._connections.clear()
        for ws in list(self.websockets):
            ws.abort()
        self.websockets.clear()

    def tls(self) -> ssl.SSLContext:
        """The TLS context of https:// and wss:// (--insecure, --ca-certs,
        --client-cert; else the system's defaults)."""
        if self._ssl is None:
            self._ssl = self.context.tls.context()
        return self._ssl

    # -- encoding ------------------------------------------------------------------

    def _resolve(
        self, url: str, params: Mapping[str, Any] | None
    ) -> tuple[str, str, tuple[str, str, int], str]:
        """The absolute URL, request target, origin and Host header of `url`
        (relative ones are joined to the base URL); cached without params."""
        if not params:
            found = self._targets.get(url)
            if found is not None:
                return found
        absolute = urljoin(self.base_url, url) if self.base_url else url
        parts = urlsplit(absolute)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"cannot request {url!r}: give the host (-H, a User's host, or a full URL)"
            )
        target = parts.path or "/"
        query = parts.query
        if params:
            extra = urlencode(params, doseq=True)
            query = f"{query}&{extra}" if query else extra
        if query:
            target = f"{target}?{query}"
        default = 443 if parts.scheme == "https" else 80
        port = parts.port or default
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        # RFC 9110 section 7.2: Host is the authority, the port only if not the default.
        host_header = host if port == default else f"{host}:{port}"
        resolved = (absolute, target, (parts.scheme, parts.hostname, port), host_header)
        if not params:
            if len(self._targets) >= _HEAD_CACHE_SIZE:
                self._targets.clear()
            self._targets[url] = resolved
        return resolved

    def _head(
        self,
        method: str,
        target: str,
        host: str,
        headers: Mapping[str, str] | None,
        content_type: str | None,
    ) -> bytes:
        extra = tuple(headers.items()) if headers else ()
        key = (method, target, host, extra, content_type)
        head = self._heads.get(key)
        if head is None:
            lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
            given = {name.lower() for name, _ in extra}
            if "user-agent" not in given:
                lines.append(f"User-Agent: {USER_AGENT}")
            if "accept" not in given:
                lines.append("Accept: */*")
            if content_type and "content-type" not in given:
                lines.append(f"Content-Type: {content_type}")
            lines.extend(f"{name}: {value}" for name, value in extra)
            head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
            if len(self._heads) >= _HEAD_CACHE_SIZE:
                self._heads.clear()
            self._heads[key] = head
        return head

    def _finish_head(self, head: bytes, body: bytes | None) -> bytes:
        parts = [head]
        if self.cookies:
            jar = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            parts.append(f"Cookie: {jar}\r\n".encode("latin-1"))
        if body is not None:
            parts.append(b"Content-Length: %d\r\n\r\n" % len(body))
            parts.append(body)
        else:
            parts.append(b"\r\n")
        return b"".join(parts)

    # -- sending -----------------------------------------------------------------

    async def _send(self, request: _Request) -> Response:
        context = self.context
        context.take()
        context.in_flight += 1
        try:
            conn, error = await self._connection(request.origin)
            if conn is None:
                assert error is not None
                return Response(request.method, request.url, request.name, error=error)
            reused = conn.responses > 0
            await self._exchange(conn, request)
            if (
                conn.error is not None
                and conn.error.kind == RESET
                and reused
                and not conn.received
                and request.method in IDEMPOTENT
            ):
                # The server closed the idle connection as we reused it: one
                # more try on a new connection (RFC 9112 section 9.3.1).
                conn, error = await self._connection(request.origin)
                if conn is None:
                    assert error is not None
                    return Response(request.method, request.url, request.name, error=error)
                await self._exchange(conn, request)
            return self._response(conn, request)
        finally:
            context.in_flight -= 1

    async def _exchange(self, conn: ClientConnection, request: _Request) -> None:
        waiter = conn.exchange(request.data, request.head_only, request.timeout)
        timer = self.loop.call_later(request.timeout, conn.time_out)
        try:
            await waiter
        finally:
            timer.cancel()
            if not waiter.done():
                # Cancelled (the run stops) mid-request: the connection is in
                # an unknown state, so it is not reused.
                conn.abort()

    def _response(self, conn: ClientConnection, request: _Request) -> Response:
        elapsed = conn.done_at - conn.sent_at
        if conn.error is not None:
            response = Response(
                request.method, request.url, request.name, error=conn.error, elapsed=elapsed
            )
        else:
            response = Response(
                request.method,
                request.url,
                request.name,
                conn.status,
                conn.headers,
                b"".join(conn.chunks),
                elapsed,
            )
            self._keep_cookies(conn.headers)
        if self.scheduled:
            response.corrected = conn.done_at - self.scheduled
            self.scheduled = 0.0
        return response

    async def _connection(
        self, origin: tuple[str, str, int]
    ) -> tuple[ClientConnection | None, RequestError | None]:
        conn = self._connections.get(origin)
        if conn is not None and conn.open:
            return conn, None
        scheme, host, port = origin
        loop = self.loop
        timeout = self.context.connect_timeout
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: ClientConnection(loop),
                    host,
                    port,
                    ssl=self.tls() if scheme == "https" else None,
                )
        except (OSError, TimeoutError) as exc:
            return None, connect_error(exc, timeout)
        self._connections[origin] = conn
        return conn, None

    def _keep_cookies(self, headers: list[tuple[bytes, bytes]]) -> None:
        # A simple jar: name=value pairs, sent to every origin of this user;
        # Max-Age=0 (or negative) removes one (RFC 6265 section 5.2.2).
        for name, value in headers:
            if name.lower() != b"set-cookie":
                continue
            first, *attributes = value.decode("latin-1").split(";")
            key, sep, val = first.strip().partition("=")
            if not sep or not key:
                continue
            expired = False
            for attribute in attributes:
                a_name, _, a_value = attribute.strip().partition("=")
                if a_name.lower() == "max-age" and a_value.lstrip("-").isdigit():
                    expired = int(a_value) <= 0
            if expired:
                self.cookies.pop(key, None)
            else:
                self.cookies[key] = val.strip()

    # -- recording -----------------------------------------------------------------

    def _record(self, response: Response) -> None:
        if response._recorded:
            return
        response._recorded = True
        collector = self.context.collector
        tally = collector.tally(response.method, response.name)
        error = response.error
        if error is not None and response.status == 0:
            collector.no_response(tally, error.kind, error.message)
            return
        us = int(response.elapsed * 1_000_000)
        corrected = int(response.corrected * 1_000_000)
        collector.record(tally, corrected, len(response.content), us)
        verdict = response._verdict
        if verdict is None:
            if response.status >= 400:
                collector.failure(tally, HTTP, status_message(response.status))
        elif verdict:
            collector.failure(tally, "check", verdict)


def _body(
    json: Any, data: Mapping[str, Any] | str | bytes | None, content: str | bytes | None
) -> tuple[bytes | None, str | None]:
    """The request body and its Content-Type, from one of json=, data=, content=."""
    given = [x is not None for x in (json, data, content)]
    if sum(given) > 1:
        raise ValueError("give at most one of json=, data= and content=")
    if json is not None:
        return jsonlib.dumps(json, separators=(",", ":")).encode(), "application/json"
    if isinstance(data, Mapping):
        return urlencode(data, doseq=True).encode(), "application/x-www-form-urlencoded"
    if data is not None:
        raw = data.encode() if isinstance(data, str) else data
        return raw, "application/x-www-form-urlencoded"
    if content is not None:
        return (content.encode() if isinstance(content, str) else content), None
    return None, None
