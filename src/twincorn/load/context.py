"""What every client and driver of one load process shares."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from twincorn.load.stats import Collector
from twincorn.load.tls import ClientTls


class RunExhausted(BaseException):  # a signal, like CancelledError
    """The run stops sending (--stop-after reached, or stopping): raised from
    a request so that the task unwinds. A BaseException, so that a task's
    `except Exception` does not swallow it."""


class StopUser(Exception):  # Locust's name
    """Raise in a task to stop this user (it does not come back)."""


class NotAwaited(Exception):
    """Not raised: what the driver records, as a task's exception, when the
    task made a request and dropped it unsent (`self.client.get("/")`
    without await)."""


class ResponseError(Exception):
    """Raise inside `async with client.get(..., check=True) as r:` to mark
    the request failed with this message (the exception goes no further)."""


class WebSocketError(Exception):
    """A WebSocket step that could not complete (handshake refused, closed
    by the server, timeout, reset, protocol error). Raised after it was
    counted as a failure of its row, so the driver does not count it again
    as the task's exception; catch it to go on with the task."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass
class RunContext:
    """One load process's shared state: where requests are recorded, how
    many may still be sent, the timeouts."""

    collector: Collector
    connect_timeout: float = 5.0
    timeout: float = 60.0
    # --stop-after: requests this process may still send (no limit: maxsize).
    budget: int = sys.maxsize
    on_exhausted: Callable[[], None] = field(default=lambda: None)
    stopping: bool = False  # no new requests once set
    in_flight: int = 0  # requests sent and not yet answered (the general path)
    #: https:// and wss://: the TLS options, and the context made from them.
    tls: ClientTls = field(default_factory=ClientTls)

    def take(self) -> None:
        """Spend one request of the budget, or raise RunExhausted."""
        if self.stopping:
            raise RunExhausted
        if self.budget <= 0:
            raise RunExhausted
        self.budget -= 1
        if self.budget == 0:
            self.on_exhausted()
