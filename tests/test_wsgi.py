"""The WSGI adapter against PEP 3333, through a real server: the environ,
wsgi.input (in memory, chunked, spooled to a file) and application errors.

Every application is wrapped in wsgiref.validate.validator (and pytest turns
warnings into errors), except where a test says why not: the validator
rejects a few things on its own before the server could (a CR in a header
value, read() without a size). The response side (start_response, streaming,
close(), wsgi.file_wrapper) is in test_wsgi_response.py, the execution model
(threads, slots, accepting) in test_wsgi_execution.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import httpx
import pytest

from support import connect, exchange, parse_responses
from wsgi_support import (
    TEXT,
    App,
    Environ,
    ErrorLog,
    Serve,
    StartResponse,
    error_log_fixture,  # noqa: F401 - autouse fixture
    get,
    one_response,
    read_all,
)

pytestmark = pytest.mark.timeout(15)




# -- environ ------------------------------------------------------------------


def capture(seen: list[Environ]) -> App:
    """A validated app that keeps each environ and answers with the body."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        seen.append(dict(environ))
        size = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(size)
        start_response("200 OK", TEXT)
        return [body]

    return validator(app)


def test_environ_is_complete_and_right(serve: Serve, error_log: ErrorLog) -> None:
    seen: list[Environ] = []
    # The loopback peer is a trusted proxy by default: its X-Forwarded-For
    # would set REMOTE_ADDR (tests/test_forwarded_driver.py); not here.
    server = serve(capture(seen), root_path="/mount", interface="wsgi",
                   proxy_headers=False)
    with connect(server.port) as sock:
        sock.sendall(
            b"POST /caf%C3%A9/a%20b?x=1&y=%C3%A9 HTTP/1.1\r\n"
            b"Host: example.test:8080\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: 5\r\n"
            b"X-Dup: one\r\n"
            b"X-Dup: two\r\n"
            b"X_Sneaky: evil\r\n"
            b"X-Forwarded-For: 10.0.0.1\r\n"
            b"Connection: close\r\n"
            b"\r\nhello"
        )
        client_port = sock.getsockname()[1]
        raw = read_all(sock)
    response = one_response(raw)
    assert response.status == 200 and response.body == b"hello"
    (env,) = seen
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == "/mount"
    # Percent-decoded, the bytes taken as latin-1 (PEP 3333 "Unicode Issues").
    assert env["PATH_INFO"] == "/caf\u00c3\u00a9/a b"
    assert env["QUERY_STRING"] == "x=1&y=%C3%A9"
    assert env["CONTENT_TYPE"] == "text/plain; charset=utf-8"
    assert env["CONTENT_LENGTH"] == "5"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(server.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"] == str(client_port)
    assert env["HTTP_HOST"] == "example.test:8080"
    assert env["HTTP_X_DUP"] == "one,two"
    assert env["HTTP_X_FORWARDED_FOR"] == "10.0.0.1"
    assert env["HTTP_CONNECTION"] == "close"
    # "X_Sneaky" would pose as "X-Sneaky": dropped, under any spelling.
    assert not [k for k in env if "SNEAKY" in k]
    assert env["wsgi.version"] == (1, 0)
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.input_terminated"] is True
    assert env["wsgi.multithread"] is False
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert callable(env["wsgi.file_wrapper"])
    for key, value in env.items():
        if not key.startswith("wsgi."):
            assert type(value) is str, key
    assert error_log.errors() == []


def test_environ_of_a_bare_get_and_http10(serve: Serve) -> None:
    seen: list[Environ] = []
    server = serve(capture(seen), interface="wsgi")
    raw = exchange(server.port, b"GET / HTTP/1.0\r\n\r\n")
    assert one_response(raw).status == 200
    raw = get(server.port, "/only/path")
    assert one_response(raw).status == 200
    old, new = seen
    assert old["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert old["SCRIPT_NAME"] == "" and old["PATH_INFO"] == "/"
    assert old["QUERY_STRING"] == ""
    assert "HTTP_HOST" not in old
    assert new["PATH_INFO"] == "/only/path" and new["QUERY_STRING"] == ""
    for env in (old, new):
        assert env.get("CONTENT_LENGTH", "") in ("", "0")
        assert "CONTENT_TYPE" not in env or env["CONTENT_TYPE"] == ""


def test_environ_per_request_on_one_connection(serve: Serve) -> None:
    """Keep-alive: the connection's part of the environ is shared, the
    request's part is not."""
    seen: list[Environ] = []
    server = serve(capture(seen), interface="wsgi")
    raw = exchange(
        server.port,
        b"GET /a?1 HTTP/1.1\r\nHost: t\r\nX-One: 1\r\n\r\n"
        b"PUT /b HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    )
    assert [r.status for r in parse_responses(raw)] == [200, 200]
    first, second = seen
    assert (first["PATH_INFO"], first["QUERY_STRING"], first["HTTP_X_ONE"]) == ("/a", "1", "1")
    assert (second["REQUEST_METHOD"], second["PATH_INFO"]) == ("PUT", "/b")
    assert "HTTP_X_ONE" not in second and second["CONTENT_LENGTH"] == "2"
    assert first["REMOTE_PORT"] == second["REMOTE_PORT"]


def test_wsgi_multithread_follows_threads(serve: Serve) -> None:
    for threads, expected in ((1, False), (2, True)):
        seen: list[Environ] = []
        server = serve(capture(seen), threads=threads, interface="wsgi")
        assert httpx.get(server.url + "/").status_code == 200
        assert seen[0]["wsgi.multithread"] is expected


def test_wsgi_errors_goes_to_the_error_log(serve: Serve, error_log: ErrorLog) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        errors = environ["wsgi.errors"]
        errors.write("first line from the app\nsecond ")
        errors.writelines(["line\n", "unterminated"])
        errors.flush()
        start_response("200 OK", TEXT)
        return [b"ok"]

    server = serve(validator(app), interface="wsgi")
    assert httpx.get(server.url + "/").text == "ok"
    assert error_log.errors() == ["first line from the app", "second line", "unterminated"]


def test_httpx_and_curl_headers_reach_the_app(serve: Serve) -> None:
    seen: list[Environ] = []
    server = serve(capture(seen), interface="wsgi")
    r = httpx.get(server.url + "/h?q=1", headers={"X-Token": "abc", "Accept": "text/plain"})
    assert r.status_code == 200
    out = subprocess.run(
        ["curl", "-sS", "-H", "X-Token: from curl", "--data-binary", "curl body",
         server.url + "/c"],
        capture_output=True, timeout=5, check=True,
    )
    assert out.stdout == b"curl body"
    via_httpx, via_curl = seen
    assert via_httpx["HTTP_X_TOKEN"] == "abc" and via_httpx["HTTP_ACCEPT"] == "text/plain"
    assert via_httpx["QUERY_STRING"] == "q=1"
    assert via_curl["HTTP_X_TOKEN"] == "from curl"
    assert via_curl["REQUEST_METHOD"] == "POST"
    assert via_curl["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert via_curl["HTTP_USER_AGENT"].startswith("curl/")


# -- wsgi.input ------------------------------------------------------------------


def reader(steps: Callable[[Any], list[bytes]]) -> App:
    """A validated app that runs `steps` on wsgi.input and returns a JSON
    list of what each step read."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        pieces = steps(environ["wsgi.input"])
        data = json.dumps([p.decode("latin-1") for p in pieces]).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [data]

    return validator(app)


def post(port: int, body: bytes, *, chunked: bool = False) -> list[str]:
    """POST `body`; "|" marks where chunks end (and is not sent)."""
    if chunked:
        framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in body.split(b"|") if p)
        head = b"Transfer-Encoding: chunked\r\n"
        body = framed + b"0\r\n\r\n"
    else:
        body = body.replace(b"|", b"")
        head = b"Content-Length: %d\r\n" % len(body)
    start = b"POST / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
    raw = exchange(port, start + head + b"\r\n" + body)
    response = one_response(raw)
    assert response.status == 200, raw
    result: list[str] = json.loads(response.body)
    return result


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_input_read_n_to_a_clean_end(serve: Serve, chunked: bool) -> None:
    def steps(stream: Any) -> list[bytes]:
        return [stream.read(3), stream.read(4), stream.read(1000), stream.read(10), stream.read(1)]

    server = serve(reader(steps), interface="wsgi")
    assert post(server.port, b"abc|defg|hij", chunked=chunked) == ["abc", "defg", "hij", "", ""]


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_input_readline_and_readlines(serve: Serve, chunked: bool) -> None:
    def steps(stream: Any) -> list[bytes]:
        first = stream.readline()
        limited = stream.readline(3)
        rest_of_line = stream.readline()
        return [first, limited, rest_of_line, *stream.readlines(), stream.readline()]

    server = serve(reader(steps), interface="wsgi")
    body = b"one\n|second\nthi|rd\nlast, no newline"
    assert post(server.port, body, chunked=chunked) == [
        "one\n", "sec", "ond\n", "third\n", "last, no newline", "",
    ]


def test_input_ends_at_the_body_on_a_kept_alive_connection(serve: Serve) -> None:
    def steps(stream: Any) -> list[bytes]:
        return [stream.read(100), stream.readline(), stream.read(5)]

    server = serve(reader(steps), interface="wsgi")
    raw = exchange(
        server.port,
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\none"
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n"
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nthree",
    )
    bodies = [json.loads(r.body) for r in parse_responses(raw)]
    assert bodies == [["one", "", ""], ["two", "", ""], ["three", "", ""]]


def test_input_iteration(serve: Serve) -> None:
    def steps(stream: Any) -> list[bytes]:
        return [*stream]

    server = serve(reader(steps), interface="wsgi")
    assert post(server.port, b"a\n|b\n|c", chunked=True) == ["a\n", "b\n", "c"]
    assert post(server.port, b"") == []


def test_input_read_without_size(serve: Serve) -> None:
    # Not validated: wsgiref.validate insists on read(size), though PEP 3333
    # servers commonly allow read() and applications use it.
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        stream = environ["wsgi.input"]
        head = stream.read(2)
        rest = stream.read()
        start_response("200 OK", TEXT)
        return [b"%s/%s/%s" % (head, rest, stream.read())]

    server = serve(app)
    raw = exchange(server.port, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n"
                   b"Connection: close\r\n\r\nabcdef")
    assert one_response(raw).body == b"ab/cdef/"


def digest_app(kinds: list[str]) -> App:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        stream = environ["wsgi.input"]
        kinds.append(type(stream.input).__name__)  # under validate's wrapper
        h = hashlib.sha256()
        size = 0
        while True:
            block = stream.read(8192)
            if not block:
                break
            h.update(block)
            size += len(block)
        start_response("200 OK", TEXT)
        return [f"{size} {h.hexdigest()}".encode()]

    return validator(app)


def test_large_body_is_spooled_and_read_back_exactly(serve: Serve, tmp_path: Path) -> None:
    kinds: list[str] = []
    server = serve(digest_app(kinds), wsgi_spool_size="64k", interface="wsgi")
    small = os.urandom(65536)  # exactly the spool size: kept in memory
    large = os.urandom(3 * 1024 * 1024 + 17)
    for body in (small, large):
        r = httpx.post(server.url + "/", content=body)
        assert r.text == f"{len(body)} {hashlib.sha256(body).hexdigest()}"

    # Chunked (httpx streams a generator), and curl with Expect: 100-continue.
    def pieces() -> Iterator[bytes]:
        for i in range(0, len(large), 100_000):
            yield large[i : i + 100_000]

    r = httpx.post(server.url + "/", content=pieces())
    assert r.text == f"{len(large)} {hashlib.sha256(large).hexdigest()}"
    path = tmp_path / "body.bin"
    path.write_bytes(large)
    out = subprocess.run(
        ["curl", "-sS", "-H", "Expect: 100-continue", "--data-binary", f"@{path}",
         server.url + "/"],
        capture_output=True, timeout=5, check=True,
    )
    assert out.stdout.decode() == f"{len(large)} {hashlib.sha256(large).hexdigest()}"
    assert kinds[0] == "BytesIO"
    assert all(kind != "BytesIO" for kind in kinds[1:]), kinds  # temporary files


# -- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("threads", [1, 2])
def test_raise_before_start_response_is_a_500(
    serve: Serve, error_log: ErrorLog, threads: int
) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        raise KeyError("no such thing")

    server = serve(validator(app), threads=threads, interface="wsgi")
    response = one_response(get(server.port))
    assert response.status == 500
    assert b"no such thing" not in response.body  # no details to the client
    assert response.header(b"connection") == b"close"
    assert httpx.get(server.url + "/").status_code == 500  # still serving
    assert error_log.app_failed()


@pytest.mark.parametrize("threads", [1, 2])
def test_raise_after_the_body_began_closes_the_connection(
    serve: Serve, error_log: ErrorLog, threads: int
) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)

        def body() -> Iterator[bytes]:
            yield b"partial"
            raise RuntimeError("mid-body")

        return body()

    server = serve(validator(app), threads=threads, interface="wsgi")
    with connect(server.port) as sock:
        # Keep-alive requested: the close is the only sign of the failure.
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        raw = read_all(sock)
    assert raw.startswith(b"HTTP/1.1 200 OK") and b"partial" in raw
    assert not raw.endswith(b"0\r\n\r\n")
    (response,) = parse_responses(raw)
    assert not response.complete
    assert error_log.app_failed()


@pytest.mark.parametrize(
    "value", ["a\r\nInjected: yes", "a\nInjected: yes", "a\rInjected: yes", "a\x00Injected"]
)
def test_header_with_cr_lf_nul_is_a_500(serve: Serve, error_log: ErrorLog, value: str) -> None:
    # Not validated: validate would refuse the header itself, first.
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [*TEXT, ("X-Echo", value)])
        return [b"body"]

    server = serve(app)
    raw = get(server.port)
    assert one_response(raw).status == 500
    assert b"Injected" not in raw and b"x-echo" not in raw.lower()
    assert error_log.errors()
