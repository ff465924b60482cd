"""One measurement of the lab, through twincorn load's Python API.

`measure_closed` is one step of a ramp: `users` closed-loop users with no
think time, all started at once; the first `warmup` seconds are not
counted (the load tester's `warmup` option: its statistics start after
it), then `seconds` are. `measure_open` is a fixed-rate run (open model),
which reports latency both from when each request should have been sent
and from when it was, and keeps each answer's latency by when its request
was sent (BySend), for the chart of the queue growing.

Each measurement also says how busy the CPU was (cpu.py): the share of a
core used by the load generator (this process) and by the server's
processes, so that the report can say what limited a run.

Every request goes on a new connection (`Connection: close`), as it did in
the original lesson against gunicorn's sync worker, which closes every
connection. Then all waiting requests stand in one queue, the kernel's
listen queue, and the first free worker takes the oldest: the queue the
model assumes. With keep-alive, a connection stays with the worker that
accepted it, and a blocking worker's event loop, blocked for a whole
request at a time, takes seconds to set up each new one: the clients that
connected last wait far longer than the others until every connection has
settled on a worker (docs/execution-model.md).
"""

from __future__ import annotations

import time
from typing import Any

from twincorn import load
from twincorn.lab.cpu import CpuWatch

#: An open run's latencies are kept by when each request was sent, in
#: buckets this wide (seconds): one request each at a few a second.
BUCKET_SECONDS = 0.1
#: The most buckets an open run keeps (BUCKET_SECONDS x BUCKETS = 10 minutes).
BUCKETS = 6000


def _step(summary: dict[str, Any]) -> dict[str, Any]:
    """The figures of one run the lab keeps (from the load tester's JSON)."""
    latency = summary["latency_ms"]
    timeline = summary.get("timeline") or []
    in_flight = [row["in_flight"] for row in timeline]
    return {
        "requests": summary["requests"],
        "errors": summary["failures"],
        "seconds": round(summary["duration_s"], 3),
        "rps": round(summary["rps"], 3),
        "p50_ms": latency["p50"],
        "p95_ms": latency["p95"],
        "p99_ms": latency["p99"],
        "mean_ms": latency["mean"],
        "max_ms": latency["max"],
        "in_flight": sum(in_flight) / len(in_flight) if in_flight else 0.0,
    }


_CLOSE = ("Connection: close",)
_CLOSE_HEADERS = {"Connection": "close"}


def _run(url: str | None, **options: Any) -> load.Results:
    results = load.run(url, **options)
    if results.stopped_by == "interrupted":
        # The load tester takes Ctrl-C to end its run with the results so
        # far; the lab ends altogether (its servers are stopped on the way).
        raise KeyboardInterrupt
    return results


def measure_closed(url: str, users: int, warmup: float, seconds: float,
                   server_pgid: int | None = None) -> dict[str, Any]:
    """One step of a ramp; `server_pgid`, the server's process group, for
    its share of the CPU."""
    with CpuWatch(server_pgid) as watch:
        results = _run(
            url, users=users, spawn_rate=max(users, 1) * 10.0, run_time=warmup + seconds,
            warmup=warmup, timeout=120.0, stop_timeout=0.0, header=_CLOSE,
        )
    step = _step(results.to_dict())
    step["users"] = users
    step["warmup_s"] = warmup
    step["load_generator_cpu"] = watch.shares.load_generator
    step["server_cpu"] = watch.shares.server
    step["machine_cpu"] = watch.shares.machine
    step["cores"] = watch.shares.cores
    return step


class BySend:
    """The answers of an open run by when their requests were sent: the
    count, mean and max latency of the requests sent in each `width`
    seconds since the first. Its size follows the run's length, not its
    rate (at most `limit` buckets; later requests are not kept)."""

    def __init__(self, width: float = BUCKET_SECONDS, limit: int = BUCKETS) -> None:
        self.width = width
        self.limit = limit
        self.origin: float | None = None
        self.buckets: dict[int, list[float]] = {}  # index -> [count, sum, max] (seconds)

    def add(self, sent: float, answered: float) -> None:
        if self.origin is None:
            self.origin = sent
        index = int((sent - self.origin) / self.width)
        latency = answered - sent
        bucket = self.buckets.get(index)
        if bucket is not None:
            bucket[0] += 1
            bucket[1] += latency
            bucket[2] = max(bucket[2], latency)
        elif len(self.buckets) < self.limit:
            self.buckets[index] = [1, latency, latency]

    def rows(self) -> list[dict[str, Any]]:
        """[{t, requests, mean_ms, max_ms}], t the middle of each bucket."""
        return [{"t": round((i + 0.5) * self.width, 3), "requests": int(count),
                 "mean_ms": round(total / count * 1000, 3), "max_ms": round(top * 1000, 3)}
                for i, (count, total, top) in sorted(self.buckets.items())]


def _recording_user(url: str, log: BySend) -> type[load.User]:
    """twincorn load's user for one request to `url`, noting when it was
    sent and answered (the open model runs one task per arrival)."""

    class Recorded(load.User):
        host = url

        @load.task
        async def request(self) -> None:
            sent = time.monotonic()
            response = await self.client.get(url, headers=_CLOSE_HEADERS)
            if response.ok:
                log.add(sent, time.monotonic())

    return Recorded


def measure_open(url: str, rate: float, seconds: float, drain: float) -> dict[str, Any]:
    """`rate` requests a second for `seconds`, then up to `drain` seconds for
    the answers still owed (so that the backlog's latency is measured too)."""
    max_in_flight = 4096
    log = BySend()
    results = _run(
        None, user_classes=[_recording_user(url, log)], rate=rate, run_time=seconds,
        max_in_flight=max_in_flight, timeout=120.0, stop_timeout=drain,
    )
    summary = results.to_dict()
    run = _step(summary)
    run["rate"] = rate
    run["rate_seconds"] = seconds
    run["by_send"] = log.rows()
    uncorrected = summary.get("latency_uncorrected_ms") or summary["latency_ms"]
    run["p50_uncorrected_ms"] = uncorrected["p50"]
    run["p99_uncorrected_ms"] = uncorrected["p99"]
    run["max_in_flight"] = max_in_flight
    unfinished = summary.get("unfinished") or {}
    run["unfinished"] = unfinished.get("requests", 0)
    run["unfinished_oldest_s"] = unfinished.get("oldest_s", 0.0)
    return run
