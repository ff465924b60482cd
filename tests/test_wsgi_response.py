"""The response side of the WSGI adapter against PEP 3333, through a real
server: start_response and exc_info, write(), streaming as produced,
back-pressure, close() on the iterable, wsgi.file_wrapper on both loops.

Applications are wrapped in wsgiref.validate.validator (warnings are
errors) except where a test says why not: the validator hides the list or
the FileWrapper an application returns behind its own iterator.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import httpx
import pytest

from support import connect, exchange
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
    read_until,
    wait_for,
)

pytestmark = pytest.mark.timeout(15)




# -- start_response ------------------------------------------------------------


def test_exc_info_before_the_head_replaces_the_response(serve: Serve) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [*TEXT, ("X-First", "yes")])
        try:
            raise ValueError("the app changed its mind")
        except ValueError:
            start_response("503 Service Unavailable", [*TEXT, ("X-Second", "yes")],
                           sys.exc_info())
        return [b"replaced"]

    server = serve(validator(app), interface="wsgi")
    response = one_response(get(server.port))
    assert response.status == 503 and response.body == b"replaced"
    assert response.header(b"x-second") == b"yes" and response.header(b"x-first") is None


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_exc_info_after_the_head_reraises_and_closes(
    serve: Serve, error_log: ErrorLog, threads: int, method: str
) -> None:
    caught: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)

        def body() -> Iterator[bytes]:
            yield b"first piece"
            try:
                raise ValueError("too late")
            except ValueError:
                try:
                    start_response("500 Internal Server Error", TEXT, sys.exc_info())
                except ValueError as exc:
                    caught.append(str(exc))
                    raise
            yield b"never sent"

        return body()

    server = serve(validator(app), threads=threads, interface="wsgi")
    raw = get(server.port, method=method)
    assert caught == ["too late"]
    # One head only (a HEAD response sent no body, but its head was sent),
    # the rest of the body never came, the connection was closed.
    assert raw.count(b"HTTP/1.1") == 1, raw
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"never sent" not in raw and not raw.endswith(b"0\r\n\r\n")
    if method == "GET":
        assert b"first piece" in raw
    assert error_log.app_failed()


@pytest.mark.parametrize("threads", [1, 2])
def test_start_response_twice_without_exc_info_is_a_500(
    serve: Serve, error_log: ErrorLog, threads: int
) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        start_response("404 Not Found", TEXT)
        return [b"unreachable"]

    server = serve(validator(app), threads=threads, interface="wsgi")
    response = one_response(get(server.port))
    assert response.status == 500 and b"unreachable" not in response.body
    assert error_log.errors()


@pytest.mark.parametrize("threads", [1, 2])
def test_write_callable(serve: Serve, threads: int) -> None:
    def legacy(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", TEXT)
        write(b"written, ")
        write(b"")
        write(b"then more, ")
        return [b"then returned"] if environ["PATH_INFO"] == "/mixed" else []

    server = serve(validator(legacy), threads=threads, interface="wsgi")
    for path, body in (("/", b"written, then more, "),
                       ("/mixed", b"written, then more, then returned")):
        r = httpx.get(server.url + path)
        assert r.status_code == 200 and r.content == body
        assert r.headers["transfer-encoding"] == "chunked"


@pytest.mark.parametrize("threads", [1, 2])
def test_one_piece_response_gets_a_content_length(serve: Serve, threads: int) -> None:
    # Not validated: validate wraps the list in its own iterator.
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        return [b"all at once"]

    server = serve(app, threads=threads)
    r = httpx.get(server.url + "/")
    assert r.content == b"all at once"
    assert r.headers["content-length"] == "11" and "transfer-encoding" not in r.headers


def test_generator_pieces_are_sent_as_produced(serve: Serve) -> None:
    """The first piece reaches the client while the generator still waits
    for the client to have it (threads=2: the loop is free meanwhile)."""
    received = threading.Event()
    waited: list[bool] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)

        def body() -> Iterator[bytes]:
            yield b"first;"
            waited.append(received.wait(3))
            yield b"second"

        return body()

    server = serve(validator(app), threads=2, interface="wsgi")
    with connect(server.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        first = read_until(sock, b"first;", timeout=2.5)
        assert b"first;" in first and b"second" not in first
        received.set()
        raw = first + read_all(sock)
    assert waited == [True]
    assert one_response(raw).body == b"first;second"


class Counted:
    """A streamed body of `count` blocks that records its progress."""

    def __init__(self, count: int, block: int = 65536) -> None:
        self.count = count
        self.data = b"x" * block
        self.produced = 0
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.count):
            self.produced += len(self.data)
            yield self.data

    def close(self) -> None:
        self.closed.set()


@pytest.mark.parametrize("threads", [1, 2])
def test_large_stream_is_paced_by_the_client(serve: Serve, threads: int) -> None:
    total_blocks = 1024  # 64 MiB
    bodies: list[Counted] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        bodies.append(Counted(total_blocks))
        return bodies[-1]

    server = serve(validator(app), threads=threads, interface="wsgi")
    # A client that does not read: the generator must stop far before the end.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", server.port))
    with sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        time.sleep(0.5)
        (body,) = bodies
        stalled = body.produced
        time.sleep(0.2)
        assert body.produced == stalled
        assert 0 < stalled < 16 * 1024 * 1024, stalled
        assert not body.closed.is_set()
        # Now read it all: the generator resumes and completes.
        raw = read_all(sock)
    assert body.produced == total_blocks * 65536
    assert len(raw) > total_blocks * 65536
    assert body.closed.wait(2)


@pytest.mark.parametrize("threads", [1, 2])
def test_close_called_when_the_client_leaves_mid_response(serve: Serve, threads: int) -> None:
    bodies: list[Counted] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        bodies.append(Counted(100_000 if environ["PATH_INFO"] == "/" else 1))
        return bodies[-1]

    server = serve(validator(app), threads=threads, interface="wsgi")
    with connect(server.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        read_until(sock, b"xxxx")
    (body,) = bodies
    assert body.closed.wait(3)
    assert body.produced < 100_000 * 65536
    # The worker still serves.
    assert len(httpx.get(server.url + "/small", timeout=3).content) == 65536


class Tracked:
    """An iterable with close(), optionally failing after some pieces."""

    def __init__(self, pieces: list[bytes], fail_after: int | None = None) -> None:
        self.pieces = pieces
        self.fail_after = fail_after
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        for i, piece in enumerate(self.pieces):
            if i == self.fail_after:
                raise RuntimeError("failed mid-iteration")
            yield piece

    def close(self) -> None:
        self.closed.set()


@pytest.mark.parametrize("threads", [1, 2])
def test_close_called_on_completion_and_on_failure(
    serve: Serve, error_log: ErrorLog, threads: int
) -> None:
    made: list[Tracked] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        fail = 1 if environ["PATH_INFO"] == "/fail" else None
        made.append(Tracked([b"one ", b"two"], fail))
        return made[-1]

    server = serve(validator(app), threads=threads, interface="wsgi")
    r = httpx.get(server.url + "/")
    assert r.content == b"one two"
    assert made[0].closed.wait(2)
    with pytest.raises(httpx.HTTPError):
        httpx.get(server.url + "/fail")
    assert made[1].closed.wait(2)
    assert error_log.app_failed()


# -- wsgi.file_wrapper --------------------------------------------------------------


@pytest.fixture
def payload(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(700_001)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    return path, data


def file_app(path: Path, opened: list[Any], skip: int = 0) -> App:
    # Not validated: validate's iterator would hide the FileWrapper from the
    # server, which then could not use sendfile (covered separately below).
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        f = open(path, "rb")  # closed by the server, through close()
        f.read(skip)
        opened.append(f)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](f)
        return wrapper

    return app


@pytest.mark.parametrize("loop", ["auto", "asyncio"])
def test_file_wrapper_sends_the_file(serve: Serve, payload: tuple[Path, bytes], loop: str) -> None:
    path, data = payload
    opened: list[Any] = []
    server = serve(file_app(path, opened), loop=loop)
    calls: list[int] = []
    if loop == "asyncio":
        real = server.loop.sendfile

        async def spy(transport: Any, file: Any, offset: int = 0, count: int | None = None,
                      **kw: Any) -> int:
            calls.append(count or 0)
            result: int = await real(transport, file, offset, count, **kw)
            return result

        server.loop.sendfile = spy  # type: ignore[method-assign,unused-ignore]
    with httpx.Client() as client:
        for _ in range(2):  # and the connection stays usable
            r = client.get(server.url + "/")
            assert r.status_code == 200
            assert r.headers["content-length"] == str(len(data))
            assert "transfer-encoding" not in r.headers
            assert r.content == data
    if loop == "asyncio":
        assert calls == [len(data), len(data)]
    assert wait_for(lambda: all(f.closed for f in opened))


def test_file_wrapper_from_the_current_position(serve: Serve, payload: tuple[Path, bytes]) -> None:
    path, data = payload
    opened: list[Any] = []
    server = serve(file_app(path, opened, skip=1000), loop="asyncio")
    r = httpx.get(server.url + "/")
    assert r.content == data[1000:] and r.headers["content-length"] == str(len(data) - 1000)


@pytest.mark.parametrize("loop", ["auto", "asyncio"])
def test_file_wrapper_head_sends_no_body(
    serve: Serve, payload: tuple[Path, bytes], loop: str
) -> None:
    path, data = payload
    opened: list[Any] = []
    server = serve(file_app(path, opened), loop=loop)
    raw = exchange(
        server.port,
        b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep and head.startswith(b"HTTP/1.1 200 OK")
    assert f"content-length: {len(data)}".encode() in head.lower()
    # Straight after the HEAD response's head comes the next response.
    assert rest.startswith(b"HTTP/1.1 200 OK"), rest[:100]
    assert one_response(rest).body == data
    assert wait_for(lambda: all(f.closed for f in opened))


@pytest.mark.parametrize("threads", [1, 2])
def test_file_wrapper_validated_and_threaded(
    serve: Serve, payload: tuple[Path, bytes], threads: int
) -> None:
    path, data = payload
    opened: list[Any] = []
    server = serve(validator(file_app(path, opened)), threads=threads, interface="wsgi")
    r = httpx.get(server.url + "/")
    assert r.status_code == 200 and r.content == data
    assert wait_for(lambda: opened[0].closed)


