"""Memory per idle WebSocket: the client of bench/websocket.py's idle measurement.

An asyncio client on the `websockets` library (its own, not the server's
code under test: every server meets the same one) against a server that
serves bench/apps/ws_echo.py. In order:

1. a warm-up: `warmup` short-lived sockets, one after the other (open, one
   round trip, close), so the server's code paths have run;
2. a full collection in the worker (GET /stats?collect), a pause, then
   "before": the worker's VmRSS and Python blocks;
3. `sockets` sockets opened, BATCH at a time, each making one 64 B
   round trip (so the server holds all its per-socket state, the app
   waiting in receive()), then left idle; a pause, then "open";
4. all of them closed (close frame 1000), a pause, then "closed".

The client answers the servers' pings (the library does, while it waits),
sends none and does not compress. A socket the server closed before the
end is counted ("closed by server"): it should be 0.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import app_worker
import procfs
from servers import RunFailed
from websockets.asyncio.client import ClientConnection, connect
from websockets.protocol import State

MESSAGE = b"m" * 64
TIMEOUT = 10.0
BATCH = 50  # sockets opening at once


@dataclass(frozen=True)
class Plan:
    sockets: int
    warmup: int  # short-lived sockets first
    pause: float  # seconds of quiet before each figure


@dataclass
class Memory:
    """One round of one server; memory in KiB."""

    sockets: int
    open_seconds: float
    rss_before_kib: int
    rss_open_kib: int
    rss_closed_kib: int
    blocks_before: int
    blocks_open: int
    blocks_closed: int
    closed_by_server: int

    @property
    def value(self) -> float:
        """KiB per idle socket."""
        return (self.rss_open_kib - self.rss_before_kib) / self.sockets

    @property
    def kept_kib(self) -> float:
        """KiB per socket still held once they are all closed."""
        return (self.rss_closed_kib - self.rss_before_kib) / self.sockets

    @property
    def blocks_per_socket(self) -> float:
        return (self.blocks_open - self.blocks_before) / self.sockets


def measure(url: str, port: int, pid: int, plan: Plan) -> Memory:
    """The figures of one server (its worker `pid`, its app on `port`)."""
    return asyncio.run(_measure(url, port, pid, plan))


async def _measure(url: str, port: int, pid: int, plan: Plan) -> Memory:
    for _ in range(plan.warmup):
        await (await opened(url)).close()
    await asyncio.to_thread(app_worker.stats, port, query="collect")
    before, blocks_before = await figures(port, pid, plan.pause)
    socks: list[ClientConnection] = []
    try:
        started = time.monotonic()
        await open_all(url, plan.sockets, socks)
        open_seconds = time.monotonic() - started
        rss_open, blocks_open = await figures(port, pid, plan.pause)
        gone = sum(ws.state is not State.OPEN for ws in socks)
    finally:
        await asyncio.gather(*(ws.close() for ws in socks), return_exceptions=True)
    rss_closed, blocks_closed = await figures(port, pid, plan.pause)
    return Memory(plan.sockets, open_seconds, before, rss_open, rss_closed,
                  blocks_before, blocks_open, blocks_closed, gone)  # fmt: skip


async def open_all(url: str, count: int, socks: list[ClientConnection]) -> None:
    """Open `count` sockets into `socks`, BATCH at a time (the servers'
    listen queues are set longer than that)."""
    while len(socks) < count:
        batch = min(BATCH, count - len(socks))
        results = await asyncio.gather(*(opened(url) for _ in range(batch)), return_exceptions=True)
        socks += [ws for ws in results if isinstance(ws, ClientConnection)]
        failed = [exc for exc in results if isinstance(exc, BaseException)]
        if failed:
            why = str(failed[0]) or type(failed[0]).__name__
            raise RunFailed(f"{len(failed)} of sockets {len(socks) + 1}-{len(socks) + len(failed)}"
                            f" of {count} did not open: {why}")  # fmt: skip


async def opened(url: str) -> ClientConnection:
    """A new socket that has made one round trip."""
    ws = await connect(url, compression=None, ping_interval=None, open_timeout=TIMEOUT,
                       close_timeout=TIMEOUT, max_queue=4)  # fmt: skip
    try:
        await ws.send(MESSAGE)
        reply = await asyncio.wait_for(ws.recv(), TIMEOUT)
    except BaseException:
        await ws.close()
        raise
    if reply != MESSAGE:
        await ws.close()
        raise RunFailed(f"echo mismatch: {len(MESSAGE)} bytes sent, {len(reply)} back")
    return ws


async def figures(port: int, pid: int, pause: float) -> tuple[int, int]:
    """After `pause` seconds: the worker's VmRSS (KiB) and Python blocks.
    (The question goes from a thread: the loop keeps answering pings.)"""
    await asyncio.sleep(pause)
    rss = procfs.rss_kib(pid)
    blocks = int((await asyncio.to_thread(app_worker.stats, port))["blocks"])
    return rss, blocks
