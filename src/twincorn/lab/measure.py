"""One measurement of the lab, through twincorn load's Python API.

`measure_closed` is one step of a ramp: `users` closed-loop users with no
think time, all started at once; the first `warmup` seconds are not
counted (the load tester's `warmup` option: its statistics start after
it), then `seconds` are. `measure_open` is a fixed-rate run (open model),
which reports latency both from when each request should have been sent
and from when it was.

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

from typing import Any

from twincorn import load


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


def _run(url: str, **options: Any) -> load.Results:
    results = load.run(url, **options)
    if results.stopped_by == "interrupted":
        # The load tester takes Ctrl-C to end its run with the results so
        # far; the lab ends altogether (its servers are stopped on the way).
        raise KeyboardInterrupt
    return results


def measure_closed(url: str, users: int, warmup: float, seconds: float) -> dict[str, Any]:
    results = _run(
        url, users=users, spawn_rate=max(users, 1) * 10.0, run_time=warmup + seconds,
        warmup=warmup, timeout=120.0, stop_timeout=0.0, header=_CLOSE,
    )
    step = _step(results.to_dict())
    step["users"] = users
    step["warmup_s"] = warmup
    return step


def measure_open(url: str, rate: float, seconds: float, drain: float) -> dict[str, Any]:
    """`rate` requests a second for `seconds`, then up to `drain` seconds for
    the answers still owed (so that the backlog's latency is measured too)."""
    max_in_flight = 4096
    results = _run(
        url, rate=rate, run_time=seconds, max_in_flight=max_in_flight, timeout=120.0,
        stop_timeout=drain, header=_CLOSE,
    )
    summary = results.to_dict()
    run = _step(summary)
    run["rate"] = rate
    uncorrected = summary.get("latency_uncorrected_ms") or summary["latency_ms"]
    run["p50_uncorrected_ms"] = uncorrected["p50"]
    run["p99_uncorrected_ms"] = uncorrected["p99"]
    run["max_in_flight"] = max_in_flight
    unfinished = summary.get("unfinished") or {}
    run["unfinished"] = unfinished.get("requests", 0)
    run["unfinished_oldest_s"] = unfinished.get("oldest_s", 0.0)
    return run
