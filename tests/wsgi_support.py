"""Helpers shared by the WSGI tests (test_wsgi*.py)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from support import ErrorLog as ErrorLog
from support import RunningServer, exchange, parse_responses

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse as StartResponse
    from _typeshed.wsgi import WSGIApplication

    App = WSGIApplication
else:  # typeshed's names exist for the type checker only
    StartResponse = App = Any

Environ = dict[str, Any]
Serve = Callable[..., RunningServer]

TEXT = [("Content-Type", "text/plain")]
APP_FAILED = "exception in WSGI application"


def get(port: int, path: str = "/", method: str = "GET", extra: bytes = b"") -> bytes:
    """One request on its own connection; everything the server sent."""
    head = f"{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n".encode()
    return exchange(port, head + extra + b"\r\n")


def one_response(raw: bytes) -> Any:
    responses = parse_responses(raw)
    assert len(responses) == 1, raw[:400]
    return responses[0]


def read_all(sock: socket.socket, timeout: float = 4.0) -> bytes:
    """Read until the server closes or resets the connection."""
    sock.settimeout(timeout)
    chunks: list[bytes] = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def read_until(sock: socket.socket, marker: bytes, timeout: float = 4.0) -> bytes:
    """Read until `marker` has arrived (or the server closed)."""
    sock.settimeout(timeout)
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def wait_for(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Poll `condition` (something the server's thread brings about)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture(autouse=True, name="error_log")
def error_log_fixture() -> Iterator[ErrorLog]:
    """Captures the error log in every test of a module that imports it."""
    with ErrorLog.attached() as handler:
        yield handler
