"""The access log: gunicorn's atoms, and request data escaped."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from apps import asgi_echo
from support import ErrorLog, RunningServer, exchange
from twincorn.http.request import Request, RequestLine
from twincorn.logs import escape


def test_escape() -> None:
    assert escape(b"/plain/path?q=1") == "/plain/path?q=1"
    assert escape(b"\x1b[31mred\x1b[0m") == "\\x1b[31mred\\x1b[0m"
    assert escape("a\nb\rc\td\x7f") == "a\\x0ab\\x0dc\\x09d\\x7f"
    assert escape(b"back\\slash") == "back\\\\slash"
    assert escape(b"caf\xc3\xa9 \x9b") == "caf\\xc3\\xa9 \\x9b"  # bytes: latin-1, escaped
    assert escape("\u2028").isascii()


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def access_lines() -> Iterator[list[str]]:
    logger = logging.getLogger("twincorn.access")
    handler = Lines()
    old = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old[0])
        logger.propagate = old[1]


def test_access_log_line_with_escaped_request_data(access_lines: list[str]) -> None:
    fmt = '%(h)s %(m)s "%(r)s" %(s)s %(B)s %(b)s "%(a)s" "%({x-trace}i)s" %(H)s %(U)s %(q)s'
    with RunningServer(asgi_echo, access_log=True, access_log_format=fmt) as server:
        request = (
            b"GET /caf%C3%A9?x=1 HTTP/1.1\r\nHost: t\r\n"
            b"User-Agent: evil\xc2\x9b2J\tagent\r\nX-Trace: \xff\r\nConnection: close\r\n\r\n"
        )
        raw = exchange(server.port, request)
    assert raw.startswith(b"HTTP/1.1 200 ")
    body_size = len(raw.partition(b"\r\n\r\n")[2])
    assert access_lines == [
        f'127.0.0.1 GET "GET /caf%C3%A9?x=1 HTTP/1.1" 200 {body_size} {body_size} '
        '"evil\\xc2\\x9b2J\\x09agent" "\\xff" HTTP/1.1 /caf%C3%A9 x=1'
    ]
    assert all(line.isprintable() and line.isascii() for line in access_lines)


def test_timing_atoms_and_missing_header(access_lines: list[str]) -> None:
    with RunningServer(
        asgi_echo, access_log=True, access_log_format="%(T)s %(M)s %(D)s %(L)s %(f)s %(p)s"
    ) as server:
        exchange(server.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    (line,) = access_lines
    seconds, millis, micros, decimal, referer, pid = line.split()
    assert seconds == "0" and int(millis) < 1000 and int(micros) < 1_000_000
    assert float(decimal) < 1 and referer == "-" and pid.startswith("<")


def test_a_websocket_gets_one_line_when_it_closes(access_lines: list[str]) -> None:
    import asyncio

    from websockets.asyncio.client import connect

    from ws_apps import echo

    async def talk(port: int) -> None:
        async with connect(f"ws://127.0.0.1:{port}/chat?x=1", compression=None) as ws:
            await ws.send("hello")  # 5 bytes in
            await ws.recv()

    fmt = '"%(r)s" %(s)s %(b)s %(I)s %(M)s'
    with RunningServer(echo, access_log=True, access_log_format=fmt, lifespan="off") as server:
        asyncio.run(asyncio.wait_for(talk(server.port), 10))
        for _ in range(100):  # the line is written when the server sees the socket close
            if access_lines:
                break
            asyncio.run(asyncio.sleep(0.02))
    (line,) = access_lines
    request, status, sent, received, millis = line.rsplit(" ", 4)
    assert request == '"GET /chat?x=1 HTTP/1.1"' and status == "101"
    # The frames each way: the echo (2 + 5) and the close (2 + 2) out; the
    # client's masked message (6 + 5) and close (6 + 2) in.
    assert (sent, received) == ("11", "19") and int(millis) < 10_000


def test_no_access_log(access_lines: list[str]) -> None:
    with RunningServer(asgi_echo, access_log=False) as server:
        exchange(server.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert access_lines == []


def _wsgi_boom(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    raise KeyError("no such thing")


async def _asgi_boom(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        raise KeyError("no such thing")


@pytest.mark.parametrize(("app", "kind"), [(_wsgi_boom, "WSGI"), (_asgi_boom, "ASGI")])
def test_an_apps_exception_is_logged_with_its_request(app: Any, kind: str) -> None:
    with ErrorLog.attached() as error_log, RunningServer(app, lifespan="off") as server:
        raw = exchange(server.port, b"GET /boom?q=%1b HTTP/1.1\r\nHost: t\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 500 ")
        errors = error_log.errors()
    assert errors == [f"exception in {kind} application, serving GET /boom?q=%1b"]


def test_the_request_line_is_made_only_when_written() -> None:
    request = Request()
    request.method, request.target = "POST", b"/x" * 300
    line = RequestLine(request)
    request.target = b"/later"  # nothing was formatted yet
    assert str(line) == "POST /later"
    request.target = b"/" + b"y" * 300
    assert str(line) == "POST /" + "y" * 199 + "..."
