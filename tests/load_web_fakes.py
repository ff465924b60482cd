"""Fakes for the web UI and HTML report tests: results in the JSON schema
of docs/load.md, written out by hand, and a load run that makes up its
requests second by second."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

from twincorn.load.plan import LoadPlan
from twincorn.load.results import Results
from twincorn.load.stats import Collector, Stats

LATENCY_KEYS = ("min", "p50", "p90", "p95", "p99", "p999", "max", "mean")


def latency(base: float, spread: float = 1.0) -> dict[str, float]:
    return {
        "min": base * 0.5, "p50": base, "p90": base * (1 + 0.3 * spread),
        "p95": base * (1 + 0.5 * spread), "p99": base * (1 + spread),
        "p999": base * (1 + 2 * spread), "max": base * (1 + 3 * spread), "mean": base * 1.1,
    }


def timeline_row(t: int, users: int, rps: float, fails: float) -> dict[str, Any]:
    wave = 1 + 0.2 * math.sin(t / 3)
    return {
        "t": t, "rps": rps * wave, "failures_per_s": fails, "p50_ms": 12.5 * wave,
        "p95_ms": 30.0 * wave, "p99_ms": 48.0 * wave, "users": users, "in_flight": users // 2,
    }


def fake_results(seconds: int = 12, open_model: bool = False) -> dict[str, Any]:
    """A finished run of `seconds` seconds over two request names."""
    timeline = [timeline_row(t, min(10, t + 1), 400.0, 2.0 if t % 4 == 0 else 0.0)
                for t in range(1, seconds + 1)]
    requests = int(sum(row["rps"] for row in timeline))
    failures = int(sum(row["failures_per_s"] for row in timeline))
    results: dict[str, Any] = {
        "requests": requests, "failures": failures, "duration_s": float(seconds),
        "rps": requests / seconds, "latency_ms": latency(12.5),
        "by_name": {
            "/": {"method": "GET", "name": "/", "requests": requests - 100, "failures": 0,
                  "rps": (requests - 100) / seconds, "latency_ms": latency(11.0),
                  "avg_size": 13.0},
            "/items": {"method": "POST", "name": "/items", "requests": 100,
                       "failures": failures, "rps": 100 / seconds,
                       "latency_ms": latency(40.0, 2.0), "avg_size": 512.0},
        },
        "timeline": timeline,
        "errors": [{"name": "/items", "method": "POST", "kind": "status",
                    "message": "HTTP 500 <Internal Server Error>", "count": failures,
                    "first_seen": "2026-11-24T10:00:01.250+00:00",
                    "last_seen": "2026-11-24T10:00:11.500+00:00"}],
        "model": "open" if open_model else "closed",
        "started_at": "2026-11-24T10:00:00.000+00:00",
        "plan": {"url": "http://127.0.0.1:8000/", "users": 10, "rate": 400.0 if open_model else 0},
    }
    if open_model:
        results["latency_uncorrected_ms"] = latency(9.0, 0.5)
        for row in timeline:
            row["p99_uncorrected_ms"] = row["p99_ms"] * 0.6
    return results


class FakeRun:
    """A load run that makes up its requests, `tick` seconds per second,
    and counts them with the load tester's own statistics (stats.py,
    results.py), so that its snapshots have the exact schema."""

    def __init__(self, plan: LoadPlan, scenario: Any = None, tick: float = 0.1) -> None:
        self.plan = plan
        self.tick = tick
        self.state = "ready"
        self.stats = Stats(plan.open_model)
        self.callbacks: list[Callable[[dict[str, Any]], None]] = []
        self._stop = asyncio.Event()

    def subscribe(self, callback: Callable[[dict[str, Any]], None]) -> None:
        self.callbacks.append(callback)

    def stop(self) -> None:
        if self.state != "stopped":
            self.state = "stopping"
        self._stop.set()

    def one_second(self, index: int) -> dict[str, Any] | None:
        """Make up second `index`: 50 requests per user, 1 in 25 failing."""
        plan = self.plan
        ramp = plan.spawn_rate
        users = min(plan.users, int(index * ramp) if ramp > 0 else plan.users)
        collector = Collector(plan.open_model)
        tally = collector.tally("GET", "/")
        for n in range(50 * users):
            latency_us = 2000 + (n * 7919) % 10_000
            collector.record(tally, latency_us, 5, latency_us // 2)
            if n % 25 == 0:
                collector.failure(tally, "status", "HTTP 503")
        window = collector.rotate(index, float(index), 1.0, users, users // 2)
        return self.stats.absorb(window)

    async def run(self) -> dict[str, Any]:
        self.state = "spawning"
        index = 0
        while not self._stop.is_set():
            index += 1
            row = self.one_second(index)
            assert row is not None  # a whole second, never the last sliver
            if row["users"] >= self.plan.users:
                self.state = "running"
            for callback in self.callbacks:
                callback(row)
            if self.plan.run_time is not None and index >= self.plan.run_time:
                break
            try:
                await asyncio.wait_for(self._stop.wait(), self.tick)
            except TimeoutError:
                pass
        self.state = "stopped"
        return self.snapshot()

    def snapshot(self) -> dict[str, Any]:
        stats = self.stats
        return Results(
            model=self.plan.model, duration_s=stats.elapsed, total=stats.total,
            tallies=list(stats.tallies.values()), timeline=stats.timeline,
            errors=list(stats.errors.values()), exceptions=list(stats.exceptions.values()),
            started_at=1.7e9, plan={"url": self.plan.url, "users": self.plan.users},
            state=self.state,
        ).to_dict()


class ResettableRun(FakeRun):
    """A FakeRun with Locust's "reset stats" while it goes on."""

    def reset_stats(self) -> None:
        self.stats = Stats(self.plan.open_model)


def counted_results(seconds: int = 10, open_model: bool = False) -> dict[str, Any]:
    """The results of a finished FakeRun of `seconds` seconds."""
    plan = LoadPlan(url="http://127.0.0.1:9/", users=4, spawn_rate=1.0,
                    rate=200.0 if open_model else 0.0)
    run = FakeRun(plan)
    for index in range(1, seconds + 1):
        run.one_second(index)
    run.state = "stopped"
    return run.snapshot()
