"""What every connection of one worker shares."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from twincorn.exchange import Adapter
from twincorn.http import RequestPolicy

if TYPE_CHECKING:
    from twincorn.server.protocol import HttpConnection


FRESH_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds; see the settings of the same names in twincorn.config."""

    keep_alive: float = 5.0  # idle between requests
    request_head: float = 20.0  # from the first byte of a head to its end
    request_body: float = 30.0  # silence while a body is being read


@dataclass(slots=True)
class WorkerState:
    """The worker's shared state; connections read it on every request."""

    loop: asyncio.AbstractEventLoop
    adapter: Adapter
    policy: RequestPolicy
    timeouts: Timeouts = field(default_factory=Timeouts)
    server_header: bytes = b"twincorn"
    max_connections: int = 1000
    drain_limit: int = 1 << 20  # unread body bytes discarded before closing
    max_pipeline: int = 32  # parsed requests queued before reading pauses
    #: Called with (connection, exchange, seconds) after each response.
    access_log: Callable[..., None] | None = None
    connections: set[HttpConnection] = field(default_factory=set)
    #: Connections accepted less than FRESH_SECONDS ago with no request yet:
    #: their request is most likely on its way, so they count as taking a
    #: WSGI slot (see Worker._busy). Called when one stops counting:
    fresh: int = 0
    on_room: Callable[[], None] | None = None
    #: A coarse clock (loop.time()), updated once a second by the sweeper:
    #: deadlines are set without a system call on the hot path.
    now: float = field(default_factory=time.monotonic)
    #: Responses completed, for --max-requests.
    served: int = 0
    #: True once a graceful stop began: responses say Connection: close.
    stopping: bool = False

    def sweep(self, now: float) -> None:
        """Expire the deadlines of every connection; runs once a second."""
        self.now = now
        for conn in list(self.connections):
            conn.check_deadline(now)
