"""The response side of the core, fed application output, no I/O."""

from __future__ import annotations

import pytest

from twincorn.http import Request, ResponseError, ResponseWriter
from twincorn.http.response import encode_error_response, informational


def request(method: str = "GET", version: str = "1.1", keep_alive: bool = True) -> Request:
    r = Request()
    r.method, r.http_version, r.keep_alive = method, version, keep_alive
    return r


def head_of(data: bytes) -> tuple[bytes, dict[bytes, bytes], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(b": ")
        fields[name.lower()] = value
    return lines[0], fields, body


def test_one_piece_gets_content_length() -> None:
    w = ResponseWriter(200, [(b"Content-Type", b"text/plain")], request(), b"twincorn")
    status, fields, body = head_of(w.body(b"hello", False))
    assert status == b"HTTP/1.1 200 OK"
    assert fields[b"content-length"] == b"5"
    assert fields[b"server"] == b"twincorn"
    assert b"date" in fields
    assert body == b"hello"
    assert w.finished and w.keep_alive and w.bytes_sent == 5


def test_streamed_body_is_chunked() -> None:
    w = ResponseWriter(200, [], request())
    out = w.body(b"", True)  # nothing yet: the head waits for a non-empty piece
    assert out == b""
    out = w.body(b"ab", True) + w.body(b"", True) + w.body(b"cde", True) + w.body(b"", False)
    _, fields, body = head_of(out)
    assert fields[b"transfer-encoding"] == b"chunked"
    assert body == b"2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"


def test_http10_stream_is_close_delimited() -> None:
    w = ResponseWriter(200, [], request(version="1.0"))
    out = w.body(b"ab", True) + w.body(b"c", False)
    _, fields, body = head_of(out)
    assert b"transfer-encoding" not in fields and b"content-length" not in fields
    assert fields[b"connection"] == b"close"
    assert body == b"abc"
    assert not w.keep_alive


def test_http10_keep_alive_is_announced() -> None:
    w = ResponseWriter(200, [], request(version="1.0"))
    _, fields, _ = head_of(w.body(b"x", False))
    assert fields[b"connection"] == b"keep-alive"


def test_declared_length_is_enforced() -> None:
    w = ResponseWriter(200, [(b"content-length", b"3")], request())
    w.body(b"ab", True)
    with pytest.raises(ResponseError):
        w.body(b"cd", True)


def test_short_body_closes_the_connection() -> None:
    w = ResponseWriter(200, [(b"Content-Length", b"10")], request())
    w.body(b"abc", False)
    assert not w.keep_alive


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(status: int) -> None:
    w = ResponseWriter(status, [], request())
    out = w.body(b"ignored", False)
    _, fields, body = head_of(out)
    assert body == b""
    assert b"content-length" not in fields and b"transfer-encoding" not in fields


def test_head_keeps_the_get_length_but_sends_no_body() -> None:
    w = ResponseWriter(200, [], request("HEAD"))
    _, fields, body = head_of(w.body(b"hello", False))
    assert fields[b"content-length"] == b"5"
    assert body == b""
    assert w.bytes_sent == 0


def test_head_with_no_body_given_says_no_length() -> None:
    # A Flask or Falcon streamed response: GET would be chunked; its length
    # is not known without making it (RFC 9110 s9.3.2). Never a wrong 0.
    w = ResponseWriter(200, [], request("HEAD"))
    _, fields, body = head_of(w.body(b"", False))
    assert b"content-length" not in fields and b"transfer-encoding" not in fields
    assert body == b""


def test_head_with_a_streamed_body_says_no_length() -> None:
    w = ResponseWriter(200, [], request("HEAD"))
    out = w.body(b"piece", True) + w.body(b"more", True) + w.body(b"", False)
    _, fields, body = head_of(out)
    assert b"content-length" not in fields and b"transfer-encoding" not in fields
    assert body == b""


def test_head_keeps_a_declared_length() -> None:
    w = ResponseWriter(200, [(b"content-length", b"42")], request("HEAD"))
    _, fields, _ = head_of(w.body(b"", False))
    assert fields[b"content-length"] == b"42"


def test_a_2xx_to_connect_opens_a_tunnel_with_no_framing() -> None:
    # RFC 9110 s9.3.6: no Content-Length or Transfer-Encoding; what follows
    # the head is the tunnel's, and the close ends it.
    w = ResponseWriter(200, [(b"content-length", b"3")], request("CONNECT"))
    out = w.body(b"raw", False)
    _, fields, body = head_of(out)
    assert not {b"content-length", b"transfer-encoding", b"connection"} & fields.keys()
    assert body == b"raw" and not w.keep_alive


def test_a_refused_connect_is_framed_as_usual() -> None:
    w = ResponseWriter(403, [], request("CONNECT"))
    _, fields, _ = head_of(w.body(b"no", False))
    assert fields[b"content-length"] == b"2"


def test_the_connection_can_refuse_keep_alive() -> None:
    w = ResponseWriter(200, [], request(), keep_alive=False)
    _, fields, _ = head_of(w.body(b"x", False))
    assert fields[b"connection"] == b"close" and not w.keep_alive


@pytest.mark.parametrize(
    "header",
    [
        (b"X-A", b"one\r\nSet-Cookie: evil=1"),
        (b"X-A", b"one\nx"),
        (b"X-A", b"nul\x00"),
        (b"X-A\r\nEvil", b"1"),
        (b"Bad Name", b"1"),
        (b"", b"1"),
    ],
)
def test_response_splitting_is_refused(header: tuple[bytes, bytes]) -> None:
    with pytest.raises(ResponseError):
        ResponseWriter(200, [header], request())


def test_list_pairs_and_app_framing_headers() -> None:
    headers = [[b"Transfer-Encoding", b"chunked"], [b"Connection", b"close"], [b"X", b"1"]]
    w = ResponseWriter(200, headers, request())  # type: ignore[arg-type]
    _, fields, _ = head_of(w.body(b"a", True) + w.body(b"", False))
    assert fields[b"transfer-encoding"] == b"chunked"  # ours, once
    assert fields[b"connection"] == b"close"
    assert not w.keep_alive


def test_app_server_and_date_win() -> None:
    w = ResponseWriter(200, [(b"Server", b"mine"), (b"Date", b"then")], request(), b"twincorn")
    data = w.body(b"", False)
    assert data.count(b"erver: ") == 1 and b"Server: mine" in data
    assert data.count(b"ate: ") == 1 and b"Date: then" in data


@pytest.mark.parametrize("status", [99, 600, "200", None])
def test_invalid_status(status: object) -> None:
    with pytest.raises(ResponseError):
        ResponseWriter(status, [], request())  # type: ignore[arg-type]


def test_two_different_lengths() -> None:
    with pytest.raises(ResponseError):
        ResponseWriter(200, [(b"content-length", b"1"), (b"content-length", b"2")], request())


def test_complete_response_cannot_take_more() -> None:
    w = ResponseWriter(200, [], request())
    w.body(b"x", False)
    with pytest.raises(ResponseError):
        w.body(b"y", False)


def test_error_response_and_informational() -> None:
    data = encode_error_response(431, "too many header fields", b"twincorn")
    status, fields, body = head_of(data)
    assert status == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert fields[b"connection"] == b"close"
    assert int(fields[b"content-length"]) == len(body)
    assert body == b"431 Request Header Fields Too Large: too many header fields\n"
    assert informational(100) == b"HTTP/1.1 100 Continue\r\n\r\n"


def test_sendfile_head() -> None:
    w = ResponseWriter(200, [], request())
    _, fields, _ = head_of(w.file_head(1234))
    assert fields[b"content-length"] == b"1234"
    assert w.finished and w.bytes_sent == 1234 and w.sends_body
