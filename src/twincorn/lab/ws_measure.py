"""The lab's WebSocket part: idle sockets held by one server process, and
broadcasts to them (the chat room of examples/asgi/chat.py).

Against one server (servers.py starts it and stops it), the client — this
process, on an event loop of its own — does, in order:

1. connects the *sender*, a member of the room like the others, and warms
   the server up: WARMUP sockets opened, a broadcast to them, closed. The
   server's code for WebSockets, imported on first use, and its first
   allocations are then in the figure *before*, not charged to the sockets;
2. reads the server's memory (memory.py, USS where /proc gives it): before;
3. for each rung N of the ladder: opens sockets until N listeners are
   connected (OPEN_AT_ONCE handshakes at a time), lets them settle, and
   reads the memory again: (with them - before) / N is the memory per
   open socket, while every one of them is idle;
4. broadcasts, one at a time, broadcasts_for(N) messages of MESSAGE_BYTES
   from the sender; the room writes each to every member, in the order they
   joined. A message's latency at a listener runs from the send to the
   moment its bytes arrived there (taken in data_received, before any
   parsing); over the rung: p50, p99 and max of every arrival, and the
   median over the broadcasts of the time until the last listener had it.
   The server's CPU time over the broadcasts, divided by the messages it
   wrote, is what one write costs it; the client's own CPU share says
   whether reading them was the limit (both run on this machine), and the
   machine's (cpu.py) how much other programs took meanwhile;
5. closes every socket (a close frame each, CLOSE_SECONDS at most for the
   answers; the rest are dropped), also on an error or Ctrl-C.

The sockets are the load tester's WebSocket connections
(load/ws_connection.py: websockets' sans-IO ClientProtocol over an asyncio
transport, uvloop's where installed): no task per socket, pings answered.
Every wait is bounded: a connect by CONNECT_SECONDS, a rung's opening by
open_deadline(), a broadcast by BROADCAST_SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from websockets.client import ClientProtocol
from websockets.uri import parse_uri

from twincorn.lab.cpu import CpuShares, CpuWatch
from twincorn.lab.memory import Memory, group_memory
from twincorn.load.connection import TIMEOUT, RequestError, connect_error
from twincorn.load.ws_connection import WsConnection

HOST = "127.0.0.1"
PATH = "/chat"
USER_AGENT = "twincorn-lab"
#: Each broadcast: this many bytes of text, in one frame.
MESSAGE_BYTES = 64
#: Sockets opened, broadcast to and closed before the figure "before".
WARMUP = 20
#: Handshakes in progress at once while a rung opens its sockets.
OPEN_AT_ONCE = 64
#: A broadcast count per rung that makes this many messages (the server's
#: CPU is read in clock ticks of 10 ms: enough writes to make it exact to a
#: few percent), within MIN_BROADCASTS and MAX_BROADCASTS.
MIN_MESSAGES = 10_000
MIN_BROADCASTS, MAX_BROADCASTS = 5, 100
#: Quiet between two broadcasts, and before each memory reading.
GAP_SECONDS = 0.01
SETTLE_SECONDS = 0.5
#: How often a broadcast looks whether its last listener has it (the
#: latency is taken on arrival; this only decides when to stop waiting).
POLL_SECONDS = 0.001
CONNECT_SECONDS = 10.0
BROADCAST_SECONDS = 10.0
CLOSE_SECONDS = 3.0
#: File descriptors this process keeps for everything but the sockets.
RESERVED_FDS = 100


def broadcasts_for(sockets: int) -> int:
    """How many broadcasts a rung of `sockets` listeners makes."""
    wanted = math.ceil(MIN_MESSAGES / max(sockets, 1))
    return max(MIN_BROADCASTS, min(MAX_BROADCASTS, wanted))


def open_deadline(count: int) -> float:
    """Seconds a rung may take to open `count` sockets (10 ms each and
    30 s more: a server that stalls does not stall the lab)."""
    return 30.0 + 0.01 * count


def estimate(ladder: Sequence[int]) -> float:
    """Seconds the part should take against one server, once it is up (for
    the progress line): about 0.5 ms to open a socket, 20 us to write it a
    message, as measured on 2 cores."""
    total = 2 * SETTLE_SECONDS + 1.0  # the warm-up, the closes
    held = 0
    for sockets in ladder:
        total += (sockets - held) * 0.0005 + SETTLE_SECONDS
        held = sockets
        total += broadcasts_for(sockets) * (sockets * 20e-6 + GAP_SECONDS + 0.002)
    return total


def descriptor_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit (the
    servers started next inherit it, as bench/machine.py does); the limit
    now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def fit_ladder(ladder: Sequence[int], limit: int) -> tuple[list[int], str | None]:
    """The rungs that `limit` open files allow (RESERVED_FDS kept for the
    rest, one for the sender): the rungs above it give way to one at the
    most it allows. Also the sentence that says so, or None."""
    room = limit - RESERVED_FDS - 1
    kept = [n for n in ladder if n <= room]
    if len(kept) == len(ladder):
        return list(ladder), None
    if room > (kept[-1] if kept else 0) and room > 0:
        kept.append(room)
    asked = max(ladder)
    return kept, (f"{asked:,} sockets were asked for, but this process may open {limit:,} "
                  f"files (ulimit -n); the ladder stops at {room:,} (raise the hard limit, "
                  f"e.g. `ulimit -Hn 65536` as root, for more)")


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of `values` (sorted): share 0.5 is p50."""
    if not values:
        raise ValueError("percentile of no values")
    rank = max(1, math.ceil(share * len(values)))
    return values[min(rank, len(values)) - 1]


@dataclass
class Broadcast:
    """One message sent to the room: its arrivals at the listeners (seconds
    after the send), how many listeners there were, and the client's time."""

    arrivals: list[float]
    listeners: int
    busy_s: float  # from the send until the last arrival was seen (or the timeout)
    client_cpu_s: float


@dataclass
class Opening:
    """What opening a rung's sockets gave."""

    opened: int = 0
    failed: int = 0
    error: str | None = None
    seconds: float = 0.0


def step_figures(sockets: int, held: int, opening: Opening, before: Memory, with_them: Memory,
                 broadcasts: list[Broadcast], shares: CpuShares,
                 seconds: float) -> dict[str, Any]:
    """One rung's figures, as results.json keeps them (times in ms): the
    rung of `sockets` listeners, `held` of them open; `shares`, the CPU's
    over the `seconds` its broadcasts took."""
    server_cpu_s = None if shares.server is None else shares.server * seconds
    others = None  # cores' worth of work that was neither the server's nor ours
    if shares.server is not None and shares.machine is not None and shares.cores:
        busy_cores = shares.machine * shares.cores
        others = max(0.0, round(busy_cores - shares.server - shares.load_generator, 2))
    arrivals = sorted(a for b in broadcasts for a in b.arrivals)
    lasts = [max(b.arrivals) for b in broadcasts if b.arrivals]
    written = sum(b.listeners + 1 for b in broadcasts)  # the sender hears its own too
    busy = sum(b.busy_s for b in broadcasts)
    return {
        "sockets": sockets,
        "opened": held,
        "failed": opening.failed,
        "error": opening.error,
        "open_s": round(opening.seconds, 3),
        "memory_kib": with_them.best,
        "rss_kib": with_them.rss,
        "per_socket_kib": (round((with_them.best - before.best) / held, 3) if held else None),
        "broadcasts": len(broadcasts),
        "deliveries": sum(b.listeners for b in broadcasts),
        "received": len(arrivals),
        "p50_ms": _ms(percentile(arrivals, 0.5)) if arrivals else None,
        "p99_ms": _ms(percentile(arrivals, 0.99)) if arrivals else None,
        "max_ms": _ms(arrivals[-1]) if arrivals else None,
        "last_ms": _ms(statistics.median(lasts)) if lasts else None,
        "server_us_per_message": (round(server_cpu_s / written * 1e6, 2)
                                  if server_cpu_s is not None and written else None),
        "client_cpu": round(sum(b.client_cpu_s for b in broadcasts) / busy, 3) if busy else None,
        "machine_cpu": shares.machine,
        "cores": shares.cores,
        "others_cpu": others,
    }


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


@dataclass
class Room:
    """The client's side of the chat room: the sender, the listeners, and
    every connection opened (to close them all at the end)."""

    loop: asyncio.AbstractEventLoop
    port: int
    listeners: list[WsConnection] = field(default_factory=list)
    every: list[WsConnection] = field(default_factory=list)
    sender: WsConnection | None = None

    async def connect(self) -> WsConnection:
        """One WebSocket to the room, its handshake done; RequestError if not."""
        protocol = ClientProtocol(parse_uri(f"ws://{HOST}:{self.port}{PATH}"), max_size=None)
        request = protocol.connect()
        request.headers["User-Agent"] = USER_AGENT
        loop = self.loop
        try:
            async with asyncio.timeout(CONNECT_SECONDS):
                _, conn = await loop.create_connection(
                    lambda: WsConnection(loop, protocol, request), HOST, self.port)
        except (OSError, TimeoutError) as exc:
            raise connect_error(exc, CONNECT_SECONDS) from None
        self.every.append(conn)
        # asyncio.wait, not await: a cancelled wait must leave the future to
        # the connection, which sets it when the 101 (or the end) comes.
        done, _ = await asyncio.wait({conn.handshake}, timeout=CONNECT_SECONDS)
        if not done:
            conn.abort()
            raise RequestError(TIMEOUT, f"timeout: no handshake response within "
                                        f"{CONNECT_SECONDS:g}s")
        if conn.error is not None:
            raise conn.error
        return conn

    async def open(self, count: int) -> Opening:
        """Open `count` more listeners, OPEN_AT_ONCE at a time, within
        open_deadline(count)."""
        opening = Opening()
        left = count
        started = perf_counter()

        async def opener() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                try:
                    self.listeners.append(await self.connect())
                    opening.opened += 1
                except RequestError as exc:
                    opening.failed += 1
                    opening.error = opening.error or exc.message

        try:
            async with asyncio.timeout(open_deadline(count)):
                await asyncio.gather(*(opener() for _ in range(min(OPEN_AT_ONCE, count))))
        except TimeoutError:
            unopened = count - opening.opened - opening.failed
            opening.failed += unopened
            opening.error = opening.error or (f"{unopened} sockets not open within "
                                              f"{open_deadline(count):g} s")
        opening.seconds = perf_counter() - started
        return opening

    async def broadcast(self, index: int) -> Broadcast:
        """Send one message from the sender; wait (BROADCAST_SECONDS at
        most) until every listener has it."""
        assert self.sender is not None
        text = f"lab broadcast {index} ".ljust(MESSAGE_BYTES, ".")
        listeners = self.listeners
        for conn in listeners:
            conn.messages.clear()  # nothing is due; nothing stale may pass for it
        cpu = time.process_time()
        sent = perf_counter()
        self.sender.send(text)
        deadline = sent + BROADCAST_SECONDS
        pending = listeners
        while True:
            pending = [c for c in pending if not c.messages and c.open]
            if not pending or perf_counter() >= deadline:
                break
            # The room writes in the order of joining: wait for the last
            # one still waiting, then look at them all again.
            last = pending[-1]
            while not last.messages and last.open and perf_counter() < deadline:
                await asyncio.sleep(POLL_SECONDS)
        busy = perf_counter() - sent
        client_cpu = time.process_time() - cpu
        arrivals = []
        for conn in listeners:
            item = conn.next_message()
            if item is not None and item[1] == text:
                arrivals.append(item[0] - sent)
        self.sender.messages.clear()  # its own copy
        return Broadcast(arrivals, len(listeners), busy, client_cpu)

    async def close(self, conns: Sequence[WsConnection]) -> None:
        """A close frame on each (1000), CLOSE_SECONDS at most for the
        server to close them; the rest are dropped."""
        for conn in conns:
            conn.start_close(1000, "")
        waiting = [c.lost for c in conns if not c.lost.done()]
        if waiting:
            await asyncio.wait(waiting, timeout=CLOSE_SECONDS)
        self.abort(conns)

    def abort(self, conns: Sequence[WsConnection]) -> None:
        for conn in conns:
            if not conn.lost.done():
                conn.abort()


async def _warm_up(room: Room) -> None:
    warm = Room(room.loop, room.port, sender=room.sender)
    opening = await warm.open(WARMUP)
    room.every += warm.every
    if opening.failed:
        raise RequestError("warm-up", f"the warm-up's sockets did not open: {opening.error}")
    await warm.broadcast(-1)
    await warm.close(warm.listeners)


async def _hold(port: int, pgid: int, ladder: Sequence[int],
                say: Callable[[int], None]) -> dict[str, Any]:
    room = Room(asyncio.get_running_loop(), port)
    steps: list[dict[str, Any]] = []
    problem = None
    before: Memory | None = None
    try:
        room.sender = await room.connect()
        await _warm_up(room)
        await asyncio.sleep(SETTLE_SECONDS)
        before = group_memory(pgid)
        if before is None:
            raise RequestError("memory", "its memory cannot be read (/proc is Linux's)")
        for sockets in ladder:
            say(sockets)
            wanted = sockets - len(room.listeners)
            opening = await room.open(wanted)
            await asyncio.sleep(SETTLE_SECONDS)
            with_them = group_memory(pgid)
            if with_them is None:
                problem = "the server ended"
                break
            broadcasts = []
            started = perf_counter()
            with CpuWatch(pgid) as watch:
                for index in range(broadcasts_for(sockets)):
                    broadcasts.append(await room.broadcast(index))
                    await asyncio.sleep(GAP_SECONDS)
            steps.append(step_figures(sockets, len(room.listeners), opening, before, with_them,
                                      broadcasts, watch.shares, perf_counter() - started))
            if opening.failed:
                problem = (f"{opening.failed:,} of {wanted:,} sockets did not open "
                           f"({opening.error}): the ladder stopped at {sockets:,}")
                break
        await room.close(room.every)
    except RequestError as exc:
        problem = exc.message
    finally:
        room.abort(room.every)
    return {"memory": before.kind if before else None,
            "before_kib": before.best if before else None,
            "rss_before_kib": before.rss if before else None,
            "steps": steps, "problem": problem}


def measure_holding(port: int, pgid: int, ladder: Sequence[int],
                    say: Callable[[int], None] = lambda sockets: None) -> dict[str, Any]:
    """The WebSocket part against the server on `port` (its process group
    `pgid`), climbing `ladder`; `say(sockets)` as each rung begins."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(_hold(port, pgid, ladder, say))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's, where installed (the load tester's choice too)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
