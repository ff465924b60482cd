"""The WSGI execution model, through a real server.

threads=1 calls the application inline on the event loop, one call at a
time (a blocking application blocks its worker); threads=N runs N calls at
once in a pool. While every slot is taken the worker stops accepting, so
that connections wait in the kernel's queue (for another worker). The loop
reads a request body in full before the call, so a slow client never holds
a slot.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from wsgiref.validate import validator

import pytest

from support import connect
from twincorn.wsgi import WSGIAdapter
from wsgi_support import (
    TEXT,
    Environ,
    Serve,
    StartResponse,
    error_log_fixture,  # noqa: F401 - autouse fixture
    one_response,
    read_all,
    read_until,
    wait_for,
)

pytestmark = pytest.mark.timeout(15)




class Gauge:
    """How many calls of the application run at once, at most."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.now -= 1


def fetch(port: int, path: str = "/", body: bytes = b"") -> bytes:
    with connect(port) as sock:
        sock.sendall(
            b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (path.encode(), len(body), body)
        )
        return read_all(sock)


@pytest.mark.parametrize(
    ("threads", "low", "high"),
    [(1, 1.9, 3.2), (4, 0.45, 1.3)],
    ids=["inline-serial", "pool-parallel"],
)
def test_blocking_app_and_threads(serve: Serve, threads: int, low: float, high: float) -> None:
    gauge = Gauge()

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        with gauge:
            time.sleep(0.5)
        start_response("200 OK", TEXT)
        return [b"slept"]

    server = serve(validator(app), threads=threads, interface="wsgi")
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: fetch(server.port), range(4)))
    elapsed = time.monotonic() - started
    assert [one_response(r).body for r in replies] == [b"slept"] * 4
    assert low <= elapsed <= high, elapsed
    assert gauge.peak == threads


def test_worker_stops_accepting_while_every_slot_is_busy(serve: Serve) -> None:
    release = threading.Event()
    entered = threading.Semaphore(0)

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/block":
            entered.release()
            release.wait(4)
        start_response("200 OK", TEXT)
        return [environ["PATH_INFO"].encode()]

    server = serve(validator(app), threads=2, interface="wsgi")
    listener = server.worker.listener
    adapter = server.worker.adapter
    assert isinstance(adapter, WSGIAdapter)
    assert listener.accepting
    with ThreadPoolExecutor(3) as pool:
        blocked = [pool.submit(fetch, server.port, "/block") for _ in range(2)]
        assert entered.acquire(timeout=2) and entered.acquire(timeout=2)
        assert adapter.busy
        # A third client: its connection is left in the kernel's queue, and
        # the worker stops watching the listening socket.
        third = pool.submit(fetch, server.port, "/third")
        assert wait_for(lambda: not listener.accepting), "still accepting with no free slot"
        time.sleep(0.2)
        assert not third.done() and not listener.accepting
        release.set()
        assert one_response(third.result(timeout=3)).body == b"/third"
        assert [one_response(f.result(timeout=3)).body for f in blocked] == [b"/block"] * 2
    assert wait_for(lambda: listener.accepting)
    assert not adapter.busy


def test_slow_request_heads_hold_no_slot(serve: Serve) -> None:
    """A connection counts as taking a slot only until its first bytes come
    (it is most likely sending its request). Counted until a whole request
    came, slow-loris connections each held the only slot for 0.2 s: the
    worker accepted five connections a second and honest clients waited in
    the listen queue (issue 9, slowhttptest -H against a WSGI worker)."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        return [b"ok"]

    server = serve(validator(app), interface="wsgi")
    slow = [connect(server.port) for _ in range(40)]
    try:
        for sock in slow:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ")  # and no more
        started = time.monotonic()
        body = one_response(fetch(server.port, "/")).body
        assert body == b"ok"
        assert time.monotonic() - started < 2.0  # 40 x 0.2 s = 8 s before
    finally:
        for sock in slow:
            sock.close()


def test_slow_request_body_holds_no_slot(serve: Serve) -> None:
    """threads=1: a client trickling its body is read by the loop while
    another client is served; the slow one's call comes once its body is in."""
    calls: list[tuple[str, bytes]] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        stream = environ["wsgi.input"]
        body = stream.read(int(environ.get("CONTENT_LENGTH") or 0))
        calls.append((environ["PATH_INFO"], body))
        start_response("200 OK", TEXT)
        return [b"%d" % len(body)]

    server = serve(validator(app), threads=1, interface="wsgi")
    adapter = server.worker.adapter
    assert isinstance(adapter, WSGIAdapter)
    body = b"0123456789"
    with connect(server.port) as slow:
        slow.sendall(
            b"POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % len(body)
        )
        latencies: list[float] = []
        for i, byte in enumerate(body):
            slow.sendall(bytes([byte]))
            time.sleep(0.08)
            if i in (3, 7):
                assert adapter.running == 0 and server.worker.listener.accepting
                started = time.monotonic()
                reply = fetch(server.port, "/fast", b"quick")
                latencies.append(time.monotonic() - started)
                assert one_response(reply).body == b"5"
        assert one_response(read_all(slow)).body == b"10"
    assert max(latencies) < 0.3, latencies
    assert calls == [("/fast", b"quick"), ("/fast", b"quick"), ("/slow", body)]


def test_a_queued_request_whose_client_left_frees_its_spool(serve: Serve) -> None:
    """threads=1 and a streamed response waiting for its slow reader: the
    slot stays taken; a request from another (already connected) client
    waits for it, its large body spooled. That client leaves: when the slot
    frees up, the request is skipped and its temporary file closed."""
    block = b"y" * 65536
    count = 256  # 16 MiB, far more than the socket buffers hold

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        if environ["PATH_INFO"] == "/stream":
            return (block for _ in range(count))
        return [b"posted"]

    server = serve(validator(app), threads=1, wsgi_spool_size="16k", interface="wsgi")
    adapter = server.worker.adapter
    assert isinstance(adapter, WSGIAdapter)
    waiting = connect(server.port)
    reader = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    reader.settimeout(5)
    reader.connect(("127.0.0.1", server.port))
    with reader:
        reader.sendall(b"GET /stream HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        first = read_until(reader, b"yyyy")
        assert wait_for(lambda: adapter.busy)
        with waiting:
            waiting.sendall(
                b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n"
                + b"z" * 100_000
            )
            assert wait_for(lambda: len(adapter.waiting) == 1)
            (queued,) = adapter.waiting
            spool = queued._spool
            assert spool is not None and not spool.closed
            # Gone for good (a reset): a half-close would still be answered.
            waiting.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        assert wait_for(lambda: queued.gone)
        raw = first + read_all(reader)
    assert len(raw) > count * len(block)
    assert wait_for(lambda: not adapter.busy and not adapter.waiting)
    assert spool.closed


def test_waiting_requests_of_one_connection_run_in_order(serve: Serve) -> None:
    """Pipelined requests on one connection, threads=2: each starts once the
    previous response is complete, and the responses come back in order."""
    order: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        path = environ["PATH_INFO"]
        order.append(path)
        if path == "/first":
            time.sleep(0.2)
        start_response("200 OK", TEXT)
        yield path.encode()

    server = serve(validator(app), threads=2, interface="wsgi")
    with connect(server.port) as sock:
        sock.sendall(
            b"GET /first HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /second HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        raw = read_all(sock)
    assert raw.index(b"/first") < raw.index(b"/second")
    assert order == ["/first", "/second"]

