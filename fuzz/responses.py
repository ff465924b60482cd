"""The response writer's oracle: what it writes, h11's client must read.

A generated response (the request's method, version and keep-alive; a
status; the application's headers; its body in pieces, or a file of a given
size sent by other means) goes through `ResponseWriter`. Then:

- a response that must not be written (a status outside 100-599, a header
  name that is not a token, a value with a control character, two
  different Content-Length values, a Content-Length that is not digits, a
  body longer than its Content-Length) raises ResponseError, at the
  construction or at the piece that crosses the line, and no other does;
- the bytes it wrote parse with h11's client as exactly one response (or
  one interim response for 1xx) with the status given, the application's
  plain headers in order, and the body given (none for HEAD, 1xx, 204,
  304), with nothing left over;
- a body shorter than its Content-Length ends the connection, so that h11
  sees the truncation instead of a complete response.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import h11

from fuzz.finding import Finding
from fuzz.source import BytesSource, Source, choice
from twincorn.http import Request, ResponseError, ResponseWriter
from twincorn.http.response import body_allowed

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
STATUSES = (
    200, 200, 200, 201, 204, 206, 301, 304, 400, 404, 500, 503, 100, 101, 103, 199, 205, 299,
    599, 99, 600, 0, 1000,
)
NAMES = (
    b"Content-Type", b"content-length", b"Content-Length", b"Transfer-Encoding", b"Connection",
    b"Date", b"Server", b"Set-Cookie", b"X-Custom", b"ETag", b"Bad Name", b"", b"a:b", b"\xe9",
)
VALUES = (
    b"text/plain", b"chunked", b"close", b"keep-alive", b"gzip, chunked", b"x", b"",
    b" padded ", b"a\rb", b"a\nb", b"a\x00b", b"\x80\xff", b"a\x0bb", b"a\x01b", b"a\x7fb",
    b"a\tb",
)
LENGTHS = (b"%d", b" %d ", b"%d", b"0%d", b"+%d", b"-1", b"x", b"")


@dataclass
class ResponseSpec:
    method: str = "GET"
    version: str = "1.1"
    keep_alive: bool = True
    status: int = 200
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    pieces: list[bytes] = field(default_factory=list)  # the last one is sent with more=False
    file: int | None = None  # file_head(file) instead of pieces


def response_spec(src: Source) -> ResponseSpec:
    spec = ResponseSpec(
        method=choice(src, ("GET", "GET", "HEAD", "POST")),
        version="1.1" if src.chance(0.8) else "1.0",
        keep_alive=src.chance(0.85),
        status=choice(src, STATUSES) if src.chance(0.9) else src.integer(100, 599),
    )
    spec.pieces = [src.raw(12) for _ in range(src.integer(1, 4))]
    size = sum(map(len, spec.pieces))
    if src.chance(0.1):
        spec.file, spec.pieces = src.integer(0, 40), []
        size = spec.file
    for _ in range(src.integer(0, 4)):
        name = choice(src, NAMES)
        if name.lower() == b"content-length" and src.chance(0.8):
            value = choice(src, LENGTHS)
            if b"%d" in value:
                value = value % max(size + choice(src, (0, 0, 0, -1, 1, -5, 5)), 0)
        else:
            value = choice(src, VALUES) if src.chance(0.9) else src.raw(6)
        spec.headers.append((name, value))
    return spec


def refusal(spec: ResponseSpec) -> str:
    """Why the writer must refuse this response at construction, or ""."""
    if not 100 <= spec.status <= 599:
        return "status"
    declared = None
    for name, value in spec.headers:
        if _TOKEN.fullmatch(name) is None:
            return "name"
        if _CONTROL.search(value) is not None:
            return "value"
        if name.lower() == b"content-length":
            text = value.strip(b" \t")
            if not text.isdigit():
                return "length"
            if declared is not None and int(text) != declared:
                return "two lengths"
            declared = int(text)
    return ""


def declared_length(spec: ResponseSpec) -> int | None:
    for name, value in spec.headers:
        if name.lower() == b"content-length":
            return int(value.strip(b" \t"))
    return None


def check_response_bytes(data: bytes) -> None:
    check_response(response_spec(BytesSource(data)))


def check_response(spec: ResponseSpec) -> None:
    request = Request()
    request.method, request.http_version, request.keep_alive = (
        spec.method, spec.version, spec.keep_alive,
    )
    why = refusal(spec)
    try:
        writer = ResponseWriter(spec.status, spec.headers, request, b"twincorn")
    except ResponseError as exc:
        if not why:
            raise Finding("response", f"refused a response it may write: {exc}") from None
        return
    if why:
        raise Finding("response", f"wrote a response with a bad {why}")
    wrote, body = _write(spec, writer)
    if wrote is not None:
        _read_back(spec, writer, wrote, body)


def _write(spec: ResponseSpec, writer: ResponseWriter) -> tuple[bytes | None, bytes]:
    """(the bytes written, the body that was sent), or (None, b"") after the
    refusal of a body longer than its Content-Length."""
    declared = declared_length(spec)
    sends = body_allowed(spec.method, spec.status)
    if spec.file is not None:
        head = writer.file_head(spec.file)
        sent = min(spec.file, declared if declared is not None else spec.file) if sends else 0
        return head + b"f" * sent, b"f" * sent
    out = bytearray()
    total = 0
    for i, piece in enumerate(spec.pieces):
        total += len(piece)
        over = sends and declared is not None and total > declared
        try:
            out += writer.body(piece, i < len(spec.pieces) - 1)
        except ResponseError as exc:
            if over:
                return None, b""
            raise Finding("response", f"refused a body within its framing: {exc}") from None
        if over:
            raise Finding("response", "wrote a body longer than its Content-Length")
    if not writer.finished:
        raise Finding("response", "not finished after the last piece")
    return bytes(out), b"".join(spec.pieces) if sends else b""


def _read_back(spec: ResponseSpec, writer: ResponseWriter, wrote: bytes, body: bytes) -> None:
    """h11's client reads `wrote`, as the answer to the request of `spec`."""
    conn = h11.Connection(h11.CLIENT)
    headers = [(b"host", b"x")]
    if spec.status == 101:
        headers += [(b"connection", b"upgrade"), (b"upgrade", b"x")]
    conn.send(h11.Request(method=spec.method, target="/", headers=headers))
    conn.send(h11.EndOfMessage())
    conn.receive_data(wrote)
    if not writer.keep_alive and spec.status >= 200:
        conn.receive_data(b"")  # the writer ends the connection: h11 sees the end
    declared = declared_length(spec)
    short = declared is not None and len(body) < declared and body_allowed(
        spec.method, spec.status
    )
    try:
        events = _events(conn)
    except h11.RemoteProtocolError as exc:
        if short and "complete message body" in str(exc):
            return  # the truncation is seen, as it must be
        raise Finding("response", f"h11 cannot read it: {exc}") from None
    if short:
        raise Finding("response", "a body shorter than its Content-Length read as complete")
    if spec.status < 200:
        _check_interim(spec, events)
        return
    kinds = [type(e).__name__ for e in events]
    if kinds[:1] != ["Response"] or kinds[-1:] != ["EndOfMessage"] or kinds.count(
        "Response"
    ) != 1:
        raise Finding("response", "not one complete response")
    response = events[0]
    assert isinstance(response, h11.Response)
    if response.status_code != spec.status:
        raise Finding("response", "the status differs")
    got = b"".join(bytes(e.data) for e in events if isinstance(e, h11.Data))
    if got != body:
        raise Finding("response", "the body read back differs from the body given")
    _check_headers(spec, response.headers.raw_items(), writer)
    if conn.trailing_data[0]:
        raise Finding("response", "bytes left after the response")


def _events(conn: h11.Connection) -> list[h11.Event]:
    events: list[h11.Event] = []
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA or event is h11.PAUSED:
            return events
        if isinstance(event, h11.ConnectionClosed):
            return events
        assert not isinstance(event, type), event
        events.append(event)
        if isinstance(event, h11.EndOfMessage):
            return events


def _check_interim(spec: ResponseSpec, events: list[h11.Event]) -> None:
    if len(events) != 1 or not isinstance(events[0], h11.InformationalResponse):
        raise Finding("response", f"not one interim response: {events}")
    if events[0].status_code != spec.status:
        raise Finding("response", "the interim status differs")


def _check_headers(
    spec: ResponseSpec, got: list[tuple[bytes, bytes]], writer: ResponseWriter
) -> None:
    framing = {b"content-length", b"transfer-encoding", b"connection"}
    mine = [(n.lower(), v.strip(b" \t")) for n, v in spec.headers if n.lower() not in framing]
    theirs = [(n.lower(), v) for n, v in got if n.lower() not in framing]
    own = {b"date", b"server"} - {n for n, _ in mine}
    if [h for h in theirs if h[0] not in own] != mine:
        raise Finding("response", "the application's headers differ when read back")
    closing = any(n.lower() == b"connection" and b"close" in v.lower() for n, v in got)
    if closing == writer.keep_alive:
        raise Finding("response", "Connection: close disagrees with the writer's keep_alive")
