"""Writing responses: the status line, headers, body framing (RFC 9112 s6).

`ResponseWriter` is sans-IO: the adapters give it what the application
produced and write the bytes it returns. It owns every rule about response
framing, so ASGI and WSGI responses are framed by one copy of the code.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterable
from email.utils import formatdate
from http import HTTPStatus

from twincorn.http.errors import ResponseError
from twincorn.http.request import Request

# RFC 9110 section 5.6.2: a field name is a token.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Response splitting: CR, LF or NUL in a value would let the application (or
# whoever fed it the value) write headers or a whole response of its own. The
# other control characters but HTAB are refused too: RFC 9110 section 5.5
# has no place for them, and clients refuse such a response (h11 does).
_UNSAFE_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

_PHRASES = {s.value: s.phrase for s in HTTPStatus}
_STATUS_LINES = {
    code: b"HTTP/1.1 %d %s\r\n" % (code, _PHRASES.get(code, "").encode())
    for code in range(100, 600)
}
_LAST_CHUNK = b"0\r\n\r\n"


# What each header field of the application means to the writer. Checking
# and encoding a field is a pure function of its bytes, and applications send
# the same few fields in every response, so the result is kept per (name,
# value): the common response costs a dictionary look-up per field.
_PLAIN, _LENGTH, _CLOSE, _SERVER, _DATE, _FRAMED = range(6)
_FIELDS: dict[tuple[bytes, bytes], tuple[int, bytes]] = {}


def _field(pair: Iterable[bytes]) -> tuple[int, bytes]:
    """Check one header field of the application; (kind, encoded line)."""
    name, value = pair
    if not isinstance(name, bytes) or _TOKEN.fullmatch(name) is None:
        raise ResponseError(f"invalid header name {name!r}")
    if not isinstance(value, bytes) or _UNSAFE_VALUE.search(value) is not None:
        raise ResponseError(f"a control character in the value of header {name!r}")
    lower = name.lower()
    kind = _PLAIN
    if lower == b"content-length":
        value = value.strip(b" \t")
        if not value.isdigit():
            raise ResponseError(f"invalid Content-Length {value!r}")
        kind, name, value = _LENGTH, b"content-length", b"%d" % int(value)
    elif lower == b"connection":
        kind = _CLOSE if b"close" in value.lower() else _FRAMED
    elif lower == b"transfer-encoding":
        kind = _FRAMED
    elif lower == b"server":
        kind = _SERVER
    elif lower == b"date":
        kind = _DATE
    result = (kind, b"%s: %s\r\n" % (name, value))
    if len(_FIELDS) < 4096 and type(pair) is tuple:
        _FIELDS[pair] = result
    return result


class _Clock:
    """The Date header (RFC 9110 section 6.6.1), formatted once a second.

    `head_start` also keeps, for the current second, the first lines of a
    response (status line, Date, Server) as one piece: most responses start
    with the same few.
    """

    __slots__ = ("line", "second", "starts")

    def __init__(self) -> None:
        self.second = -1
        self.line = b""
        self.starts: dict[tuple[int, bytes], bytes] = {}

    def _tick(self, now: int) -> None:
        self.second = now
        self.line = b"date: %s\r\n" % formatdate(now, usegmt=True).encode()
        self.starts = {}

    def date_line(self) -> bytes:
        now = int(time.time())
        if now != self.second:
            self._tick(now)
        return self.line

    def head_start(self, status: int, server: bytes) -> bytes:
        now = int(time.time())
        if now != self.second:
            self._tick(now)
        key = (status, server)
        start = self.starts.get(key)
        if start is None:
            start = status_line(status) + self.line + (_server_line(server) if server else b"")
            if len(self.starts) < 64:
                self.starts[key] = start
        return start


@functools.cache
def _server_line(server: bytes) -> bytes:
    return b"server: %s\r\n" % server


_clock = _Clock()
date_line = _clock.date_line


def status_line(status: int) -> bytes:
    """The status line for `status`, e.g. b"HTTP/1.1 200 OK\\r\\n"."""
    try:
        return _STATUS_LINES[status]
    except KeyError:
        raise ResponseError(f"invalid status code {status!r}") from None


def reason_phrase(status: int) -> str:
    return _PHRASES.get(status, "")


def body_allowed(method: str, status: int) -> bool:
    """RFC 9110 section 6.4.1: no content for HEAD, 1xx, 204 and 304."""
    return not (method == "HEAD" or status < 200 or status == 204 or status == 304)


class ResponseWriter:
    """Turns one response of the application into bytes for the wire.

    Create it when the application starts its response (status and headers
    are checked then: a bad header raises ResponseError before a byte is
    written). Then call `body(data, more)` for each piece of the body, the
    last one with `more=False`; each call returns the bytes to send, the head
    included the first time. The head waits for the first non-empty piece,
    so a response given in one piece gets a Content-Length rather than
    chunked framing.

    `keep_alive` is the connection's side of the decision (False once the
    server is stopping, say); the request's side (Connection: close,
    HTTP/1.0) and the application's (its own Connection: close) are added
    here, and `self.keep_alive` is the outcome the head announces.
    """

    __slots__ = (
        "_chunked",
        "_date",
        "_declared",
        "_head_sent",
        "_headers",
        "_http10",
        "_send_body",
        "_server",
        "_tunnel",
        "bytes_sent",
        "finished",
        "keep_alive",
        "status",
    )

    def __init__(
        self,
        status: int,
        headers: Iterable[tuple[bytes, bytes]],
        request: Request,
        server: bytes = b"",
        keep_alive: bool = True,
    ) -> None:
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ResponseError(f"invalid status code {status!r}")
        self.status = status
        self.keep_alive = keep_alive and request.keep_alive
        self.finished = False
        self.bytes_sent = 0  # body bytes, for the access log
        self._declared: int | None = None
        self._send_body = body_allowed(request.method, status)
        self._chunked = False
        self._head_sent = False
        self._http10 = request.http_version == "1.0"
        self._server = server
        self._date = True
        lines = []
        for pair in headers:
            try:
                kind, line = _FIELDS[pair]
            except (KeyError, TypeError):  # new, or a list rather than a tuple
                kind, line = _field(pair)
            if kind is _PLAIN:
                lines.append(line)
            elif kind is _LENGTH:
                length = int(line[16:-2])
                if self._declared is not None and self._declared != length:
                    raise ResponseError("two different Content-Length values")
                self._declared = length
            elif kind is _CLOSE:
                self.keep_alive = False
            elif kind is _SERVER:
                self._server = b""
                lines.append(line)
            elif kind is _DATE:
                self._date = False
                lines.append(line)
            # _FRAMED: Transfer-Encoding and Connection (but close) from the
            # application are dropped: the writer frames the body itself.
        self._headers = lines
        # RFC 9110 section 9.3.6: a 2xx answer to CONNECT opens a tunnel and
        # carries no Content-Length or Transfer-Encoding; what follows its
        # head belongs to the tunnel, and the close ends it.
        self._tunnel = 200 <= status < 300 and request.method == "CONNECT"
        if self._tunnel:
            self._declared = None
            self.keep_alive = False

    def body(self, data: bytes, more: bool) -> bytes:
        """The bytes to write for one piece of the body."""
        if self.finished:
            raise ResponseError("response already complete")
        out = b""
        if not self._head_sent:
            if not data and more:
                return b""
            out = self._head(None if more else len(data))
        if not more:
            self.finished = True
        if not self._send_body:
            return out
        self.bytes_sent += len(data)
        if self._declared is not None:
            if self.bytes_sent > self._declared:
                raise ResponseError("response body longer than its Content-Length")
            if self.finished and self.bytes_sent < self._declared:
                # The client would wait for bytes that never come: the
                # connection must end so that it sees the truncation.
                self.keep_alive = False
            return out + data if out else data
        if self._chunked:
            if data:
                out += b"%x\r\n%s\r\n" % (len(data), data)
            return out + _LAST_CHUNK if self.finished else out
        return out + data if out else data

    @property
    def head_sent(self) -> bool:
        return self._head_sent

    def file_head(self, count: int) -> bytes:
        """The head for a body of `count` bytes that is sent by other means
        (sendfile); the writer counts those bytes as sent."""
        if self._tunnel:
            self.finished = True
            self.bytes_sent = count
            return self._head(None)
        if self._declared is None:
            self._declared = count
        head = self._head(count)
        self.finished = True
        if self._send_body:
            self.bytes_sent = min(count, self._declared)
            if self.bytes_sent < self._declared:
                self.keep_alive = False
        return head

    @property
    def sends_body(self) -> bool:
        return self._send_body

    def _head(self, length: int | None) -> bytes:
        self._head_sent = True
        if self._date:
            head = [_clock.head_start(self.status, self._server), *self._headers]
        else:
            head = [status_line(self.status), *self._headers]
            if self._server:
                head.append(_server_line(self._server))
        status = self.status
        if self._tunnel:
            head.append(b"\r\n")  # no framing, no Connection: see __init__
            return b"".join(head)
        if self._declared is not None:
            if status >= 200 and status != 204:  # RFC 9110 section 8.6
                head.append(b"content-length: %d\r\n" % self._declared)
        elif self._send_body:
            if length is not None:
                head.append(b"content-length: %d\r\n" % length)
                self._declared = length
            elif self._http10:
                self.keep_alive = False  # the end of the body is the close
            else:
                self._chunked = True
                head.append(b"transfer-encoding: chunked\r\n")
        elif length and status >= 200 and status not in (204, 304):
            # HEAD, given the body GET would send: its length, as GET would
            # say. An empty body says nothing of GET's, whose length is not
            # known without making it: RFC 9110 section 9.3.2 lets it be
            # left out, and a wrong "0" would mislead caches and clients.
            head.append(b"content-length: %d\r\n" % length)
        if not self.keep_alive:
            head.append(b"connection: close\r\n")
        elif self._http10:
            head.append(b"connection: keep-alive\r\n")
        head.append(b"\r\n")
        return b"".join(head)


def informational(status: int) -> bytes:
    """An interim response such as 100 Continue (RFC 9110 section 15.2)."""
    return b"%s\r\n" % status_line(status)


def encode_error_response(status: int, detail: str = "", server: bytes = b"") -> bytes:
    """A complete plain-text response that ends the connection."""
    text = f"{status} {reason_phrase(status)}"
    body = (f"{text}: {detail}\n" if detail else f"{text}\n").encode("utf-8", "replace")
    head = [
        status_line(status),
        date_line(),
        _server_line(server) if server else b"",
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n\r\n",
    ]
    return b"".join(head) + body
