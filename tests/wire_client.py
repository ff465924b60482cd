"""A raw-socket HTTP/1.1 client for the wire tests, and their shared fixtures.

A test module takes the fixtures by importing them: `interface_fixture`
(fixture `interface`: "wsgi", then "asgi") and `error_log_fixture` (fixture
`error_log`: the records of the twincorn.error logger).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from support import ErrorLog, Response, RunningServer, connect, parse_responses
from wire_apps import asgi_app, wsgi_app

ServeFn = Callable[..., RunningServer]


def app_for(interface: str) -> Callable[..., Any]:
    return wsgi_app if interface == "wsgi" else asgi_app


def start(serve: ServeFn, interface: str, **settings: Any) -> RunningServer:
    """Serve the wire app of `interface` with `settings`."""
    return serve(app_for(interface), interface=interface, **settings)


def final(responses: list[Response]) -> list[Response]:
    """The final (non-1xx) responses."""
    return [r for r in responses if r.status >= 200]


def get(path: str = "/echo", *headers: str, version: str = "1.1") -> bytes:
    lines = [f"GET {path} HTTP/{version}", "Host: localhost", *headers, "", ""]
    return "\r\n".join(lines).encode()


def post(path: str, body: bytes, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: localhost", f"Content-Length: {len(body)}", *headers]
    return "\r\n".join([*lines, "", ""]).encode() + body


def chunked(pieces: list[bytes], trailers: tuple[str, ...] = ()) -> bytes:
    """A chunked body: each piece a chunk, then the last chunk and trailers."""
    out = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p)
    return out + b"0\r\n" + b"".join(t.encode() + b"\r\n" for t in trailers) + b"\r\n"


def post_chunked(path: str, pieces: list[bytes], *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: localhost", "Transfer-Encoding: chunked", *headers]
    return "\r\n".join([*lines, "", ""]).encode() + chunked(pieces)


def split_head(data: bytes) -> tuple[bytes, dict[bytes, list[bytes]], bytes]:
    """(status line, headers by lower-case name, the rest) of raw bytes."""
    head, _, rest = data.partition(b"\r\n\r\n")
    first, *lines = head.split(b"\r\n")
    headers: dict[bytes, list[bytes]] = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return first, headers, rest


class Client:
    """One connection; everything received is kept in `data`."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
        self.sock = connect(port, host, timeout)
        self.data = b""
        self.eof = False

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def shutdown_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def _recv(self, deadline: float) -> bool:
        """Receive once; False once the server closed (or nothing came in time)."""
        if self.eof:
            return False
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return False
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.data += chunk
        return True

    def wait_for(self, predicate: Callable[[bytes], bool], timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout
        while not predicate(self.data):
            if time.monotonic() >= deadline or not self._recv(deadline):
                if predicate(self.data):
                    break
                raise TimeoutError(f"condition not met; received {self.data[:400]!r}")
        return self.data

    def responses(self, count: int, timeout: float = 5.0) -> list[Response]:
        """Wait for `count` complete final responses; return all received."""

        def enough(data: bytes) -> bool:
            done = [r for r in final(parse_responses(data)) if r.complete]
            return len(done) >= count

        self.wait_for(enough, timeout)
        return parse_responses(self.data)

    def closed(self, timeout: float = 3.0) -> bool:
        """True if the server closes the connection within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._recv(deadline) and self.eof:
                return True
        return self.eof

    def silent(self, seconds: float) -> bool:
        """True if nothing arrives (and no close) for `seconds`."""
        before = len(self.data)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self._recv(deadline) and self.eof:
                return False
        return len(self.data) == before and not self.eof


@pytest.fixture(name="error_log")
def error_log_fixture() -> Iterator[ErrorLog]:
    with ErrorLog.attached(strict=False) as handler:
        yield handler


@pytest.fixture(name="interface", params=["wsgi", "asgi"])
def interface_fixture(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def still_serves(server: RunningServer) -> None:
    """A fresh connection is answered: the worker survived what came before."""
    with Client(server.port) as client:
        client.send(get("/echo", "Connection: close"))
        (response,) = final(client.responses(1))
        assert response.status == 200
        assert client.closed()
