"""Helpers for the load tester's tests: raw fake servers, a fake transport,
a loop to run the client on."""

from __future__ import annotations

import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from twincorn.load.client import HttpClient
from twincorn.load.context import RunContext
from twincorn.load.stats import Collector
from twincorn.server.worker import new_event_loop

T = TypeVar("T")

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


def run_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a fresh loop (uvloop where installed)."""
    loop, _ = new_event_loop("auto")
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def read_request(sock: socket.socket) -> bytes:
    """One request's bytes (head and Content-Length body); b"" at EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class FakeServer:
    """A raw TCP server on 127.0.0.1: each accepted connection is handled by
    `handler(sock, number)` in a thread of its own (number counts from 0)."""

    def __init__(self, handler: Callable[[socket.socket, int], None]) -> None:
        self.handler = handler
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port: int = self.listener.getsockname()[1]
        self.accepted = 0
        self.requests: list[bytes] = []
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            number = self.accepted
            self.accepted += 1
            thread = threading.Thread(target=self._serve, args=(sock, number), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket, number: int) -> None:
        with sock:
            try:
                self.handler(sock, number)
            except OSError:
                pass

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        for thread in self._threads:
            thread.join(2)

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def answer_each(
    response: bytes | Callable[[bytes], bytes], server_list: list[bytes] | None = None
) -> Callable[[socket.socket, int], None]:
    """A handler answering every request on a connection with `response`
    (or response(request))."""

    def handler(sock: socket.socket, number: int) -> None:
        while True:
            request = read_request(sock)
            if not request:
                return
            if server_list is not None:
                server_list.append(request)
            sock.sendall(response(request) if callable(response) else response)

    return handler


def new_client(
    base: str, timeout: float = 5.0, open_model: bool = False
) -> tuple[HttpClient, RunContext]:
    """A client and its context (must be called with a running loop)."""
    context = RunContext(Collector(open_model), connect_timeout=2.0, timeout=timeout)
    return HttpClient(base, context), context


async def with_client(
    base: str,
    body: Callable[[HttpClient], Awaitable[T]],
    timeout: float = 5.0,
) -> tuple[T, Collector]:
    client, context = new_client(base, timeout)
    try:
        return await body(client), context.collector
    finally:
        client.close()


class FakeTransport:
    """Stands in for a socket: records writes, notes closes."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def feed(conn: Any, data: bytes, byte_by_byte: bool) -> None:
    if byte_by_byte:
        for i in range(len(data)):
            conn.data_received(data[i : i + 1])
    else:
        conn.data_received(data)


def attach(conn: Any) -> FakeTransport:
    transport = FakeTransport()
    conn.connection_made(transport)
    return transport


def run_in_loop(func: Callable[[], T]) -> T:
    async def main() -> T:
        return func()

    return run_loop(main())

