"""The schedules: the open model's clock, and the closed model's ramp.

The open model's clock: arrivals on a fixed schedule, whatever happens.

Arrival k is due at start + k / rate. A timer wakes up at the next due time
(at least a millisecond later: the loop's timers have millisecond grain,
and at high rates one wake-up dispatches a batch), and hands every arrival
now due to `dispatch(scheduled)`, with the time it *should* have gone out.

That scheduled time is what latency is measured from in the open model.
Were it measured from the moment a request actually goes out, a server that
stalls would hold back the requests queued behind the stall and none of
them would show the wait: the tester would have coordinated with the
server and omitted the bad samples (Gil Tene's "coordinated omission"). The
clock never waits for the server, so every arrival that the stall delays
carries the delay in its latency. The timer's own slack (up to a
millisecond or so) is counted too: it is part of the tester's lateness.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import perf_counter

_MIN_SLEEP = 0.001


class ArrivalClock:
    """Calls `dispatch(scheduled)` `rate` times per second, from `start()`."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, rate: float, dispatch: Callable[[float], None]
    ) -> None:
        if rate <= 0:
            raise ValueError("the arrival rate must be more than 0")
        self.loop = loop
        self.rate = rate
        self.dispatch = dispatch
        self.start_at = 0.0  # perf_counter() of arrival 0
        self.issued = 0
        self._timer: asyncio.TimerHandle | None = None
        self._running = False

    def start(self, at: float | None = None) -> None:
        self.start_at = perf_counter() if at is None else at
        self._running = True
        self._tick()

    def stop(self) -> None:
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        if not self._running:
            return
        now = perf_counter()
        start, rate = self.start_at, self.rate
        due = int((now - start) * rate) + 1  # arrivals 0 .. due-1 are due by now
        dispatch = self.dispatch
        while self.issued < due and self._running:
            dispatch(start + self.issued / rate)
            self.issued += 1
        if self._running:
            wait = start + self.issued / rate - perf_counter()
            self._timer = self.loop.call_later(max(wait, _MIN_SLEEP), self._tick)


async def ramp(
    count: int,
    rate: float,
    start_one: Callable[[], None],
    stopping: Callable[[], bool],
) -> None:
    """The closed model's spawning: start `count` users, user k at k / rate
    seconds (all at once if rate is 0), unless the run is stopping."""
    loop = asyncio.get_running_loop()
    begin = loop.time()
    for k in range(count):
        if rate > 0:
            delay = begin + k / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        if stopping():
            return
        start_one()
