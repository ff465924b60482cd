"""The normal client of bench/slow_clients.py: one GET / at a steady pace.

A Poller is a thread that sends GET / every `interval` seconds and records,
for each poll, when it was sent, how long it took and how it ended: "ok"
(a 200), or the kind of failure. A poll that takes longer than the interval
delays the next one (no catch-up burst), as a person's browser would.

With kept=False each poll opens a new connection and closes it (the
newcomer, refused first when a server runs out of connections); with
kept=True the client keeps one connection alive across polls, opens it
before the attack, and opens a new one only after a failure.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Poll:
    at: float  # time.monotonic() when it was sent
    seconds: float
    outcome: str  # "ok" or the kind of failure


class Poller(threading.Thread):
    def __init__(self, host: str, port: int, kept: bool, interval: float, timeout: float) -> None:
        super().__init__(name="kept" if kept else "new", daemon=True)
        self.host, self.port, self.kept = host, port, kept
        self.interval, self.timeout = interval, timeout
        self.polls: list[Poll] = []
        self._done = threading.Event()
        self._conn: http.client.HTTPConnection | None = None

    def begin(self) -> Poller:
        self.start()
        return self

    def finish(self) -> None:
        self._done.set()
        self.join(self.timeout * 2 + 1)

    def run(self) -> None:
        due = time.monotonic()
        while not self._done.is_set():
            started = time.monotonic()
            outcome = self.poll()
            now = time.monotonic()
            self.polls.append(Poll(started, now - started, outcome))
            due = max(due + self.interval, now)
            self._done.wait(due - now)
        if self._conn is not None:
            self._conn.close()

    def poll(self) -> str:
        """One GET /: "ok", or what went wrong (the connection is dropped then)."""
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.connect()
            except OSError as exc:
                self._drop()
                return "connect " + failure(exc)
        conn = self._conn
        try:
            conn.request("GET", "/", headers={} if self.kept else {"Connection": "close"})
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._drop()
            return failure(exc)
        if not self.kept or response.will_close:
            self._drop()
        return "ok" if response.status == 200 else f"status {response.status}"

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def failure(exc: BaseException) -> str:
    """A short name for what went wrong."""
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "closed"  # the server closed the connection without answering
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, BrokenPipeError):
        return "broken pipe"
    return type(exc).__name__
