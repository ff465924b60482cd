"""Connections: how many a worker holds, and the deadlines of each phase."""

from __future__ import annotations

from dataclasses import dataclass

from twincorn.settings.declare import setting


@dataclass(frozen=True)
class ConnectionSettings:
    """Connections: how many a worker holds, and the deadlines of each phase."""

    __slots__ = ()

    # -- connections and timeouts
    worker_connections: int = setting(
        1000,
        "Connections one worker holds at once. At the limit, a newcomer is let in "
        "by closing the connections that made the least progress (slow heads and "
        "bodies, then the longest idle); 503 only if every one waits for the app.",
        section="connections",
        metavar="N",
    )
    timeout_keep_alive: float = setting(
        5.0,
        "How long an idle keep-alive connection is kept open.",
        section="connections",
        metavar="TIME",
        unit="duration",
    )
    timeout_request_head: float = setting(
        20.0,
        "How long a client has to send a whole request head once it began (408).",
        section="connections",
        metavar="TIME",
        unit="duration",
    )
    timeout_request_body: float = setting(
        30.0,
        "Silence allowed while a request body is read (408); past it, the body "
        "must also keep up --min-request-body-rate.",
        section="connections",
        metavar="TIME",
        unit="duration",
    )
    min_request_body_rate: int = setting(
        500,
        "Bytes a second a request body must average once its first "
        "--timeout-request-body is spent (408); 0 for no minimum.",
        section="connections",
        metavar="SIZE",
        unit="size",
    )
    timeout_send: float = setting(
        60.0,
        "How long a client may leave what the server sends unread (its socket "
        "buffer full) before the connection is cut; 0 for no limit.",
        section="connections",
        metavar="TIME",
        unit="duration",
    )
    graceful_timeout: float = setting(
        30.0,
        "How long in-flight requests get to finish when the server stops.",
        section="connections",
        metavar="TIME",
        unit="duration",
    )
