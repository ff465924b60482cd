"""What a run measured: per request name, per second, and in all.

Two sides. The hot side, `Collector`, is what requests are recorded into
while the run goes: one `Tally` per (method, name) holding this second's
latency histogram and counters. Once a second the runner asks it for a
`Window` (the second's tallies, errors and exceptions) and it starts afresh.
The cold side, `Stats`, absorbs windows in order: it adds each window into
the running totals and turns it into one row of the timeline.

Windows are also what load processes send to their parent (`--processes`):
the parent merges the windows of one second from every process (histograms
added, counts summed) before absorbing them, so its percentiles, per second
and in all, are those of every request, never an average of percentiles.

Latency is recorded for every request that got a response, whatever its
status; requests that got none (refused, reset, timeout, dropped) count as
requests and failures but have no latency.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field

from twincorn.load.histogram import Histogram

# The percentiles of Locust's tables and CSV files (per cent).
PERCENTILES = (50.0, 66.0, 75.0, 80.0, 90.0, 95.0, 98.0, 99.0, 99.9, 99.99, 100.0)
Key = tuple[str, str]  # (method, name)


@dataclass(slots=True)
class Tally:
    """Counts and latencies of one request name (or of all: name "Aggregated")."""

    method: str
    name: str
    hist: Histogram = field(default_factory=Histogram)  # corrected, in the open model
    uncorrected: Histogram | None = None  # open model: from the actual send
    # Requests without a latency: no response came (refused, reset, timeout...),
    # or a WebSocket message counted untimed (sent with reply=False, or pushed).
    no_response: int = 0
    failures: int = 0
    bytes: int = 0  # response body bytes

    @property
    def requests(self) -> int:
        return self.hist.count + self.no_response

    def merge(self, other: Tally) -> None:
        self.hist.merge(other.hist)
        if other.uncorrected is not None:
            if self.uncorrected is None:
                self.uncorrected = Histogram()
            self.uncorrected.merge(other.uncorrected)
        self.no_response += other.no_response
        self.failures += other.failures
        self.bytes += other.bytes

    def empty_copy(self) -> Tally:
        return Tally(
            self.method, self.name, uncorrected=None if self.uncorrected is None else Histogram()
        )


@dataclass(slots=True)
class ErrorCount:
    """Failures of one request name with one message."""

    method: str
    name: str
    message: str
    kind: str
    count: int = 0
    first_seen: float = 0.0  # unix time
    last_seen: float = 0.0

    def merge(self, other: ErrorCount) -> None:
        self.count += other.count
        self.first_seen = min(self.first_seen, other.first_seen)
        self.last_seen = max(self.last_seen, other.last_seen)


@dataclass(slots=True)
class ExceptionCount:
    """Exceptions a task (or on_start, on_stop) raised, by message."""

    where: str
    message: str
    traceback: str
    count: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0

    def merge(self, other: ExceptionCount) -> None:
        self.count += other.count
        self.first_seen = min(self.first_seen, other.first_seen)
        self.last_seen = max(self.last_seen, other.last_seen)


@dataclass(slots=True)
class Window:
    """One second (the last one may be shorter) of one or more processes."""

    index: int  # 1 for the first second of the run
    end: float  # seconds since the start
    duration: float
    users: int
    in_flight: int
    tallies: dict[Key, Tally]
    errors: dict[tuple[str, str, str], ErrorCount]
    exceptions: dict[tuple[str, str], ExceptionCount]
    dropped: int = 0
    tasks: int = 0  # task runs begun (the scenario's users; none for a bare URL)
    processes: int = 1
    # The last window only: requests still in flight when the run stopped
    # (abandoned, not counted), and how long the oldest had waited.
    unfinished: int = 0
    unfinished_oldest: float = 0.0

    def merge(self, other: Window) -> None:
        """Add another process's window of the same second."""
        self.end = max(self.end, other.end)
        self.duration = max(self.duration, other.duration)
        self.users += other.users
        self.in_flight += other.in_flight
        self.dropped += other.dropped
        self.tasks += other.tasks
        self.processes += other.processes
        self.unfinished += other.unfinished
        self.unfinished_oldest = max(self.unfinished_oldest, other.unfinished_oldest)
        _merge_into(self.tallies, other.tallies)
        _merge_into(self.errors, other.errors)
        _merge_into(self.exceptions, other.exceptions)


def _merge_into(mine: dict, theirs: dict) -> None:  # type: ignore[type-arg]
    for key, value in theirs.items():
        if key in mine:
            mine[key].merge(value)
        else:
            mine[key] = value


class Collector:
    """The hot side: what this process measured in the current second.

    Drivers hold on to a Tally (from `tally()`) and record into it: the
    Tally object stays the same across seconds, only its histogram and
    counters are replaced by `rotate()`.
    """

    def __init__(self, open_model: bool = False) -> None:
        self.open_model = open_model
        self.tallies: dict[Key, Tally] = {}
        self.errors: dict[tuple[str, str, str], ErrorCount] = {}
        self.exceptions: dict[tuple[str, str], ExceptionCount] = {}
        self.dropped = 0
        self.tasks = 0  # task runs begun this second
        self.requests = 0  # in all, since the start (for --stop-after and the display)

    def tally(self, method: str, name: str) -> Tally:
        key = (method, name)
        found = self.tallies.get(key)
        if found is None:
            found = self.tallies[key] = Tally(
                method, name, uncorrected=Histogram() if self.open_model else None
            )
        return found

    def record(self, tally: Tally, us: int, size: int, uncorrected_us: int = -1) -> None:
        """A response, its latency in microseconds (and, in the open model,
        the latency from the actual send)."""
        tally.hist.record(us)
        tally.bytes += size
        if tally.uncorrected is not None:
            tally.uncorrected.record(us if uncorrected_us < 0 else uncorrected_us)

    def failure(self, tally: Tally, kind: str, message: str) -> None:
        """Count a failure; record the request itself first (or call `no_response`)."""
        tally.failures += 1
        key = (tally.method, tally.name, message)
        error = self.errors.get(key)
        now = time.time()
        if error is None:
            error = self.errors[key] = ErrorCount(
                tally.method, tally.name, message, kind, first_seen=now
            )
        error.count += 1
        error.last_seen = now

    def no_response(self, tally: Tally, kind: str, message: str) -> None:
        """A request that got no response: counted, failed, no latency."""
        tally.no_response += 1
        self.failure(tally, kind, message)

    def count(self, tally: Tally, size: int = 0) -> None:
        """A step counted without a latency and without failing (a WebSocket
        message sent with no reply expected, or received unasked)."""
        tally.no_response += 1
        tally.bytes += size

    def exception(self, where: str, exc: BaseException) -> None:
        message = f"{type(exc).__name__}: {exc}"
        key = (where, message)
        now = time.time()
        found = self.exceptions.get(key)
        if found is None:
            text = "".join(traceback.format_exception(exc))
            found = self.exceptions[key] = ExceptionCount(where, message, text, first_seen=now)
        found.count += 1
        found.last_seen = now

    def rotate(
        self, index: int, end: float, duration: float, users: int, in_flight: int
    ) -> Window:
        """This second's window; the tallies start again from zero."""
        tallies: dict[Key, Tally] = {}
        for key, live in self.tallies.items():
            if live.requests or live.failures:
                snapshot = live.empty_copy()
                snapshot.hist, live.hist = live.hist, snapshot.hist
                snapshot.uncorrected, live.uncorrected = live.uncorrected, snapshot.uncorrected
                snapshot.no_response, live.no_response = live.no_response, 0
                snapshot.failures, live.failures = live.failures, 0
                snapshot.bytes, live.bytes = live.bytes, 0
                tallies[key] = snapshot
        window = Window(
            index, end, duration, users, in_flight, tallies, self.errors, self.exceptions,
            dropped=self.dropped, tasks=self.tasks,
        )
        self.errors = {}
        self.exceptions = {}
        self.dropped = 0
        self.tasks = 0
        return window


def ms(us: float) -> float:
    return round(us / 1000, 3)


class Stats:
    """The cold side: the totals so far and the timeline, window by window."""

    def __init__(self, open_model: bool = False) -> None:
        self.open_model = open_model
        self.tallies: dict[Key, Tally] = {}
        self.total = Tally("", "Aggregated", uncorrected=Histogram() if open_model else None)
        self.errors: dict[tuple[str, str, str], ErrorCount] = {}
        self.exceptions: dict[tuple[str, str], ExceptionCount] = {}
        self.timeline: list[dict[str, float | int]] = []
        self.dropped = 0
        self.tasks = 0  # task runs begun, in all
        self.unfinished = 0
        self.unfinished_oldest = 0.0
        self.elapsed = 0.0  # end of the last window absorbed, seconds since the start
        self.origin = 0.0  # when these totals began (after a reset), seconds since the start
        self.users = 0
        self.in_flight = 0

    def restarted(self) -> Stats:
        """Empty totals counting from now, the timeline kept (a reset)."""
        fresh = Stats(self.open_model)
        fresh.timeline = self.timeline
        fresh.elapsed = fresh.origin = self.elapsed
        fresh.users, fresh.in_flight = self.users, self.in_flight
        return fresh

    def absorb(self, window: Window) -> dict[str, float | int] | None:
        """Add one window to the totals; return (and keep) its timeline row.

        A last window that is a sliver of a second with nothing in it (the
        run stopped just after a whole second) makes no row: None."""
        second = Tally("", "Aggregated", uncorrected=Histogram() if self.open_model else None)
        for key, tally in window.tallies.items():
            second.merge(tally)
            if key not in self.tallies:
                self.tallies[key] = tally.empty_copy()
            self.tallies[key].merge(tally)
        self.total.merge(second)
        _merge_into(self.errors, window.errors)
        _merge_into(self.exceptions, window.exceptions)
        self.dropped += window.dropped
        self.tasks += window.tasks
        self.unfinished += window.unfinished
        self.unfinished_oldest = max(self.unfinished_oldest, window.unfinished_oldest)
        self.elapsed = max(self.elapsed, window.end)
        self.users = window.users
        self.in_flight = window.in_flight
        if window.duration < 0.05 and not (window.tallies or window.errors or window.exceptions):
            return None
        row = self._row(window, second)
        self.timeline.append(row)
        return row

    def _row(self, window: Window, second: Tally) -> dict[str, float | int]:
        duration = window.duration or 1.0
        p = second.hist.percentiles(list(PERCENTILES))
        total = self.total.hist
        row: dict[str, float | int] = {
            "t": round(window.end, 3),
            "timestamp": round(time.time(), 3),
            "rps": round(second.requests / duration, 3),
            "failures_per_s": round(second.failures / duration, 3),
            "p50_ms": ms(p[0]),
            "p99_ms": ms(p[7]),
            "users": window.users,
            "in_flight": window.in_flight,
            "requests": second.requests,
            "failures": second.failures,
            "mean_ms": ms(second.hist.mean),
        }
        for q, value in zip(PERCENTILES, p, strict=True):
            row[percentile_key(q)] = ms(value)
        if second.uncorrected is not None:
            u50, u99 = second.uncorrected.percentiles([50, 99])
            row["p50_uncorrected_ms"] = ms(u50)
            row["p99_uncorrected_ms"] = ms(u99)
            row["dropped"] = window.dropped
        row.update(
            total_requests=self.total.requests,
            total_failures=self.total.failures,
            total_p50_ms=ms(total.percentile(50)),
            total_mean_ms=ms(total.mean),
            total_min_ms=ms(total.min if total.count else 0),
            total_max_ms=ms(total.max),
            total_avg_size=round(self.total.bytes / total.count, 3) if total.count else 0,
        )
        return row


def percentile_key(q: float) -> str:
    """The timeline key of a percentile: 50 -> p50_ms, 99.9 -> p999_ms, 100 -> max_ms."""
    if q >= 100:
        return "max_ms"
    return "p" + f"{q:g}".replace(".", "") + "_ms"
