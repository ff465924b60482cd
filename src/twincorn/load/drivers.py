"""The two load models, for a scenario's User classes.

Closed model (Locust's): `users` virtual users are started at `spawn_rate`
per second; each runs on_start, then loops: pick a task, run it, wait its
think time. The load the server sees depends on how fast it answers: a
slow server gets fewer requests, and the tester waits along with it.

Open model (wrk2's, k6's): arrivals come at `rate` per second on a fixed
schedule (arrivals.py). Each runs one task on an idle user from a pool,
which grows as needed up to `max_in_flight` users; arrivals beyond that
wait (up to `max_queue`, then they are dropped and counted as failures).
Think time is not used: the schedule decides when users act. The task's
first request is measured from the arrival's scheduled time (its
"corrected" latency) as well as from its actual send.

Both give the runner the same hooks: start, users, in_flight, spawning,
drain, stop (the lean drivers of fastpath.py have them too).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Coroutine
from time import perf_counter
from typing import Any, Protocol

from twincorn.load.arrivals import ArrivalClock, ramp
from twincorn.load.client import HttpClient
from twincorn.load.connection import DROPPED
from twincorn.load.context import RunContext, RunExhausted, StopUser, WebSocketError
from twincorn.load.plan import LoadPlan
from twincorn.load.scenario import Scenario
from twincorn.load.users import User, interleave, task_name

_ON_STOP_SECONDS = 2.0  # the most on_stop handlers get, all together, at the end


class Driver(Protocol):
    """What the runner needs from a load model."""

    def start(self) -> None: ...
    def users(self) -> int: ...
    def in_flight(self) -> int: ...
    def spawning(self) -> bool: ...
    def unfinished(self) -> list[float]: ...
    async def drain(self, timeout: float) -> None: ...
    async def stop(self) -> None: ...


class UserDriver:
    """What both models share: making users, running tasks, stopping."""

    def __init__(self, context: RunContext, scenario: Scenario, plan: LoadPlan) -> None:
        self.context = context
        self.scenario = scenario
        self.plan = plan
        self.loop = asyncio.get_running_loop()
        self.classes = interleave(scenario.user_classes)
        self.tasks: set[asyncio.Task[None]] = set()
        self.all_users: list[User] = []
        self.stopping = False

    def make_user(self, cls: type[User]) -> User:
        host = self.plan.host or cls.host or self.plan.url
        user = cls(HttpClient(host, self.context))
        self.all_users.append(user)
        return user

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = self.loop.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def run_task(self, user: User) -> bool:
        """Run one task; False if the user stops (StopUser)."""
        func = user.pick_task()
        user.task_started = time.monotonic()
        collector = self.context.collector
        collector.tasks += 1
        try:
            await func(user)
        except StopUser:
            return False
        except WebSocketError:
            pass  # counted already, as a failure of its row (ws_client.py)
        except Exception as exc:
            collector.exception(task_name(type(user), func), exc)
        finally:
            if user.client.dropped_requests:
                self.not_awaited(user, task_name(type(user), func))
        return True

    async def start_user(self, user: User) -> bool:
        """on_start; False if the user stops (StopUser)."""
        where = f"{type(user).__name__}.on_start"
        try:
            await user.on_start()
        except StopUser:
            return False
        except WebSocketError:
            pass  # counted already, as a failure of its row (ws_client.py)
        except Exception as exc:
            self.context.collector.exception(where, exc)
        finally:
            if user.client.dropped_requests:
                self.not_awaited(user, where)
        return True

    def not_awaited(self, user: User, where: str) -> None:
        """Requests `where` made and dropped unsent: counted as its exception."""
        dropped = user.client.take_not_awaited()
        if dropped is not None:
            self.context.collector.exception(where, dropped)

    def in_flight(self) -> int:
        return self.context.in_flight

    def spawning(self) -> bool:
        return False

    def unfinished(self) -> list[float]:
        """How long each request in flight has waited, in seconds."""
        now = perf_counter()
        return [now - sent for user in self.all_users for sent in user.client.in_flight_since()]

    async def drain(self, timeout: float) -> None:
        """Wait (at most `timeout`) until no request is in flight."""
        deadline = self.loop.time() + timeout
        while self.context.in_flight and self.loop.time() < deadline:
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        """Cancel every user, run the on_stop handlers, close connections."""
        self.stopping = True
        self.context.stopping = True
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        # on_stop may send requests (a logout, say); they are counted.
        self.context.stopping = False
        handlers = [u for u in self.all_users if type(u).on_stop is not User.on_stop]
        if handlers:
            results = asyncio.gather(*(u.on_stop() for u in handlers), return_exceptions=True)
            try:
                async with asyncio.timeout(_ON_STOP_SECONDS):
                    for outcome in await results:
                        if isinstance(outcome, Exception) and not isinstance(
                            outcome, WebSocketError
                        ):
                            self.context.collector.exception("on_stop", outcome)
            except TimeoutError:
                pass
            for user in handlers:
                self.not_awaited(user, f"{type(user).__name__}.on_stop")
        self.context.stopping = True
        # WebSockets left open get a close frame (1000), and their servers a
        # moment to answer (ws_client.py bounds it), all at once.
        await asyncio.gather(*(u.client.close_websockets() for u in self.all_users))
        for user in self.all_users:
            user.client.close()


class ClosedUsers(UserDriver):
    """N users, started at spawn_rate per second, each looping on its tasks."""

    def __init__(self, context: RunContext, scenario: Scenario, plan: LoadPlan) -> None:
        super().__init__(context, scenario, plan)
        self.live = 0
        self._ramp: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.plan.spawn_rate <= 0:  # all at once, now: the run is not spawning (runner.py)
            for _ in range(self.plan.users):
                self._start_user()
            return
        self._ramp = self.spawn(self._spawn_users())

    def users(self) -> int:
        return self.live

    def spawning(self) -> bool:
        return self._ramp is not None and not self._ramp.done()

    async def _spawn_users(self) -> None:
        await ramp(self.plan.users, self.plan.spawn_rate, self._start_user,
                   lambda: self.stopping)

    def _start_user(self) -> None:
        self.live += 1
        self.spawn(self._live(self.make_user(next(self.classes))))

    async def _live(self, user: User) -> None:
        try:
            if not await self.start_user(user):
                return
            while not self.stopping:
                if not await self.run_task(user):
                    return
                # Always yield once, even without think time, so that a task
                # that never awaits cannot take the loop for itself.
                await asyncio.sleep(max(0.0, user.wait_time()))
        except RunExhausted:
            pass
        finally:
            self.live -= 1


class OpenUsers(UserDriver):
    """Arrivals at `rate`, each running one task on an idle user of a pool."""

    def __init__(self, context: RunContext, scenario: Scenario, plan: LoadPlan) -> None:
        super().__init__(context, scenario, plan)
        self.idle: dict[type[User], list[User]] = {c: [] for c in scenario.user_classes}
        self.pool = 0  # users made (idle or busy)
        self.waiting: deque[float] = deque()
        self.clock = ArrivalClock(self.loop, plan.rate, self.arrive)
        self.dropped_tally = context.collector.tally("", "(dropped arrivals)")
        self._dropped_message = (
            f"dropped: {plan.max_in_flight} user{'' if plan.max_in_flight == 1 else 's'} "
            f"busy (--max-in-flight) "
            f"and {plan.max_queue} arrivals waiting (--max-queue)"
        )

    def start(self) -> None:
        self.clock.start()

    def users(self) -> int:
        return self.pool

    def in_flight(self) -> int:
        return self.context.in_flight + len(self.waiting)

    async def stop(self) -> None:
        self.clock.stop()
        self.waiting.clear()
        await super().stop()

    def arrive(self, scheduled: float) -> None:
        if self.stopping or self.context.stopping:
            return
        cls = next(self.classes)
        idle = self.idle[cls]
        if idle:
            self.spawn(self._serve(idle.pop(), scheduled, fresh=False))
        elif self.pool < self.plan.max_in_flight:
            self.pool += 1
            self.spawn(self._serve(self.make_user(cls), scheduled, fresh=True))
        elif len(self.waiting) < self.plan.max_queue:
            self.waiting.append(scheduled)
        else:
            self.context.collector.dropped += 1
            self.context.collector.no_response(self.dropped_tally, DROPPED, self._dropped_message)

    async def _serve(self, user: User, scheduled: float, fresh: bool) -> None:
        """Run the arrival's task, then any waiting arrivals', then go idle."""
        try:
            if fresh and not await self.start_user(user):
                self.pool -= 1
                return
            while True:
                user.client.scheduled = scheduled
                keep = await self.run_task(user)
                user.client.scheduled = 0.0
                if not keep:
                    self.pool -= 1  # StopUser: this one leaves the pool
                    return
                if not self.waiting or self.stopping:
                    break
                scheduled = self.waiting.popleft()
            self.idle[type(user)].append(user)
        except RunExhausted:
            pass
