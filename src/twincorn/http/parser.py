"""Request parsing: httptools (llhttp) for the grammar, our own rules on top.

Theory of operation
-------------------
`RequestParser.feed(data)` hands bytes to llhttp, which calls back the
`on_*` methods below as it recognises parts of a message. Those methods check
what llhttp leaves to the application (limits, Host, target forms, trailers,
Expect, HTTP versions) and report each request to a `RequestHandler`:

    on_request(request)        the head is complete and valid
    on_body(data)              a piece of the decoded body (chunked framing removed)
    on_request_complete()      the message ended (trailers, if any, are on it)

Anything refused raises ProtocolError from `feed`; the connection is then
answered with that status and closed. A head is reported once llhttp has
made its own last check of it (at the next callback, or at the end of the
feed): a request that llhttp refuses never reaches the handler, and what
reaches it does not depend on how the bytes were split into feeds. Several
requests may arrive in one `feed` (pipelining): they are reported in order,
and it is the handler's job to queue them. After a message that ends the
connection (`Connection: close`, HTTP/1.0 without keep-alive, CONNECT or
Upgrade) every further byte is ignored: it is never parsed as another
request.

llhttp already refuses, among others: bare CR or LF, invalid tokens in method
and header names, control characters in values, Content-Length together with
Transfer-Encoding, duplicate or malformed Content-Length, a Transfer-Encoding
whose final coding is not chunked, bad chunk sizes and obs-fold.
"""

from __future__ import annotations

import enum
import re
from typing import Protocol

import httptools

from twincorn.http.errors import ProtocolError
from twincorn.http.policy import RequestPolicy
from twincorn.http.request import Request, split_target

# RFC 9112 section 3.2: Host = uri-host [ ":" port ]; an empty value is allowed.
_HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?")
# RFC 9110 section 5.6.2: a field name is a token.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 section 5.5: field values hold no control characters but HTAB.
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 9110 section 6.5.1: fields that carry framing, routing or connection
# control must not come in trailers; a recipient could be tricked into
# merging them into the head.
_FORBIDDEN_TRAILERS = frozenset(
    {
        b"content-length",
        b"transfer-encoding",
        b"host",
        b"te",
        b"trailer",
        b"connection",
        b"keep-alive",
        b"upgrade",
        b"expect",
    }
)
# The names whose values the parser itself must see.
_WATCHED = frozenset(
    {b"host", b"content-length", b"transfer-encoding", b"expect", b"upgrade"}
)

# The one check llhttp makes after on_headers_complete has returned: a request
# Transfer-Encoding whose final coding is not chunked (RFC 9112 section 6.3).
_REFUSED_HEAD = "Request has invalid `Transfer-Encoding`"

# llhttp names the method as bytes; the str of each is made once.
_METHODS: dict[bytes, str] = {
    m.encode(): m
    for m in "GET HEAD POST PUT DELETE OPTIONS PATCH CONNECT TRACE".split()
}



class ParserState(enum.Enum):
    """Where the parser is in the connection's stream of requests.

    The parser is the only writer of its state; the legal moves are:

        IDLE  -> HEAD     the first byte of a request (on_message_begin)
        HEAD  -> BODY     a valid head ended (on_headers_complete; the body may be empty)
        BODY  -> IDLE     the message ended and the connection persists
        BODY  -> CLOSED   the message ended and it ends the connection
                          (Connection: close, HTTP/1.0, CONNECT, Upgrade)
        any   -> CLOSED   a refusal (ProtocolError), or close() by the driver

    CLOSED is final: no further byte is ever parsed.
    """

    IDLE = "idle"
    HEAD = "head"
    BODY = "body"
    CLOSED = "closed"


IDLE, HEAD, BODY, CLOSED = ParserState.IDLE, ParserState.HEAD, ParserState.BODY, ParserState.CLOSED


class RequestHandler(Protocol):
    """What the parser reports to: the connection driver, or a test."""

    def on_request(self, request: Request) -> None: ...

    def on_body(self, data: bytes) -> None: ...

    def on_request_complete(self) -> None: ...


class _Closed(Exception):
    """Stops llhttp within a feed once the parser was closed (not a refusal)."""


class _Detached:
    """The handler of a parser whose connection is gone: hears nothing."""

    def on_request(self, request: Request) -> None: ...

    def on_body(self, data: bytes) -> None: ...

    def on_request_complete(self) -> None: ...


_DETACHED = _Detached()
_DETACHED_REQUEST = Request()


class RequestParser:
    """Parses the requests of one connection, in order."""

    __slots__ = (
        "_body_bytes",
        "_check_values",
        "_fields",
        "_handler",
        "_head_began",
        "_head_bytes",
        "_head_raw",
        "_last_host",
        "_max_field_size",
        "_max_fields",
        "_max_head",
        "_parser",
        "_policy",
        "_request",
        "_unreported",
        "_url",
        "messages",
        "state",
        "upgrade_rest",
    )

    def __init__(self, handler: RequestHandler, policy: RequestPolicy) -> None:
        self._handler = handler
        self._policy = policy
        self._parser = httptools.HttpRequestParser(self)
        # Any DIGIT "." DIGIT version reaches on_headers_complete, which
        # decides (llhttp alone would answer 400 to HTTP/1.2 and HTTP/3.0).
        self._parser.set_dangerous_leniencies(lenient_version=True)
        self._check_values = policy.permit_obsolete_folding
        if policy.permit_obsolete_folding:
            # llhttp only unfolds obs-fold in its lenient header mode, which
            # also stops it checking names and values: _take_fields checks
            # them instead.
            self._parser.set_dangerous_leniencies(lenient_headers=True)
        # Read on every header: kept here rather than looked up on the policy.
        self._max_fields = policy.limit_request_fields
        self._max_field_size = policy.limit_request_field_size - 2  # ": " excluded
        self._last_host = b""  # the last Host value found valid on this connection
        self._request = Request()
        self._url = b""
        self._fields: list[tuple[bytes, bytes]] = []
        self._max_head = policy.limit_request_head
        self._head_bytes = 0  # of the current head: its target and fields
        self._head_raw = 0  # bytes fed while the head was unfinished
        self._head_began = False  # the current head began in this feed
        self._body_bytes = 0
        self._unreported: Request | None = None  # a valid head not yet reported
        #: Read it, never write it: see ParserState for the legal moves.
        self.state = IDLE
        #: Requests begun on this connection (a head's first byte counts).
        self.messages = 0
        #: After an Upgrade head, the bytes that followed it in the same
        #: feed: the first bytes of the other protocol (a WebSocket's frames),
        #: kept for whoever takes the connection over.
        self.upgrade_rest = b""

    def feed(self, data: bytes) -> None:
        """Parse `data`; raise ProtocolError if the request must be refused."""
        if self.state is CLOSED:
            return
        self._head_began = False
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            # CONNECT or Upgrade: llhttp ended the message at the head. The
            # bytes after it belong to another protocol: kept for it (a
            # WebSocket), or dropped with the connection after the response.
            self.upgrade_rest = data[upgrade.args[0]:]
            if self._unreported is not None:  # (on_message_complete reported it)
                self._report()
            self.state = CLOSED
            return
        except httptools.HttpParserCallbackError as exc:
            # A refusal raised in a callback (split_target's among them):
            # llhttp has stopped, and so has this connection's parsing. A
            # head still unreported passed llhttp's checks (the callback
            # that refused came after them: trailers over a limit): it is
            # reported first, as when the rest comes in a later feed.
            if self._unreported is not None:
                self._report()
            self.state = CLOSED
            cause = exc.__context__
            if isinstance(cause, _Closed):
                return
            if isinstance(cause, BaseException):
                raise cause from None
            raise ProtocolError(400, str(exc)) from None
        except httptools.HttpParserError as exc:
            pending, self._unreported = self._unreported, None
            if pending is not None and _REFUSED_HEAD not in str(exc):
                # The head was valid, its body is not (a bad chunk size in
                # the same feed): report the head first, as when the body
                # comes in a later feed.
                self._handler.on_request(pending)
            if self.state is CLOSED:
                return  # bytes after a "close" message: ignored, never parsed
            self.state = CLOSED
            raise ProtocolError(400, _describe(exc)) from None
        if self._unreported is not None:
            self._report()
        if self.state is HEAD and not self._head_began:
            # A head still unfinished after a whole feed: llhttp holds its
            # partial field, unseen by on_header, so the raw bytes count.
            # (The part fed with the head's first bytes is not known: it
            # may hold the end of the previous request. on_header counts
            # it once a field is complete.)
            self._head_raw += len(data)
            if self._head_raw > self._max_head:
                self.state = CLOSED
                raise ProtocolError(431, "request head too large")

    # -- llhttp callbacks -------------------------------------------------

    def on_message_begin(self) -> None:
        if self.state is CLOSED:
            # The handler closed the parser in the middle of this feed (the
            # driver is closing): llhttp must not go on to the next request.
            raise _Closed
        self.state = HEAD
        self.messages += 1
        self._request = Request()
        self._url = b""
        self._fields = []
        self._head_bytes = 0
        self._head_raw = 0
        self._head_began = True
        self._body_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url = url if not self._url else self._url + url
        if len(self._url) > self._policy.limit_request_line:
            raise self._fail(414, "request target too long")
        self._head_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # Only the limits are checked as each field arrives; the rest waits
        # for the end of the head (or of the trailers), done in one loop.
        fields = self._fields
        fields.append((name, value))
        if len(fields) > self._max_fields:
            raise self._fail(431, "too many header fields")
        size = len(name) + len(value)
        if size > self._max_field_size:
            raise self._fail(431, "header field too large")
        # The whole head, ": " and CRLF included, however it was split
        # into reads (trailers count on, as a second header section).
        self._head_bytes += size + 4
        if self._head_bytes > self._max_head:
            raise self._fail(431, "request head too large")

    def _take_fields(self, request: Request | None) -> list[tuple[bytes, bytes]]:
        """The fields gathered so far, names lower-cased, values trimmed;
        with `request`, the fields the parser must see are read into it."""
        fields = []
        check = self._check_values
        for name, value in self._fields:
            # llhttp drops the whitespace before a value but keeps what
            # follows it; RFC 9110 section 5.5 says neither is in the value.
            value = value.rstrip(b" \t")
            if check:
                if _BAD_VALUE.search(value) is not None:
                    raise self._fail(400, "control character in a header value")
                # RFC 9112 section 5.1: whitespace between a field name and
                # its colon MUST be refused (the lenient mode lets it by).
                if _TOKEN.fullmatch(name) is None:
                    raise self._fail(400, "invalid header field name")
            name = name.lower()
            if request is not None and name in _WATCHED:
                self._watch(request, name, value)
            fields.append((name, value))
        self._fields = []
        return fields

    def _watch(self, request: Request, name: bytes, value: bytes) -> None:
        if name == b"host":
            # RFC 9112 section 3.2: more than one Host, or an invalid one: 400.
            if request.host is not None:
                raise self._fail(400, "more than one Host header")
            if value != self._last_host:  # a keep-alive client repeats its Host
                if _HOST.fullmatch(value) is None:
                    raise self._fail(400, "invalid Host header")
                self._last_host = value
            request.host = value
        elif name == b"content-length":
            request.content_length = int(value)  # llhttp checked the digits
        elif name == b"transfer-encoding":
            request.chunked = True  # llhttp checks that chunked comes last (_REFUSED_HEAD)
        elif name == b"upgrade":
            request.upgrade = True  # llhttp decides, with Connection: upgrade
        else:
            # RFC 9110 section 10.1.1: Expect is a list (empty members
            # allowed, section 5.6.1); a member we cannot meet is a 417.
            for member in value.lower().split(b","):
                member = member.strip(b" \t")
                if member == b"100-continue":
                    request.expect_continue = True
                elif member:
                    raise self._fail(417, "unsupported expectation")

    def on_headers_complete(self) -> None:
        parser = self._parser
        request = self._request
        request.headers = self._take_fields(request)
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            # RFC 9110 section 2.5: a later minor version of HTTP/1 is
            # processed as the highest we implement; another major is a 505.
            if version[:2] != "1.":
                raise self._fail(505, f"HTTP/{version} is not supported")
            version = "1.1"
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("ascii")
        request.method = method
        request.http_version = version
        request.target = self._url
        request.path, request.query = split_target(method, self._url)
        request.keep_alive = parser.should_keep_alive()
        # Asked of llhttp only when an Upgrade header or CONNECT could make it so.
        request.upgrade = (request.upgrade or method == "CONNECT") and parser.should_upgrade()
        if version == "1.0":
            # RFC 9112 section 6.1: Transfer-Encoding in HTTP/1.0 means the
            # framing is faulty. RFC 9110 section 10.1.1: ignore Expect.
            if request.chunked:
                raise self._fail(400, "Transfer-Encoding in an HTTP/1.0 request")
            request.expect_continue = False
        elif request.host is None and self._policy.require_host:
            raise self._fail(400, "HTTP/1.1 request without a Host header")
        limit = self._policy.limit_request_body
        if limit and request.content_length is not None and request.content_length > limit:
            raise self._fail(413, "request body too large")
        if request.upgrade:
            if request.has_body:
                raise self._fail(400, "a body on a CONNECT or Upgrade request")
            request.keep_alive = False
        self.state = BODY
        # Reported at the next callback or at the end of this feed, not now:
        # llhttp makes one check of its own once this returns (_REFUSED_HEAD),
        # and a request it refuses must never have reached the handler.
        self._unreported = request

    def _report(self) -> None:
        request = self._unreported
        self._unreported = None
        assert request is not None
        self._handler.on_request(request)

    def on_body(self, data: bytes) -> None:
        if self._unreported is not None:
            self._report()
        limit = self._policy.limit_request_body
        if limit:
            self._body_bytes += len(data)
            if self._body_bytes > limit:
                raise self._fail(413, "request body too large")
        self._handler.on_body(data)

    def on_message_complete(self) -> None:
        if self._unreported is not None:
            self._report()
        if self._fields:
            trailers = self._request.trailers = self._take_fields(None)
            for name, _ in trailers:
                if name in _FORBIDDEN_TRAILERS:
                    raise self._fail(400, f"{name.decode()} is not allowed in trailers")
        if self.state is not CLOSED:  # close() is for good
            self.state = IDLE if self._request.keep_alive else CLOSED
        self._handler.on_request_complete()

    def close(self) -> None:
        """Parse nothing more on this connection (the driver refused a
        request, or is closing): every later byte is ignored."""
        self.state = CLOSED

    def release(self) -> None:
        """The connection is gone: drop the references that make cycles
        (handler -> parser -> llhttp -> parser), so that reference counting
        frees the connection at once rather than the garbage collector later."""
        self.state = CLOSED
        self._handler = _DETACHED
        if hasattr(self, "_parser"):
            del self._parser  # feed() is never called again: the state is CLOSED
        self._request = _DETACHED_REQUEST
        self._fields = []

    def _fail(self, status: int, reason: str) -> ProtocolError:
        self.state = CLOSED
        return ProtocolError(status, reason)


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"malformed request: {text}"
