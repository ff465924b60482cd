"""The lean loop: one URL, as fast as one Python process can drive it.

`twincorn load URL` (no scenario file) sends the same request over and
over. Here that runs without tasks, coroutines or futures per request: the
request's bytes are encoded once, and each connection drives itself from
the parser's callback. When a response completes, `completed()` records its
latency into the histogram and, in the closed model, writes the next
request on the same connection straight away; in the open model the
connection takes the next waiting arrival or goes back to the idle pool.

Per request, that leaves: one recv and one send (done by uvloop in C), the
parser's three callbacks, two perf_counter() calls, one histogram record.
There is no per-request timer either: a sweep twice a second fails the
requests that are older than the timeout.

A coroutine per connection exists only to (re)connect: at the start, and
when the server closes a connection or a request fails.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Coroutine
from time import perf_counter
from typing import Any, Protocol
from urllib.parse import urlsplit

from twincorn.load.arrivals import ArrivalClock, ramp
from twincorn.load.client import USER_AGENT
from twincorn.load.connection import (
    DROPPED,
    HTTP,
    TIMEOUT,
    Connection,
    RequestError,
    connect_error,
    status_message,
)
from twincorn.load.context import RunContext
from twincorn.load.plan import LoadPlan
from twincorn.load.scenario import Builtin

_SWEEP_SECONDS = 0.5


def encode_request(builtin: Builtin) -> tuple[bytes, str, str, int, bool]:
    """The request's bytes, its name (the target), host, port and TLS flag."""
    parts = urlsplit(builtin.url)
    https = parts.scheme == "https"
    default = 443 if https else 80
    port = parts.port or default
    hostname = parts.hostname or "127.0.0.1"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = f"[{hostname}]" if ":" in hostname else hostname
    given = {name.lower() for name, _ in builtin.headers}
    lines = [f"{builtin.method} {target} HTTP/1.1"]
    if "host" not in given:
        lines.append(f"Host: {host}" if port == default else f"Host: {host}:{port}")
    if "user-agent" not in given:
        lines.append(f"User-Agent: {USER_AGENT}")
    if "accept" not in given:
        lines.append("Accept: */*")
    lines.extend(f"{name}: {value}" for name, value in builtin.headers)
    if builtin.body is not None:
        lines.append(f"Content-Length: {len(builtin.body)}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (builtin.body or b"")
    return data, target, hostname, port, https


class LeanConn(Protocol):
    """What the lean drivers ask of a connection: LeanConnection here (HTTP),
    LeanWebSocket in ws_fastpath.py. It calls the driver's completed(conn)
    when its request is answered and failed(conn, error) when it is not."""

    busy: bool  # a request is out, unanswered
    sent_at: float  # perf_counter() when it was sent
    scheduled: float  # when its arrival was due (open model)
    status: int  # HTTP's; >= 400 has record_status() count a failure
    size: int  # bytes of the answer
    lost: asyncio.Future[None]  # done once the connection closed

    @property
    def open(self) -> bool: ...

    def send(self, data: Any, head_only: bool = False) -> None: ...

    def fail(self, error: RequestError) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class LeanConnection(Connection):
    """A connection that reports to its driver, and remembers when its
    current request was scheduled (open model)."""

    def __init__(self, driver: LeanDriver) -> None:
        super().__init__()
        self.driver = driver
        self.scheduled = 0.0
        self.lost: asyncio.Future[None] = driver.loop.create_future()

    def response_complete(self) -> None:
        self.driver.completed(self)

    def response_failed(self, error: RequestError) -> None:
        self.driver.failed(self, error)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self.lost.done():
            self.lost.set_result(None)


class LeanDriver:
    """What both lean drivers share: the request, connecting, timeouts, stop."""

    #: What a request that timed out fails with, before the timeout.
    timeout_text = "timeout: no response within"

    def __init__(self, context: RunContext, target: Any, plan: LoadPlan) -> None:
        self.context = context
        self.plan = plan
        self.loop = asyncio.get_running_loop()
        self.conns: set[LeanConn] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = False
        self.connecting = 0
        self._sweeper: asyncio.TimerHandle | None = None
        self.aim(target)

    def aim(self, target: Any) -> None:
        """What to send, where, and the row it counts in: the HTTP request
        of a bare URL, a Builtin (ws_fastpath.py aims at a WebSocket echo)."""
        builtin: Builtin = target
        self.request: Any
        self.request, name, self.host, self.port, https = encode_request(builtin)
        self.ssl = self.context.tls.context() if https else None
        self.head_only = builtin.method == "HEAD"
        self.tally = self.context.collector.tally(builtin.method, name)

    async def open_connection(self) -> LeanConn | RequestError:
        """A new connection, ready for its first request; or the RequestError
        that prevented it (an OSError or TimeoutError is connect's to sort)."""
        async with asyncio.timeout(self.context.connect_timeout):
            _, conn = await self.loop.create_connection(
                lambda: LeanConnection(self), self.host, self.port, ssl=self.ssl
            )
        return conn

    def connect_failed(self, error: RequestError) -> None:
        self.context.collector.no_response(self.tally, error.kind, error.message)

    # -- the hooks the runner calls -------------------------------------------------

    def users(self) -> int:
        return len(self.conns) + self.connecting

    def in_flight(self) -> int:
        return sum(1 for c in self.conns if c.busy) + self.connecting

    def spawning(self) -> bool:
        return False

    def unfinished(self) -> list[float]:
        """How long each request in flight has waited, in seconds."""
        now = perf_counter()
        return [now - c.sent_at for c in self.conns if c.busy]

    async def drain(self, timeout: float) -> None:
        """Wait (at most `timeout`) until no request is in flight."""
        deadline = self.loop.time() + timeout
        while self.in_flight() and self.loop.time() < deadline:
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        self.stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self.tasks):
            task.cancel()
        for conn in list(self.conns):
            conn.busy = False  # abandoned: not recorded
            conn.abort()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        self.conns.clear()

    # -- shared machinery -----------------------------------------------------------

    def start_sweeper(self) -> None:
        self._sweeper = self.loop.call_later(_SWEEP_SECONDS, self._sweep)

    def _sweep(self) -> None:
        """Fail the requests older than the timeout (no timer per request)."""
        limit = perf_counter() - self.context.timeout
        for conn in list(self.conns):
            if conn.busy and conn.sent_at < limit:
                conn.fail(RequestError(TIMEOUT, f"{self.timeout_text} "
                                                f"{self.context.timeout:g}s"))
        if not self.stopping:
            self._sweeper = self.loop.call_later(_SWEEP_SECONDS, self._sweep)

    def take(self) -> bool:
        """Spend one request of the --stop-after budget, if any is left."""
        context = self.context
        if self.stopping or context.stopping or context.budget <= 0:
            return False
        context.budget -= 1
        if context.budget == 0:
            context.on_exhausted()
        return True

    async def connect(self, reserved: bool = False) -> LeanConn | None:
        """A new connection, or None (the failure is recorded). `reserved`:
        the caller already counted it in `connecting` (when it spawned the
        task, so that arrivals of the same tick see it)."""
        if not reserved:
            self.connecting += 1
        try:
            conn = await self.open_connection()
        except (OSError, TimeoutError) as exc:
            conn = connect_error(exc, self.context.connect_timeout)
        finally:
            self.connecting -= 1
        if isinstance(conn, RequestError):
            self.connect_failed(conn)
            return None
        if self.stopping:
            conn.abort()
            return None
        self.conns.add(conn)
        return conn

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def record_status(self, conn: LeanConn) -> None:
        """A response that came but failed (HTTP: its status is 400 or more)."""
        self.context.collector.failure(self.tally, HTTP, status_message(conn.status))

    def completed(self, conn: LeanConn) -> None:
        raise NotImplementedError

    def failed(self, conn: LeanConn, error: RequestError) -> None:
        self.conns.discard(conn)
        if not self.stopping:
            self.context.collector.no_response(self.tally, error.kind, error.message)


# After a failed connect, a closed-model user waits this long before the
# next attempt, doubling up to the last (each attempt counts as a failure).
_FIRST_BACKOFF, _LAST_BACKOFF = 0.01, 1.0


class LeanClosed(LeanDriver):
    """Closed model: N connections, each sending its next request as soon as
    the last response is in (no think time), started at --spawn-rate."""

    def __init__(self, context: RunContext, target: Any, plan: LoadPlan) -> None:
        super().__init__(context, target, plan)
        self.started = 0
        self._ramp: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.start_sweeper()
        if self.plan.spawn_rate <= 0:  # all at once, now: the run is not spawning (runner.py)
            for _ in range(self.plan.users):
                self._start_user()
            return
        self._ramp = self.loop.create_task(self._spawn_users())
        self.tasks.add(self._ramp)
        self._ramp.add_done_callback(self.tasks.discard)

    def users(self) -> int:
        return self.started

    def spawning(self) -> bool:
        return self._ramp is not None and not self._ramp.done()

    async def _spawn_users(self) -> None:
        await ramp(self.plan.users, self.plan.spawn_rate, self._start_user,
                   lambda: self.stopping)

    def _start_user(self) -> None:
        self.started += 1
        self.spawn(self._user())

    async def _user(self) -> None:
        """One user: connect, let the connection loop by itself until it
        closes, and connect again."""
        backoff = _FIRST_BACKOFF
        while not self.stopping:
            if not self.take():
                return
            conn = await self.connect()
            if conn is None:
                # A refused connect comes back at once: without a pause the
                # user would spin, recording failures as fast as the CPU goes.
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _LAST_BACKOFF)
                continue
            backoff = _FIRST_BACKOFF
            conn.send(self.request, self.head_only)
            await conn.lost
            self.conns.discard(conn)

    def completed(self, conn: LeanConn) -> None:
        # The hot path: record, then send the next request on this connection.
        done = perf_counter()
        tally = self.tally
        tally.hist.record(int((done - conn.sent_at) * 1_000_000))
        tally.bytes += conn.size
        if conn.status >= 400:
            self.record_status(conn)
        if conn.open and self.take():
            conn.send(self.request, self.head_only)
        elif conn.open:
            conn.close()  # budget spent or stopping: this user is done


class LeanOpen(LeanDriver):
    """Open model: arrivals at --rate go out on idle connections; new
    connections are opened up to --max-in-flight; beyond that arrivals wait
    (up to --max-queue) for the first connection to free up."""

    def __init__(self, context: RunContext, target: Any, plan: LoadPlan) -> None:
        super().__init__(context, target, plan)
        self.idle: list[LeanConn] = []
        self.waiting: deque[float] = deque()
        self.clock = ArrivalClock(self.loop, plan.rate, self.arrive)
        self._dropped_message = (
            f"dropped: {plan.max_in_flight} requests in flight (--max-in-flight) "
            f"and {plan.max_queue} arrivals waiting (--max-queue)"
        )

    def start(self) -> None:
        self.start_sweeper()
        self.clock.start()

    def in_flight(self) -> int:
        return super().in_flight() + len(self.waiting)

    async def stop(self) -> None:
        self.clock.stop()
        self.waiting.clear()
        self.idle.clear()
        await super().stop()

    def arrive(self, scheduled: float) -> None:
        if not self.take():
            self.clock.stop()
            return
        idle = self.idle
        while idle:
            conn = idle.pop()
            if conn.open:
                conn.scheduled = scheduled
                conn.send(self.request, self.head_only)
                return
            self.conns.discard(conn)
        if len(self.conns) + self.connecting < self.plan.max_in_flight:
            self._open_for(scheduled)
        elif len(self.waiting) < self.plan.max_queue:
            self.waiting.append(scheduled)
        else:
            self.context.collector.dropped += 1
            self.context.collector.no_response(self.tally, DROPPED, self._dropped_message)

    def _open_for(self, scheduled: float) -> None:
        """Open a connection for an arrival (counted at once as connecting)."""
        self.connecting += 1
        self.spawn(self._open_and_send(scheduled))

    async def _open_and_send(self, scheduled: float) -> None:
        conn = await self.connect(reserved=True)
        if conn is not None:
            conn.scheduled = scheduled
            conn.send(self.request, self.head_only)
        elif self.waiting and not self.stopping:
            self._open_for(self.waiting.popleft())

    def completed(self, conn: LeanConn) -> None:
        # The hot path: latency from the scheduled time and from the send.
        done = perf_counter()
        tally = self.tally
        tally.hist.record(int((done - conn.scheduled) * 1_000_000))
        tally.uncorrected.record(int((done - conn.sent_at) * 1_000_000))  # type: ignore[union-attr]
        tally.bytes += conn.size
        if conn.status >= 400:
            self.record_status(conn)
        self._next(conn)

    def failed(self, conn: LeanConn, error: RequestError) -> None:
        super().failed(conn, error)
        self._next(conn)

    def _next(self, conn: LeanConn) -> None:
        if self.stopping:
            return
        if conn.open:
            if self.waiting:
                conn.scheduled = self.waiting.popleft()
                conn.send(self.request, self.head_only)
            else:
                self.idle.append(conn)
        else:
            self.conns.discard(conn)
            if self.waiting:
                self._open_for(self.waiting.popleft())
