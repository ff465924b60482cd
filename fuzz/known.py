"""The known ways twincorn's parser and h11 differ, each with its reason.

docs/http.md ("Where twincorn and h11 differ") lists the same classes by
name, with the RFC sections; tests/test_fuzz.py checks that every name here
is there. A disagreement that fits none of these is a finding: either
twincorn is wrong (fix src/twincorn/http/) or a new class belongs here and in
the docs.

Each class matches on the kind of disagreement and on twincorn's reason or
h11's error message (a regular expression), and optionally on the request
as the side that accepted it reported it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from fuzz.differential import Disagreement

_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# A line that begins with whitespace after a field line: obs-fold.
_FOLD = re.compile(rb"\n[ \t]")
# A line end that is not CRLF.
_BARE = re.compile(rb"(?<!\r)\n|\r(?!\n)")


@dataclass(frozen=True)
class Known:
    name: str
    kind: str  # as in Disagreement.kind
    detail: re.Pattern[str]
    why: str
    also: Callable[[Disagreement, bytes], bool] | None = None

    def matches(self, d: Disagreement, data: bytes) -> bool:
        if d.kind != self.kind or self.detail.search(d.detail) is None:
            return False
        return self.also is None or self.also(d, data)


Also = Callable[[Disagreement, bytes], bool]


def _h11_saw_control(d: Disagreement, data: bytes) -> bool:
    fields = [] if d.theirs is None else d.theirs.headers + d.theirs.trailers
    return any(_CONTROL.search(v) for _, v in fields)


def _pri(d: Disagreement, data: bytes) -> bool:
    return d.theirs is not None and d.theirs.method == b"PRI"


def _folded(d: Disagreement, data: bytes) -> bool:
    return _FOLD.search(data) is not None


def _bare_line_end(d: Disagreement, data: bytes) -> bool:
    return _BARE.search(data) is not None


def _te_trailer(d: Disagreement, data: bytes) -> bool:
    return d.theirs is not None and any(
        n.lower() == b"transfer-encoding" for n, _ in d.theirs.trailers
    )


def _te_chunked(d: Disagreement, data: bytes) -> bool:
    return d.theirs is not None and any(
        n.lower() == b"transfer-encoding" and v.lower() == b"chunked" for n, v in d.theirs.headers
    )


def _many_digits(d: Disagreement, data: bytes) -> bool:
    return d.ours is not None and any(
        n == b"content-length" and len(v) > 20 for n, v in d.ours.request.headers
    )


def _later_minor(d: Disagreement, data: bytes) -> bool:
    return d.theirs is not None and d.theirs.version not in (b"1.0", b"1.1")


def _k(name: str, kind: str, detail: str, why: str, also: Also | None = None) -> Known:
    return Known(name, kind, re.compile(detail), why, also)


T, H, D = "twincorn refuses", "h11 refuses", "differ"
KNOWN: tuple[Known, ...] = (
    _k("method-unknown-to-llhttp", T,
       r"Invalid method|Expected space after method|HTTP/2 Connection Preface",
       "llhttp parses only the methods it knows; h11 takes any token (RFC 9110 s9.1 "
       "would allow a 501 for an unknown method)"),
    _k("method-pri", "head ends", r"h11 found",
       "llhttp reads a request line with the method PRI as the start of the "
       "HTTP/2 connection preface (RFC 9113 s3.4) and waits for the rest of it; "
       "h11 takes PRI as any other method", _pri),
    _k("version-major", T, r"^505 ",
       "twincorn serves HTTP/1.x only: another major version is a 505 "
       "(RFC 9110 s15.6.6); h11 reports any DIGIT.DIGIT version"),
    _k("version-minor", D, r"^version$",
       "twincorn reports HTTP/1.2 to 1.9 as 1.1, which it processes them as "
       "(RFC 9110 s2.5); h11 reports the version as sent"),
    _k("version-minor-host", T, r"HTTP/1.1 request without a Host header",
       "HTTP/1.2 to 1.9 are processed as 1.1 (RFC 9110 s2.5), which needs Host "
       "(RFC 9112 s3.2); h11 asks Host of 1.1 only", _later_minor),
    _k("control-in-value", T, r"Invalid header value char", "RFC 9110 s5.5: a field "
       "value holds no control character but HTAB; h11 only refuses NUL and whitespace",
       _h11_saw_control),
    _k("target-form", T,
       r"malformed request target|asterisk-form|CONNECT needs|char(acters)? in url"
       r"|start char in url|Double @ in url",
       "RFC 9112 s3.2: the target is one of four forms, and which depends on the "
       "method; h11 takes any run of visible characters"),
    _k("invalid-host", T, r"invalid Host header",
       "RFC 9112 s3.2: a Host that is not uri-host [':' port] is a 400; h11 does "
       "not check the value"),
    _k("limits", T, r"^(413|414|431) |Content-Length overflow",
       "twincorn's size limits (docs/http.md, Limits) are not h11's (one 1 MiB "
       "buffer in this check, and Content-Length up to 20 digits)"),
    _k("expectation", T, r"^417 ",
       "RFC 9110 s10.1.1: a server MAY answer 417 to an expectation it cannot "
       "meet; h11 ignores every expectation but 100-continue"),
    _k("te-in-http10", T, r"Transfer-Encoding in an HTTP/1.0 request",
       "RFC 9112 s6.1: Transfer-Encoding in HTTP/1.0 means faulty framing; "
       "twincorn refuses it, h11 decodes the chunks"),
    _k("obs-fold", T, r"whitespace after header value|Invalid header (field|value) char",
       "RFC 9112 s5.2: a server MUST either refuse obs-fold with 400 (twincorn's "
       "default) or unfold it (h11)", _folded),
    _k("cl-with-te", T, r"Content-Length can't be present with Transfer-Encoding"
       r"|Transfer-Encoding can't be present with Content-Length",
       "RFC 9112 s6.3 and s11.2: both framings at once ought to be handled as an "
       "error (smuggling); h11 lets chunked win"),
    _k("cl-repeated", T, r"Invalid character in Content-Length|Duplicate Content-Length",
       "RFC 9110 s8.6: a recipient MAY refuse a repeated Content-Length (twincorn) "
       "or merge identical values (h11)"),
    _k("body-on-upgrade", T, r"a body on a CONNECT or Upgrade request",
       "twincorn's policy (docs/http.md): the bytes after such a head are another "
       "protocol's, so a body there cannot be framed with confidence"),
    _k("bare-line-ends", T,
       r"Expected CRLF after version|Missing expected (CR|LF)|Expected LF after"
       r"|Expected CRLF|Invalid header (field|value) char",
       "RFC 9112 s2.2: a recipient MAY take a bare LF as a line end; llhttp "
       "(strict) refuses bare LF and bare CR, h11 accepts bare LF", _bare_line_end),
    _k("chunk-grammar", T, r"chunk size|chunk extension",
       "RFC 9112 s7.1: chunk-size is hex digits, extensions have a grammar; h11 "
       "accepts whitespace after the size and anything after ';'"),
    _k("forbidden-trailer", T, r"is not allowed in trailers",
       "RFC 9110 s6.5.1: framing, routing and connection fields must not be "
       "trailers; h11 passes them on"),
    _k("forbidden-trailer-llhttp", T, r"Invalid `Transfer-Encoding` header value",
       "the same, found by llhttp first for Transfer-Encoding", _te_trailer),
    _k("te-chunked-then-tab", T, r"Request has invalid `Transfer-Encoding`",
       "llhttp does not take an HTAB after the final 'chunked' as the optional "
       "whitespace around a field value that it is (RFC 9110 s5.5), and refuses "
       "the request (a refusal on the safe side, left to llhttp)", _te_chunked),
    _k("te-other-than-chunked", H,
       r"Only Transfer-Encoding: chunked|multiple Transfer-Encoding",
       "h11 decodes chunked only (RFC 9112 s6.1 allows a 501); twincorn passes a "
       "coding before the final chunked to the application (docs/http.md)"),
    _k("cl-many-digits", H, r"bad Content-Length",
       "h11 refuses a Content-Length of more than 20 digits (leading zeros "
       "included); RFC 9110 s8.6 sets no such bound, and llhttp takes any value "
       "below 2**64", _many_digits),
    _k("leading-empty-line", H, r"no request line received",
       "RFC 9112 s2.2: a server SHOULD ignore an empty line before a request "
       "line (llhttp does); h11 refuses it"),
    _k("request-line-spaces", H, r"illegal request line",
       "RFC 9112 s3: a recipient MAY split the request line on runs of "
       "whitespace (llhttp takes several SP); h11 wants exactly one SP"),
)


def classify(d: Disagreement, data: bytes) -> Known | None:
    for known in KNOWN:
        if known.matches(d, data):
            return known
    return None
