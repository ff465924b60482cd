"""Per-request cost of twincorn's own code, without sockets or a client.

Feeds the same request to one HttpConnection over a fake transport, many
times, and reports microseconds per request for the ASGI and the WSGI hello
apps; and, after one upgrade, the same 64-byte masked frame to the
WebSocket echo of bench/apps/ws_echo.py (microseconds per echoed message,
each backend). It isolates the server's Python work (parser callbacks, scope or
environ, response head) from the kernel and the load generator, so a change
to the hot path can be judged in seconds. `--profile` prints where the time
goes (cProfile).

    python bench/inprocess.py [--requests 200000] [--profile] [--only asgi,wsgi,ws,wsproto]
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import options
from examples.asgi.app import app as asgi_app
from examples.wsgi.app import app as wsgi_app
from websockets.frames import Frame, Opcode

from twincorn.asgi import ASGIAdapter
from twincorn.asgi_websocket import WebSocketOptions
from twincorn.http import RequestPolicy
from twincorn.server.protocol import HttpConnection
from twincorn.server.state import WorkerState
from twincorn.server.worker import new_event_loop
from twincorn.ws.core import Limits, opener
from twincorn.wsgi import WSGIAdapter

REQUEST = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: bench\r\n"
    b"Accept: */*\r\n\r\n"
)


class FakeTransport:
    """Just enough of a transport: counts what is written."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name in ("peername", "sockname") else default

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def is_closing(self) -> bool:
        return False

    def set_protocol(self, protocol: Any) -> None: ...

    def get_write_buffer_size(self) -> int:
        return 0


UPGRADE = (
    b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
# What a client sends: masked (RFC 6455 section 5.3), one binary frame.
FRAME = Frame(Opcode.BINARY, bytes(range(64))).serialize(mask=True, extensions=[])


def run_websocket(backend: str, messages: int, loop_name: str = "auto") -> float:
    """Microseconds per echoed 64-byte message, after one handshake."""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "apps"))
    from ws_echo import app as ws_app

    loop, _ = new_event_loop(loop_name)
    options = WebSocketOptions(backend=backend, open=opener(backend), limits=Limits(),
                               max_queue=32, handshake_timeout=10.0)
    adapter = ASGIAdapter(ws_app, loop, server_header=b"twincorn", lifespan="off",  # type: ignore[arg-type]
                          websocket=options)
    state = WorkerState(loop=loop, adapter=adapter, policy=RequestPolicy())
    conn = HttpConnection(state)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]

    async def drive() -> float:
        conn.data_received(UPGRADE)
        for _ in range(5):
            await asyncio.sleep(0)
        ws = next(c for c in state.connections if c is not conn)
        feed = ws.data_received
        written = transport.written
        start = time.perf_counter()
        for _ in range(messages):
            feed(FRAME)
            await asyncio.sleep(0)
        elapsed = time.perf_counter() - start
        assert transport.written - written >= messages * 66, "messages were not echoed"
        ws.connection_lost(None)  # the app hears websocket.disconnect and returns
        for _ in range(5):
            await asyncio.sleep(0)
        return elapsed

    elapsed = loop.run_until_complete(drive())
    loop.close()
    return elapsed / messages * 1e6


def run(kind: str, requests: int, loop_name: str = "auto") -> float:
    loop, _ = new_event_loop(loop_name)
    if kind == "asgi":
        adapter: Any = ASGIAdapter(asgi_app, loop, server_header=b"twincorn", lifespan="off")
    else:
        adapter = WSGIAdapter(wsgi_app, loop, server_header=b"twincorn")
    state = WorkerState(loop=loop, adapter=adapter, policy=RequestPolicy())
    conn = HttpConnection(state)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    feed = conn.data_received

    async def drive() -> float:
        # Inside the running loop, and back to it after each request as after
        # each read of a real socket: an ASGI app runs as a Task.
        start = time.perf_counter()
        for _ in range(requests):
            feed(REQUEST)
            await asyncio.sleep(0)
        return time.perf_counter() - start

    elapsed = loop.run_until_complete(drive())
    assert transport.written > requests * 50, "responses were not written"
    loop.close()
    return elapsed / requests * 1e6


def main() -> None:
    parser = options.parser(__doc__)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--loop", choices=["auto", "uvloop", "asyncio"], default="auto")
    parser.add_argument("--only", default="asgi,wsgi,ws,wsproto",
                        help="among asgi, wsgi, ws (the websockets backend), wsproto")
    args = parser.parse_args()
    for kind in args.only.split(","):
        unit = "request" if kind in ("asgi", "wsgi") else "message"
        if kind in ("ws", "wsproto"):
            backend = "websockets" if kind == "ws" else "wsproto"
            call: Any = lambda n, b=backend: run_websocket(b, n, args.loop)  # noqa: E731
        else:
            call = lambda n, k=kind: run(k, n, args.loop)  # noqa: E731
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(call, args.requests // 4)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        else:
            # The least of five runs: on a busy machine the others were interrupted.
            best = min(call(args.requests // 5) for _ in range(5))
            print(f"{kind}: {best:.2f} us per {unit}")


if __name__ == "__main__":
    main()
