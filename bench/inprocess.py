"""Per-request cost of twincorn's own code, without sockets or a client.

Feeds the same request to one HttpConnection over a fake transport, many
times, and reports microseconds per request for the ASGI and the WSGI hello
apps. It isolates the server's Python work (parser callbacks, scope or
environ, response head) from the kernel and the load generator, so a change
to the hot path can be judged in seconds. `--profile` prints where the time
goes (cProfile).

    python bench/inprocess.py [--requests 200000] [--profile]
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

from twincorn.asgi import ASGIAdapter
from twincorn.http import RequestPolicy
from twincorn.server.protocol import HttpConnection
from twincorn.server.state import WorkerState
from twincorn.server.worker import new_event_loop
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
    args = parser.parse_args()
    for kind in ("asgi", "wsgi"):
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(run, kind, args.requests // 4, args.loop)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        else:
            # The least of five runs: on a busy machine the others were interrupted.
            best = min(run(kind, args.requests // 5, args.loop) for _ in range(5))
            print(f"{kind}: {best:.2f} us per request")


if __name__ == "__main__":
    main()
