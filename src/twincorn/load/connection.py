"""One HTTP/1.1 client connection: write a request, parse its response.

Theory of operation. A Connection is an asyncio Protocol over one TCP
connection (uvloop's, where installed). It carries one request at a time:
`send(data)` writes a request's bytes whole, and the bytes that come back
are fed to one httptools (llhttp) response parser, kept for the life of the
connection, as keep-alive responses follow each other on it (RFC 9112
section 9.3). The parser calls back:

    on_headers_complete  status known (1xx interim responses are skipped,
                         RFC 9110 section 15.2); for a HEAD request the
                         response ends here, whatever Content-Length says
                         (RFC 9110 section 9.3.2)
    on_body              body bytes (Content-Length or chunked, decoded)
    on_message_complete  the response is whole: `response_complete()`

A response is delimited by Content-Length, by chunked coding, or by the
server closing the connection (RFC 9112 section 6.3); in the last case the
close completes it. Any other close, a reset, or bytes the parser rejects
end the request with a RequestError of one kind (refused, reset, timeout,
protocol error). After a response without keep-alive the connection is
closed, and the owner opens a new one for the next request.

This class does the parsing; what happens with a response is up to a
subclass: `ClientConnection` (client.py) hands it to an awaiting task, the
lean driver (fastpath.py) records it and sends the next request at once.
Both override `response_complete` and `response_failed`. The hot path is
the three parser callbacks: they set attributes and nothing else.
"""

from __future__ import annotations

import asyncio
import http
import socket
from time import perf_counter

import httptools

# The kinds of failure, as counted in the statistics.
REFUSED = "refused"
CONNECT = "connect"  # other failures to connect: no such host, unreachable
RESET = "reset"
TIMEOUT = "timeout"
PROTOCOL = "protocol error"
HTTP = "http status"
DROPPED = "dropped"  # open model: an arrival that found no free user


class RequestError(Exception):
    """A request that got no (usable) response: why, sorted into a kind."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def connect_error(exc: BaseException, timeout: float) -> RequestError:
    """The RequestError for an exception raised while connecting."""
    if isinstance(exc, TimeoutError):
        return RequestError(TIMEOUT, f"connect timeout ({timeout:g}s)")
    if isinstance(exc, ConnectionRefusedError):
        return RequestError(REFUSED, "connection refused")
    if isinstance(exc, socket.gaierror):
        return RequestError(CONNECT, f"cannot resolve host: {exc.strerror or exc}")
    if isinstance(exc, OSError):
        return RequestError(CONNECT, f"cannot connect: {exc.strerror or exc}")
    return RequestError(CONNECT, f"cannot connect: {exc!r}")


def status_message(status: int) -> str:
    """The failure message of an HTTP error status: "HTTP 503 Service Unavailable"."""
    try:
        return f"HTTP {status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


class _HeadResponseEnds(Exception):
    """Raised from on_headers_complete to stop the parser after a HEAD
    response's head (httptools cannot be told that no body follows)."""


class Connection(asyncio.Protocol):
    """The parsing half of a client connection (see the module docstring)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.open = False  # connected, and not closed by either side
        self.busy = False  # a request was sent and its response is not complete
        self.responses = 0  # complete responses on this connection
        self.sent_at = 0.0  # perf_counter() when the current request was written
        self.status = 0
        self.size = 0  # body bytes of the current response
        self.head_done = False
        self.head_only = False  # the current request is a HEAD
        self.keep_alive = True
        self.received = False  # any byte of the current response came
        self._head_ended = False

    # -- what subclasses do with the outcome ---------------------------------

    def response_complete(self) -> None:
        """The response is whole (status, size and the rest are set)."""

    def response_failed(self, error: RequestError) -> None:
        """The request ended without a usable response."""

    # -- sending --------------------------------------------------------------

    def send(self, data: bytes, head_only: bool = False) -> None:
        """Write one request (the connection must be open and idle)."""
        self.busy = True
        self.status = 0
        self.size = 0
        self.head_done = False
        self.received = False
        self.head_only = head_only
        self.sent_at = perf_counter()
        self.transport.write(data)  # type: ignore[union-attr]

    def close(self) -> None:
        self.open = False
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.open = False
        if self.transport is not None:
            self.transport.abort()

    def fail(self, error: RequestError) -> None:
        """End the current request with `error`; the connection is not reused."""
        if self.busy:
            self.busy = False
            self.abort()
            self.response_failed(error)

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.open = True
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Requests are written whole: no reason to wait for more (Nagle).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if not self.busy:
            # Bytes with no request outstanding (a 408 before an idle close,
            # say): nothing to match them to, so the connection is done.
            self.close()
            return
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            if not self._head_ended:
                raise
            self._head_ended = False
            self.parser = httptools.HttpResponseParser(self)  # the old one stopped mid-message
            self._complete()
        except httptools.HttpParserUpgrade:
            self.fail(RequestError(PROTOCOL, "protocol error: unexpected upgrade"))
        except httptools.HttpParserError as exc:
            self.fail(RequestError(PROTOCOL, f"protocol error: {exc}"))

    def eof_received(self) -> bool | None:
        return None  # close our side too: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if not self.busy:
            return
        if self.head_done and self.ends_at_close():
            self.keep_alive = False
            self._complete()
        elif isinstance(exc, ConnectionResetError):
            self.fail(RequestError(RESET, "connection reset by peer"))
        elif exc is not None:
            self.fail(RequestError(RESET, f"connection lost: {exc}"))
        else:
            self.fail(RequestError(RESET, "connection closed before the response was complete"))

    def ends_at_close(self) -> bool:
        """Is the current response delimited by the close (RFC 9112 section
        6.3, item 8)? Without the headers at hand, a response that did not
        ask for keep-alive is taken to be."""
        return not self.keep_alive

    # -- httptools callbacks (the hot path) ------------------------------------

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        self.head_done = True
        if self.head_only and self.status >= 200:
            self._head_ended = True
            raise _HeadResponseEnds

    def on_body(self, body: bytes) -> None:
        self.size += len(body)

    def on_message_complete(self) -> None:
        if self.status < 200:
            self.head_done = False  # 1xx: the final response follows
            return
        self._complete()

    def _complete(self) -> None:
        self.busy = False
        self.responses += 1
        if not self.keep_alive:
            self.close()
        self.response_complete()

