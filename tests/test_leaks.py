"""Nothing outlives its connection: many connections, objects counted.

A connection's objects (the driver, its parser, the requests, the
exchanges, the transport) must be freed by reference counting as soon as
the connection is lost. Left to the garbage collector, they piled up: the
worker's tuned collector (server/worker.py, settle_memory) runs full
collections rarely, and one worker serving `Connection: close` traffic grew
by about 1 KB a connection (128k requests: 23 -> 151 MB).

So the collector is switched off while the connections run: a cycle left
by any connection then stays, and is counted. Each test opens ten thousand
connections, each with a request that has a body (the body path allocates
most), and checks that the objects alive afterwards are those alive before.
"""

from __future__ import annotations

import collections
import gc
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from apps import asgi_echo, wsgi_echo
from support import RunningServer
from twincorn.server.recycle import resident_bytes

CONNECTIONS = 10_000
REQUEST = (
    b"POST /leak?q=1 HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 1024\r\nConnection: close\r\n\r\n" + b"x" * 1024
)
#: twincorn's own per-connection and per-request objects, by type name.
OWN = {"HttpConnection", "RequestParser", "HttpRequestParser", "Request",
       "ASGIExchange", "WSGIExchange", "ResponseWriter"}
CLIENTS = 4


def census() -> collections.Counter[str]:
    return collections.Counter(type(o).__name__ for o in gc.get_objects())


def hit(port: int, count: int) -> None:
    """`count` connections from CLIENTS threads, each answered and closed."""
    failures: list[BaseException] = []

    def client(n: int) -> None:
        try:
            for _ in range(n):
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    sock.sendall(REQUEST)
                    data = b""
                    while chunk := sock.recv(65536):
                        data += chunk
                assert data.startswith(b"HTTP/1.1 200 "), data[:100]
        except BaseException as exc:  # reported by the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=client, args=(count // CLIENTS,)) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures[:3]


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


def settle(server: RunningServer) -> None:
    """Wait until the worker holds no connection (the last ones linger a moment)."""
    deadline = time.monotonic() + 5
    while server.worker.state.connections and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not server.worker.state.connections


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("interface", "app"), [("asgi", asgi_echo), ("wsgi", wsgi_echo)],
                         ids=["asgi", "wsgi"])
def test_nothing_outlives_its_connection(interface: str, app: Any, collector_off: None) -> None:
    with RunningServer(app, interface=interface, loop="uvloop") as server:
        hit(server.port, 500)  # warm up: caches, pools and first-use allocations
        settle(server)
        before, rss_before = census(), resident_bytes()
        hit(server.port, CONNECTIONS)
        settle(server)
        after, rss_after = census(), resident_bytes()
    grown = {name: after[name] - before[name] for name in after
             if after[name] - before[name] > 0}
    own = {name: n for name, n in grown.items() if name in OWN}
    assert own == {}, f"twincorn objects left after {CONNECTIONS} connections: {own}"
    # Under one object for every ten connections, of any kind: one object
    # kept per connection would be ten thousand.
    total = sum(grown.values())
    assert total < CONNECTIONS // 10, sorted(grown.items(), key=lambda kv: -kv[1])[:10]
    assert rss_after - rss_before < 4 << 20, (rss_before, rss_after)


@pytest.mark.timeout(120)
def test_nothing_of_ours_outlives_a_connection_on_asyncio(collector_off: None) -> None:
    # asyncio's own selector transport keeps a bound method of itself, a
    # cycle the collector takes later; nothing of twincorn's may be in it.
    with RunningServer(asgi_echo, loop="asyncio") as server:
        hit(server.port, 200)
        settle(server)
        before = census()
        hit(server.port, 2_000)
        settle(server)
        # The worker forgets a connection inside connection_lost; asyncio's
        # transport drops its protocol only after that call returns, so the
        # last one may still be held for a moment when we first look.
        deadline = time.monotonic() + 5
        while True:
            after = census()
            own = {name: after[name] - before[name] for name in OWN
                   if after[name] > before[name]}
            if not own or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert own == {}
