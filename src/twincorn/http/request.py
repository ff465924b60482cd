"""A parsed request head, and the rules for request targets (RFC 9112 s3.2)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from twincorn.http.errors import ProtocolError

if TYPE_CHECKING:
    from twincorn.http.forwarded import Forwarded

# RFC 3986 section 3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
# followed by an authority (section 3.2): [ userinfo "@" ] host [ ":" port ],
# host being an IP literal in brackets or a reg-name.
_ABSOLUTE = re.compile(
    rb"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://"
    rb"(?P<authority>(?:[A-Za-z0-9\-._~!$&'()*+,;=:%]*@)?"
    rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?)"
    rb"(?P<rest>[/?#].*)?",
    re.DOTALL,
)
# RFC 9112 section 3.2.3: authority-form = uri-host ":" port, CONNECT only.
_AUTHORITY = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+):[0-9]+")


# Anything but printable ASCII in request data is written as an escape, so
# that a request cannot put control sequences into a terminal or a log file.
_ESCAPES = {i: f"\\x{i:02x}" for i in [*range(0x20), 0x7F]} | {ord("\\"): "\\\\"}


def printable(data: bytes | str) -> str:
    """Request data as it may be written to a log: printable ASCII, the rest escaped."""
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    text = text.translate(_ESCAPES)
    if not text.isascii():
        text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text


class RequestLine:
    """`GET /path` of a request, for an error-log line: made into a string
    (escaped, shortened) only if the line is written, so that passing one to
    `log.error("... %s", RequestLine(request))` costs nothing otherwise."""

    __slots__ = ("request",)

    def __init__(self, request: Request) -> None:
        self.request = request

    def __str__(self) -> str:
        target = printable(self.request.target)
        if len(target) > 200:
            target = target[:200] + "..."
        return f"{self.request.method} {target}"


class Request:
    """One request's head, as the parser validated it.

    `headers` keeps every field line in order, names lower-cased (the form
    ASGI wants; WSGI upper-cases them again), values with surrounding
    whitespace removed. `path` and `query` are raw bytes, not yet decoded:
    each adapter decodes them the way its spec asks. `forwarded` is what a
    trusted proxy's headers say (http/forwarded.py), set by the connection
    driver; None for the connection's own view.
    """

    __slots__ = (
        "chunked",
        "content_length",
        "expect_continue",
        "forwarded",
        "headers",
        "host",
        "http_version",
        "keep_alive",
        "method",
        "path",
        "query",
        "target",
        "trailers",
        "upgrade",
    )

    def __init__(self) -> None:
        self.method = "GET"
        self.target = b""
        self.path = b""
        self.query = b""
        self.http_version = "1.1"
        self.headers: list[tuple[bytes, bytes]] = []
        self.trailers: list[tuple[bytes, bytes]] = []
        self.keep_alive = True
        self.expect_continue = False
        self.host: bytes | None = None
        self.content_length: int | None = None
        self.chunked = False
        self.upgrade = False
        self.forwarded: Forwarded | None = None

    @property
    def has_body(self) -> bool:
        """True when the request declares a body (chunked or a non-zero length)."""
        return self.chunked or bool(self.content_length)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target!r} HTTP/{self.http_version}>"


def split_target(method: str, target: bytes) -> tuple[bytes, bytes]:
    """Return (path, query) for a request target, or raise ProtocolError(400).

    RFC 9112 section 3.2 allows four forms; which one depends on the method.
    A fragment is not part of a request target, but old clients send one:
    it is dropped, as gunicorn does.
    """
    if target[:1] == b"/":  # origin-form, the common case
        rest = target
    elif target == b"*":
        if method != "OPTIONS":  # section 3.2.4: asterisk-form is OPTIONS only
            raise ProtocolError(400, "asterisk-form target is for OPTIONS only")
        return b"*", b""
    elif method == "CONNECT":
        if _AUTHORITY.fullmatch(target) is None:
            raise ProtocolError(400, "CONNECT needs an authority-form target")
        return b"", b""
    else:
        m = _ABSOLUTE.fullmatch(target)
        if m is None:
            raise ProtocolError(400, "malformed request target")
        rest = m.group("rest") or b"/"
        if rest[:1] != b"/":
            rest = b"/" + rest
    hash_at = rest.find(b"#")
    if hash_at >= 0:
        rest = rest[:hash_at]
    path, _, query = rest.partition(b"?")
    return path, query
