"""One load run: its state, its clock, its statistics, its subscribers.

    run = LoadRun(plan, scenario)
    run.subscribe(print)          # each second: the newest timeline row
    results = await run.run()     # until run-time, stop-after, or run.stop()

The run picks a driver for its model and scenario (the lean loop of
fastpath.py for a bare URL, drivers.py for User classes), starts it, and
once a second turns what the Collector gathered into a Window: absorbed
into the Stats (which makes the timeline row that subscribers get) or,
in a load process started by `--processes`, sent to the parent, which
merges the windows of all processes (processes.py).

States: ready -> spawning (closed model, while users start) -> running ->
stopping (no new requests; in-flight ones are given stop_timeout, or, for
--stop-after, the request timeout) -> stopped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, Literal

from twincorn.load.context import RunContext
from twincorn.load.drivers import ClosedUsers, Driver, OpenUsers
from twincorn.load.fastpath import LeanClosed, LeanOpen
from twincorn.load.plan import LoadPlan, PlanError
from twincorn.load.results import Results
from twincorn.load.scenario import Scenario, from_url
from twincorn.load.stats import Collector, Stats, Window
from twincorn.load.ws_fastpath import LeanWsClosed, LeanWsOpen

log = logging.getLogger("twincorn.load")

State = Literal["ready", "spawning", "running", "stopping", "stopped"]
Row = dict[str, Any]


def make_driver(context: RunContext, scenario: Scenario, plan: LoadPlan) -> Driver:
    """The lean loop for a bare URL (HTTP or a WebSocket echo); users and
    tasks for a scenario."""
    if scenario.ws_echo is not None:
        if plan.open_model:
            return LeanWsOpen(context, scenario.ws_echo, plan)
        return LeanWsClosed(context, scenario.ws_echo, plan)
    if scenario.builtin is not None:
        if plan.open_model:
            return LeanOpen(context, scenario.builtin, plan)
        return LeanClosed(context, scenario.builtin, plan)
    if plan.open_model:
        return OpenUsers(context, scenario, plan)
    return ClosedUsers(context, scenario, plan)


class LoadRun:
    """A run of a plan over a scenario (the interface the CLI and web UI use)."""

    def __init__(self, plan: LoadPlan, scenario: Scenario | None = None) -> None:
        plan.validate()
        if scenario is None:
            if plan.url is None:
                raise PlanError("give a URL to load, or a scenario (-f FILE)")
            scenario = from_url(plan.url, plan.method, plan.header, plan.body,
                            plan.message_size, plan.message_text)
        if scenario.builtin is None and not (
            plan.host or plan.url or all(c.host for c in scenario.user_classes)
        ):
            raise PlanError(
                "no host: give a URL, -H/--host, or a host attribute on every User class"
            )
        self.plan = plan
        self.scenario = scenario
        self.state: State = "ready"
        self.stats = Stats(plan.open_model)
        self.started_at = 0.0  # unix time of the start
        self.stopped_by = ""
        self.duration = 0.0  # once stopped
        self.processes: list[dict[str, Any]] = []
        self.start_at: float | None = None  # time.monotonic() to start at (load processes)
        self.sink: Callable[[Window, bool], None] | None = None  # load processes: to the parent
        self._subscribers: list[Callable[[Row], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._t0 = 0.0

    # -- the interface -----------------------------------------------------------

    def subscribe(self, callback: Callable[[Row], None]) -> Callable[[], None]:
        """Call `callback(row)` with each new timeline row (once a second);
        returns a function that unsubscribes."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def stop(self, reason: str = "stop()") -> None:
        """Stop the run (from any thread); `run()` then returns the results."""
        if not self.stopped_by:
            self.stopped_by = reason
        loop, event = self._loop, self._stop_event
        if loop is None or event is None:
            return  # not started: run() sees stopped_by and returns at once
        try:
            same = asyncio.get_running_loop() is loop
        except RuntimeError:
            same = False
        if same:
            event.set()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    def reset_stats(self) -> None:
        """Locust's "Reset stats": the totals (requests, percentiles, failures)
        count again from now, the run going on; the timeline is kept. Call
        it on the run's loop (the web UI does)."""
        self.stats = self.stats.restarted()

    def snapshot(self) -> dict[str, Any]:
        """The results so far, in the JSON schema (timeline included)."""
        return self.results().to_dict()

    def results(self) -> Results:
        stats = self.stats
        duration = (self.duration if self.state == "stopped" else stats.elapsed) - stats.origin
        return Results(
            model=self.plan.model,
            duration_s=round(duration, 6),
            total=stats.total,
            tallies=list(stats.tallies.values()),
            timeline=stats.timeline,
            errors=list(stats.errors.values()),
            exceptions=list(stats.exceptions.values()),
            dropped=stats.dropped,
            tasks=stats.tasks,
            unfinished=stats.unfinished,
            unfinished_oldest=stats.unfinished_oldest,
            started_at=self.started_at,
            stopped_by=self.stopped_by if self.state == "stopped" else "",
            plan=dataclasses.asdict(self.plan),
            processes=self.processes,
            state=self.state,
        )

    async def run(self) -> Results:
        if self.state != "ready":
            raise RuntimeError("a LoadRun runs once; make a new one")
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        if self.stopped_by:
            self._stop_event.set()
        try:
            if self.plan.processes > 1:
                from twincorn.load.processes import run_children

                await run_children(self, self._stop_event)
            else:
                await self._run_here(self._stop_event)
        finally:
            self.state = "stopped"
        return self.results()

    # -- for processes.py -----------------------------------------------------------

    def deliver(self, window: Window, final: bool = False) -> None:
        """A window for the statistics (or, in a load process, for the parent)."""
        if self.sink is not None:
            self.sink(window, final)
            return
        row = self.stats.absorb(window)
        if row is None:
            return
        for callback in list(self._subscribers):
            try:
                callback(row)
            except Exception:
                log.exception("a load run subscriber failed")

    def begin(self, t0: float) -> None:
        self._t0 = t0
        self.started_at = time.time() - (time.monotonic() - t0)

    # -- one process ---------------------------------------------------------------

    async def _run_here(self, stop_event: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        plan = self.plan
        collector = Collector(plan.open_model)
        context = RunContext(
            collector,
            connect_timeout=plan.connect_timeout,
            timeout=plan.timeout,
            # With a warm-up, --stop-after counts from its end (below).
            budget=plan.stop_after if plan.stop_after and not plan.warmup else sys.maxsize,
            on_exhausted=lambda: self.stop("stop-after"),
            tls=plan.client_tls(),
        )
        driver = make_driver(context, self.scenario, plan)
        if self.start_at is not None:  # a load process: the parent's common start
            await asyncio.sleep(max(0.0, self.start_at - time.monotonic()))
        load_start = time.monotonic() if self.start_at is None else self.start_at
        t0 = load_start + plan.warmup  # the measured part starts here
        self.begin(t0)
        if stop_event.is_set():
            self.duration = 0.0
            return
        driver.start()
        self.state = "spawning" if driver.spawning() else "running"
        stopper = (
            loop.call_later(plan.run_time, self.stop, "run-time") if plan.run_time else None
        )
        if plan.warmup > 0:
            await _warm_up(stop_event, t0, collector)
            if plan.stop_after:
                # The requests in flight now will be counted when they end:
                # they are part of the N, so that exactly N are measured.
                context.budget = plan.stop_after - driver.in_flight()
                if context.budget <= 0:
                    self.stop("stop-after")
        clock = _SecondClock(loop, t0, collector, driver, self)
        try:
            await stop_event.wait()
        finally:
            self.state = "stopping"
            clock.cancel()
            if stopper is not None:
                stopper.cancel()
            context.stopping = True  # no new requests; those in flight may finish
            if self.stopped_by == "stop-after":
                await driver.drain(plan.timeout + 1)
            elif plan.stop_timeout > 0:
                await driver.drain(plan.stop_timeout)
            end = max(0.0, time.monotonic() - t0)
            users, in_flight = driver.users(), driver.in_flight()
            unfinished = driver.unfinished()
            await driver.stop()
            self.duration = end
            window = collector.rotate(clock.index + 1, end, end - clock.last_end, users, in_flight)
            window.unfinished = len(unfinished)
            window.unfinished_oldest = max(unfinished, default=0.0)
            self.deliver(window, final=True)


async def _warm_up(stop_event: asyncio.Event, until: float, collector: Collector) -> None:
    """Load without counting until `until` (or a stop): what was gathered
    meanwhile is dropped."""
    try:
        async with asyncio.timeout(max(0.0, until - time.monotonic())):
            await stop_event.wait()
    except TimeoutError:
        pass
    collector.rotate(0, 0.0, 0.0, 0, 0)  # discarded


class _SecondClock:
    """Closes a window at every whole second since the start."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        t0: float,
        collector: Collector,
        driver: Driver,
        run: LoadRun,
    ) -> None:
        self.loop = loop
        self.t0 = t0
        self.collector = collector
        self.driver = driver
        self.run = run
        self.index = 0
        self.last_end = 0.0
        self._timer = self._schedule()

    def _schedule(self) -> asyncio.TimerHandle:
        delay = self.t0 + self.index + 1 - time.monotonic()
        return self.loop.call_later(max(0.0, delay), self._tick)

    def _tick(self) -> None:
        self.index += 1
        end = time.monotonic() - self.t0
        driver = self.driver
        window = self.collector.rotate(
            self.index, end, end - self.last_end, driver.users(), driver.in_flight()
        )
        self.last_end = end
        if self.run.state == "spawning" and not driver.spawning():
            self.run.state = "running"
        self.run.deliver(window)
        self._timer = self._schedule()

    def cancel(self) -> None:
        self._timer.cancel()
