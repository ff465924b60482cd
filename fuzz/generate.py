"""Structurally plausible HTTP/1.x request streams, from any `Source`.

A stream is one or more requests back to back (pipelining), each built from
parts that are usually right and sometimes wrong in the ways servers have
been wrong before: odd methods, the four target forms and broken ones,
versions, header names and values with edge bytes, Content-Length and
chunked framing (extensions, trailers) and contradictions between them,
Expect, Upgrade, Connection, obs-fold, and sizes near the parser's limits.
The mutations of fuzz/mutate.py then break what is left.
"""

from __future__ import annotations

from fuzz.source import Source, choice
from twincorn.http.policy import RequestPolicy

DEFAULT = RequestPolicy()
#: Small limits, so that generated inputs reach them cheaply.
TIGHT = RequestPolicy(
    limit_request_line=64,
    limit_request_fields=8,
    limit_request_field_size=64,
    limit_request_head=256,
    limit_request_body=64,
    permit_obsolete_folding=True,
    require_host=False,
)

COMMON_METHODS = (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH")
ODD_METHODS = (
    b"CONNECT", b"TRACE", b"PROPFIND", b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"UNLOCK",
    b"SEARCH", b"PURGE", b"LINK", b"UNLINK", b"REPORT", b"M-SEARCH", b"NOTIFY", b"QUERY",
    b"SOURCE", b"ACL", b"PRI", b"MKCALENDAR", b"get", b"Get", b"-BLARGH", b"FOO", b"G\x00T",
    b"GETT", b"", b"GET\t", b"\xffGET",
)
VERSIONS = (b"HTTP/1.1",) * 8 + (b"HTTP/1.0",) * 3 + (
    b"HTTP/0.9", b"HTTP/2.0", b"HTTP/1.2", b"HTTP/1.9", b"HTTP/3.0", b"http/1.1", b"HTTP/1.10",
    b"HTTP/11", b"HTTP/1.", b"HTTP/", b"", b"HTTP/1.1 ", b"HTTP /1.1", b"HTTP/9.9",
)
HOSTS = (
    b"example.com", b"example.com:8080", b"localhost", b"127.0.0.1:80", b"[::1]:8000",
    b"[::1]", b"xn--bcher-kva.example", b"", b"a b", b"ex@mple.com", b"host:80:80",
    b"user@host", b"h\xc3\xa9", b"host:", b"[::1", b"a/b", b"%41.example", b"_:1",
)
SCHEMES = (b"http", b"https", b"HTTP", b"ws", b"h-t+t.p", b"1http", b"", b"http:")
NAMES = (
    b"Host", b"Content-Type", b"Accept", b"User-Agent", b"Cookie", b"X-Forwarded-For",
    b"Content-Length", b"Transfer-Encoding", b"Connection", b"Expect", b"Upgrade", b"TE",
    b"Trailer", b"Keep-Alive", b"Content-Encoding", b"Range", b"If-None-Match",
    b"X_Underscore", b"!#$%&'*+-.^_`|~", b"x", b"CONTENT-LENGTH", b"transfer-encoding",
)
BAD_NAMES = (b"", b"Bad Name", b"Bad\tName", b"Na:me", b"N\x00", b"\xe9t\xe9", b"(x)", b"a\"b")
VALUES = (
    b"text/plain", b"*/*", b"gzip, deflate", b"a=b; c=d", b'"quoted, string"', b"", b" ",
    b"\t", b"  padded  ", b"\tx\t", b"obs-text \x80\xff", b"ctl \x01", b"del \x7f",
    b"nul \x00", b"a,b,,c", b"\xc3\xa9t\xc3\xa9", b"x" * 40,
)
CONNECTIONS = (
    b"close", b"keep-alive", b"Keep-Alive", b"upgrade", b"Upgrade", b"close, upgrade",
    b"keep-alive, upgrade", b"TE", b"foo", b"CLOSE", b"",
)
CODINGS = (
    b"chunked", b"Chunked", b"CHUNKED", b"gzip, chunked", b"chunked, gzip", b"identity",
    b"chunked, chunked", b"", b"gzip", b" chunked", b"chunked ", b"x-custom, chunked",
    b"chunked;q=1", b"gzip,chunked", b"gzip , chunked",
)
EXPECTS = (b"100-continue", b"100-Continue", b"100-continue ", b"200-ok", b"", b"100-continue, x")
UPGRADES = (b"websocket", b"h2c", b"foo/1, bar", b"")
CHUNK_EXTENSIONS = (
    b";a", b";a=b", b';a="q"', b';a="x\\"y"', b"; a=b", b";a =b", b";", b";a=", b";=b",
    b" ;a", b"\t;a", b";a=b;c", b";a=\x80", b";a\x00", b";a=b\r",
)
FORBIDDEN_TRAILERS = (b"Content-Length", b"Transfer-Encoding", b"Host", b"Connection", b"TE")
SPECIAL = b"\r\n\x00 \t:;,=\"\\/?#%@[]\x7f\x80\xff0123456789aZ-_."


def request_stream(src: Source, policy: RequestPolicy = DEFAULT) -> bytes:
    """One to five requests back to back, now and then with blank lines or
    junk between them."""
    parts = []
    if src.chance(0.03):
        parts.append(choice(src, (b"\r\n", b"\n", b"\r\n\r\n", b" ")))
    count = 1 if src.chance(0.6) else src.integer(2, 5)
    for _ in range(count):
        parts.append(request(src, policy))
        if src.chance(0.05):
            parts.append(choice(src, (b"\r\n", b"\n", b"\r\n\r\n", b"\x00", b"X")))
    return b"".join(parts)


def request(src: Source, policy: RequestPolicy = DEFAULT) -> bytes:
    method = _method(src)
    line = method + b" " + _target(src, method, policy) + b" " + choice(src, VERSIONS)
    if src.chance(0.03):
        line = line.replace(b" ", choice(src, (b"  ", b"\t", b"")), src.integer(1, 2))
    eol = b"\r\n" if src.chance(0.97) else choice(src, (b"\n", b"\r", b"\r\r\n", b"\n\r"))
    fields = _fields(src, method, policy)
    body_fields, body = _framing(src, method, policy)
    fields[src.integer(0, len(fields)) if fields else 0 : 0] = body_fields
    lines = [line]
    for name, value, sep in fields:
        lines.append(name + sep + value)
        if src.chance(0.02):  # obs-fold (RFC 9112 s5.2)
            lines.append(choice(src, (b" ", b"\t", b"  ")) + choice(src, VALUES))
    return eol.join(lines) + eol + eol + body


def _method(src: Source) -> bytes:
    if src.chance(0.85):
        return choice(src, COMMON_METHODS)
    if src.chance(0.9):
        return choice(src, ODD_METHODS)
    return _token(src, 1, 12)


def _token(src: Source, low: int, high: int) -> bytes:
    chars = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return bytes(choice(src, chars) for _ in range(src.integer(low, high)))


def _near(src: Source, limit: int) -> bool:
    """Whether to build a part near `limit`: often for small limits, now and
    then for large ones (they cost time to feed byte by byte)."""
    return src.chance(0.1 if limit < 1000 else 0.015)


def _path(src: Source, policy: RequestPolicy) -> bytes:
    if _near(src, policy.limit_request_line):  # near the request-line limit: 414 above
        path = b"/" + b"p" * max(policy.limit_request_line + src.integer(-4, 4) - 1, 0)
    elif src.chance(0.6):
        path = choice(src, (b"/", b"/index.html", b"/a/b/c", b"/%20x", b"/~user/", b"//x"))
    elif src.chance(0.9):
        chars = b"abcXYZ019-._~!$&'()*+,;=:@/%?#"
        path = b"/" + bytes(choice(src, chars) for _ in range(src.integer(0, 30)))
    else:
        path = b"/" + src.raw(12)
    if src.chance(0.2):
        path += b"?" + choice(src, (b"a=1&b=2", b"", b"q=%C3%A9", b"x?y", b"a b"))
    if src.chance(0.03):
        path += b"#frag"
    return path


def _target(src: Source, method: bytes, policy: RequestPolicy) -> bytes:
    roll = src.integer(0, 99)
    if (method == b"CONNECT" and roll < 70) or roll < 3:  # authority-form
        return choice(src, HOSTS) + choice(src, (b":443", b":80", b"", b":x"))
    if (method == b"OPTIONS" and roll < 40) or roll < 5:  # asterisk-form
        return choice(src, (b"*", b"**", b"*/x"))
    if roll < 15:  # absolute-form
        authority = choice(src, HOSTS)
        if src.chance(0.1):
            authority = b"user:pw@" + authority
        tail = _path(src, policy) if src.chance(0.8) else choice(src, (b"", b"?q", b"#f"))
        return choice(src, SCHEMES) + choice(src, (b"://", b":/", b":")) + authority + tail
    if roll < 17:
        return choice(src, (b"", b"?x", b"a", b"/a b", b"/\x00", b"/\x7f", b"http://"))
    return _path(src, policy)


def _fields(src: Source, method: bytes, policy: RequestPolicy) -> list[tuple[bytes, bytes, bytes]]:
    """(name, value, separator) for each field line but the framing ones."""
    fields = []
    if src.chance(0.9):
        fields.append((b"Host", choice(src, HOSTS) if src.chance(0.2) else HOSTS[0], b": "))
        if src.chance(0.02):
            fields.append((b"Host", choice(src, HOSTS), b": "))
    if _near(src, policy.limit_request_fields * 10):  # near the field-count limit: 431 above
        count = policy.limit_request_fields + src.integer(-3, 1)
    elif _near(src, policy.limit_request_field_size):  # near the field-size limit
        size = policy.limit_request_field_size - 2 - len(b"X-Big") + src.integer(-2, 2)
        fields.append((b"X-Big", b"v" * max(size, 0), b": "))
        count = 0
    else:
        count = src.integer(0, 5)
    for _ in range(count):
        fields.append(_field(src))
    if src.chance(0.08):
        fields.append((b"Connection", choice(src, CONNECTIONS), b": "))
    if src.chance(0.05):
        fields.append((b"Expect", choice(src, EXPECTS), b": "))
    if src.chance(0.04) or (method == b"CONNECT" and src.chance(0.3)):
        fields.append((b"Upgrade", choice(src, UPGRADES), b": "))
        if src.chance(0.7):
            fields.append((b"Connection", b"Upgrade", b": "))
    if src.chance(0.2) and _near(src, policy.limit_request_head):  # the whole head near its limit
        size = policy.limit_request_head // 2 - 40
        fields += [(b"X-A", b"a" * size, b": "), (b"X-B", b"b" * (size + src.integer(0, 80)), b":")]
    return fields


def _field(src: Source) -> tuple[bytes, bytes, bytes]:
    roll = src.integer(0, 99)
    name = choice(src, NAMES) if roll < 80 else _token(src, 1, 20) if roll < 95 else choice(
        src, BAD_NAMES
    )
    value = choice(src, VALUES) if src.chance(0.8) else src.raw(20)
    sep = b": " if src.chance(0.9) else choice(src, (b":", b":\t", b" : ", b": \t ", b"\t:"))
    return name, value, sep


def _framing(
    src: Source, method: bytes, policy: RequestPolicy
) -> tuple[list[tuple[bytes, bytes, bytes]], bytes]:
    """The framing fields and the body they frame (or misframe)."""
    roll = src.integer(0, 99)
    if roll < 40:
        return [], b""
    body = _body(src, policy)
    if roll < 70:
        return [(b"Content-Length", _length(src, len(body)), b": ")], body
    coding = b"chunked" if src.chance(0.75) else choice(src, CODINGS)
    fields = [(b"Transfer-Encoding", coding, b": ")]
    if roll < 73:
        fields.append((b"Content-Length", _length(src, len(body)), b": "))
    elif roll < 75:
        fields.append((b"Transfer-Encoding", choice(src, CODINGS), b": "))
    return fields, chunked(src, body)


def _body(src: Source, policy: RequestPolicy) -> bytes:
    if src.chance(0.1):
        return b""
    if policy.limit_request_body and _near(src, policy.limit_request_body):  # 413 above
        return b"b" * max(policy.limit_request_body + src.integer(-3, 3), 0)
    if src.chance(0.97):
        return src.raw(40)
    return b"B" * src.integer(100, 3000)


def _length(src: Source, true: int) -> bytes:
    roll = src.integer(0, 99)
    if roll < 80:
        return b"%d" % true
    if roll < 88:
        return b"%d" % max(true + src.integer(-5, 5), 0)
    return choice(
        src,
        (b"+%d" % true, b"-1", b" %d" % true, b"%d, %d" % (true, true), b"0%d" % true,
         b"0x%x" % true, b"18446744073709551616", b"99999999999999999999999", b"", b"1_0",
         b"%d %d" % (true, true), b"%d,%d" % (true, true + 1)),
    )


def chunked(src: Source, body: bytes) -> bytes:
    """`body` in chunked framing, usually right, with extensions and
    trailers now and then."""
    out = []
    pos = 0
    while pos < len(body):
        size = min(src.integer(1, 16), len(body) - pos)
        out.append(_chunk_size(src, size) + _extension(src) + b"\r\n")
        out.append(body[pos : pos + size])
        out.append(b"\r\n" if src.chance(0.98) else choice(src, (b"\n", b"", b"\r", b"XX")))
        pos += size
    out.append(choice(src, (b"0", b"0", b"0", b"00", b"000")) + _extension(src) + b"\r\n")
    if src.chance(0.15):
        for _ in range(src.integer(1, 3)):
            name = choice(src, FORBIDDEN_TRAILERS) if src.chance(0.2) else _field(src)[0]
            out.append(name + b": " + choice(src, VALUES) + b"\r\n")
    out.append(b"\r\n" if src.chance(0.97) else choice(src, (b"", b"\n", b"\r\n\r\n")))
    return b"".join(out)


def _chunk_size(src: Source, size: int) -> bytes:
    roll = src.integer(0, 99)
    if roll < 85:
        return b"%x" % size
    if roll < 92:
        return choice(src, (b"%X", b"0%x", b"000%x")) % size
    return choice(
        src, (b"+%x" % size, b"-%x" % size, b" %x" % size, b"%x " % size, b"0x%x" % size,
              b"%x_" % size, b"ffffffffffffffffff", b"")
    )


def _extension(src: Source) -> bytes:
    return choice(src, CHUNK_EXTENSIONS) if src.chance(0.1) else b""
