"""A load of keep-alive clients that counts every failed request.

Kept apart from master_support.py (which re-exports it) so that scripts
outside the test suite (bench/restarts.py) can use it with the standard
library alone.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Failure:
    """One request of a KeepAliveLoad that did not end in a 200."""

    kind: str  # the exception's class name, or "status 503"
    client: int  # which client thread
    started: float  # time.monotonic() when the request began
    sent: float | None  # when the whole request was handed to the kernel; None: never was
    at: float  # when the failure was seen
    reused: bool  # on a connection that had already served a request
    detail: str


@dataclass(frozen=True)
class Done:
    """One request of a KeepAliveLoad answered with a 200."""

    client: int
    sent: float
    at: float
    closed: bool  # the response said Connection: close
    body: bytes


class KeepAliveLoad:
    """Clients that keep their connections alive, as a browser, a proxy's
    upstream pool or a requests Session does, counting every failure.

    Each client thread reuses one http.client.HTTPConnection for as long as
    the server keeps it open: a response that says `Connection: close`
    means "open a new one for the next request" (RFC 9112 section 9.6),
    which is no failure. Nothing is retried: any exception on a request
    (RemoteDisconnected, ConnectionResetError, BrokenPipeError, a timeout)
    or a status other than 200 is one failure, kept with its kind and times.
    With `think`, each client waits that long between its requests, as a
    person does: its connection is then idle most of the time.

    Counts: `done` (answered with 200, with their times), `failures` (a
    connection refused is one, with `sent` None), `connections` opened,
    `closes` (responses that said Connection: close), `bodies` (a Counter:
    with an app that answers its pid, who served what).
    """

    def __init__(self, port: int, clients: int = 6, path: str = "/", timeout: float = 5.0,
                 think: float = 0.0, host: str = "127.0.0.1") -> None:
        self.port, self.path, self.timeout, self.think, self.host = (
            port, path, timeout, think, host)
        self.done: list[Done] = []
        self.failures: list[Failure] = []
        self.connections = self.closes = 0
        self.bodies: Counter[bytes] = Counter()
        self.in_flight: dict[int, float] = {}  # client -> when its request was sent
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True)
                         for n in range(clients)]
        for t in self._threads:
            t.start()

    @property
    def ok(self) -> int:
        return len(self.done)

    def kinds(self) -> Counter[str]:
        """Failures by kind."""
        return Counter(f.kind for f in self.failures)

    def ok_between(self, start: float, end: float = float("inf")) -> int:
        """Responses (200) that arrived in [start, end) (time.monotonic())."""
        with self._lock:
            return sum(1 for d in self.done if start <= d.at < end)

    def bodies_between(self, start: float, end: float = float("inf")) -> set[bytes]:
        """The bodies of the responses that arrived in [start, end)."""
        with self._lock:
            return {d.body for d in self.done if start <= d.at < end}

    def latency_max(self) -> float:
        with self._lock:
            return max((d.at - d.sent for d in self.done), default=0.0)

    def sent_in_flight(self) -> list[float]:
        """When the requests now awaiting their response were sent."""
        with self._lock:
            return list(self.in_flight.values())

    def wait_for_ok(self, count: int, seconds: float, what: str = "") -> None:
        """Wait until `count` more responses have arrived than now."""
        target = self.ok + count
        deadline = time.monotonic() + seconds
        while self.ok < target:
            if time.monotonic() > deadline:
                raise AssertionError(f"{count} more responses not seen in {seconds} s "
                                     f"{what}: {self.summary()}")
            time.sleep(0.02)

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in self.kinds().most_common()) or "none"
        first = "; ".join(f"{f.kind} ({'reused' if f.reused else 'new'} connection): {f.detail}"
                          for f in self.failures[:3])
        return (f"{self.ok} ok, {len(self.failures)} failed ({kinds}), "
                f"{self.connections} connections, {self.closes} said close, "
                f"max latency {self.latency_max():.3f} s" + (f"; first: {first}" if first else ""))

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)

    def _client(self, number: int) -> None:
        conn: http.client.HTTPConnection | None = None
        served = 0  # requests answered on this connection
        while not self._stop.is_set():
            if conn is None:
                conn = self._connect(number)
                served = 0
                if conn is None:
                    self._stop.wait(0.01)  # refused: the server is not there (yet, or now)
                    continue
            if not self._request(number, conn, served > 0):
                conn.close()
                conn = None
                continue
            served += 1
            if conn.sock is None:  # http.client closed it: the response said close
                conn.close()
                conn = None
            if self.think:
                self._stop.wait(self.think)
        if conn is not None:
            conn.close()

    def _connect(self, number: int) -> http.client.HTTPConnection | None:
        """A new connection, counted; None (and a failure) if it could not be made."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        started = time.monotonic()
        try:
            conn.connect()
        except OSError as exc:
            self._fail(Failure(type(exc).__name__, number, started, None, time.monotonic(),
                               False, str(exc)[:200]))
            return None
        with self._lock:
            self.connections += 1
        return conn

    def _request(self, number: int, conn: http.client.HTTPConnection, reused: bool) -> bool:
        """One request; True if answered with a 200 on a connection still usable."""
        started = time.monotonic()
        sent: float | None = None
        try:
            conn.request("GET", self.path)
            sent = time.monotonic()
            with self._lock:
                self.in_flight[number] = sent
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._fail(Failure(type(exc).__name__, number, started, sent, time.monotonic(),
                               reused, str(exc)[:200]))
            return False
        closed = "close" in (response.getheader("connection") or "").lower()
        if response.status != 200:
            self._fail(Failure(f"status {response.status}", number, started, sent,
                               time.monotonic(), reused, body[:200].decode("latin-1")))
            return False
        with self._lock:
            self.in_flight.pop(number, None)
            self.done.append(Done(number, sent, time.monotonic(), closed, body))
            self.closes += closed
            self.bodies[body] += 1
        return True

    def _fail(self, failure: Failure) -> None:
        with self._lock:
            self.in_flight.pop(failure.client, None)
            self.failures.append(failure)
