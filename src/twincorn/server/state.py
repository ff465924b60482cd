"""What every connection of one worker shares, and the worker-wide policies
over them: deadlines (the sweep) and room for newcomers (shedding)."""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from twincorn.exchange import Adapter
from twincorn.http import RequestPolicy
from twincorn.http.forwarded import ProxyHeaders
from twincorn.server.websocket import WebSocketTimeouts

if TYPE_CHECKING:
    from twincorn.server.protocol import HttpConnection
    from twincorn.server.websocket import WebSocketConnection
    from twincorn.trusted import TrustedPeers

    Connection: TypeAlias = HttpConnection | WebSocketConnection

log = logging.getLogger("twincorn.error")

FRESH_SECONDS = 0.2
# Each time the worker is full, this share of --worker-connections is shed
# at once: one scan of the connections makes room for several newcomers.
_SHED_SHARE = 0.01
# Deadlines acted on in one turn of the loop (WorkerState.sweep).
_SWEEP_SLICE = 64
# At most one "full" warning in this many seconds: under attack it would
# otherwise be written hundreds of times a second.
_WARN_EVERY = 10.0


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds (and a rate); see the settings of the same names in twincorn.config."""

    keep_alive: float = 5.0  # idle between requests
    request_head: float = 20.0  # from the first byte of a head to its end
    request_body: float = 30.0  # silence while a body is being read
    send: float = 60.0  # the client leaves what we send unread
    #: Bytes a second a request body must keep up, once its first
    #: `request_body` seconds are spent (0: silence is the only limit).
    min_body_rate: float = 500.0


@dataclass(slots=True)
class WorkerState:
    """The worker's shared state; connections read it on every request."""

    loop: asyncio.AbstractEventLoop
    adapter: Adapter
    policy: RequestPolicy
    timeouts: Timeouts = field(default_factory=Timeouts)
    websocket: WebSocketTimeouts = field(default_factory=WebSocketTimeouts)
    server_header: bytes = b"twincorn"
    max_connections: int = 1000
    drain_limit: int = 1 << 20  # unread body bytes discarded before closing
    max_pipeline: int = 32  # parsed requests queued before reading pauses
    #: --proxy-protocol: the peers whose connections begin with a PROXY
    #: header (--proxy-allow-ips); None when the setting is off.
    proxy_peers: TrustedPeers | None = None
    #: Whose proxy headers to believe (--forwarded-allow-ips); None with
    #: --no-proxy-headers. Judged once per connection (HttpConnection.trust).
    proxy_headers: ProxyHeaders | None = None
    #: Called with (connection, exchange, seconds) after each response.
    access_log: Callable[..., None] | None = None
    #: Every open connection: HTTP, and the WebSockets they became.
    connections: set[Connection] = field(default_factory=set)
    #: TLS connections accepted and not yet through their handshake
    #: (server/tls.py): they count against max_connections too.
    handshakes: int = 0
    #: Connections on their way out (closing, or closed and not yet lost):
    #: they no longer count against max_connections.
    leaving: int = 0
    #: Connections accepted less than FRESH_SECONDS ago with no byte yet:
    #: their request is most likely on its way, so they count as taking a
    #: WSGI slot (see Worker._busy). Called when one stops counting:
    fresh: int = 0
    on_room: Callable[[], None] | None = None
    #: A coarse clock (loop.time()), updated once a second by the sweeper:
    #: deadlines are set without a system call on the hot path.
    now: float = field(default_factory=time.monotonic)
    #: Responses completed, for --max-requests.
    served: int = 0
    #: True once a graceful stop began: responses say Connection: close
    #: (when no other request of theirs is queued: HttpConnection.keep_alive).
    stopping: bool = False
    #: The close code of a graceful stop (1001 or 1012), once it began: a
    #: WebSocket accepted after that is closed with it at once.
    going_away: int = 0
    _warned: float = -_WARN_EVERY

    def sweep(self, now: float) -> None:
        """Expire the deadlines of every connection; runs once a second.

        Expiring costs (a 408 written, a socket closed): after _SWEEP_SLICE
        expiries the rest waits for the loop's next turn, so that thousands
        of deadlines passing together (slow-loris connections that came in
        the same second) do not stall the requests being served."""
        self.now = now
        self._sweep_from(iter(list(self.connections)), now)

    def _sweep_from(self, rest: Iterator[Connection], now: float) -> None:
        acted = 0
        for conn in rest:
            if conn.check_deadline(now):
                acted += 1
                if acted >= _SWEEP_SLICE:
                    self.loop.call_soon(self._sweep_from, rest, now)
                    return

    @property
    def full(self) -> bool:
        return len(self.connections) + self.handshakes - self.leaving > self.max_connections

    def make_room(self) -> bool:
        """At --worker-connections: close the connections that made the least
        progress, a batch at a time (HttpConnection.shed_rank says which);
        False if none can go, every connection waiting for the application.

        A newcomer is not refused while slow or idle connections hold the
        places: a slow-loris attack then only churns its own connections.
        """
        ranked = []
        for conn in self.connections:
            rank = conn.shed_rank()
            if rank is not None:
                ranked.append((rank, id(conn), conn))
        if not ranked:
            return False
        batch = max(1, int(self.max_connections * _SHED_SHARE))
        victims = heapq.nsmallest(batch, ranked)
        if self.now - self._warned >= _WARN_EVERY:
            self._warned = self.now
            log.warning("connection limit (%d) reached: closing the %d that made the "
                        "least progress (and more as needed; next note in %.0f s)",
                        self.max_connections, len(victims), _WARN_EVERY)
        for _, _, conn in victims:
            conn.shed()
        return True
