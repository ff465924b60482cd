"""Running the lab's matrix: each configuration, its ramp of users, the
fixed-rate runs, with progress on the terminal.

A step is one closed-model run of `twincorn load` (through its Python API)
against a server that stays up for the whole ramp: N users, each sending
its next request as soon as the last one is answered. The first seconds
of a step are a warm-up — the queue of a saturated server takes about one
latency to fill — and only what follows is measured.

The WebSocket part (ws_measure.py) then holds a growing number of idle
sockets on one server process at a time, reading its memory and timing
broadcasts to them.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twincorn import __version__
from twincorn.lab import ws_measure
from twincorn.lab.analysis import knee
from twincorn.lab.measure import measure_closed, measure_open
from twincorn.lab.servers import running
from twincorn.lab.setups import APPS, Setup, peer_setups, twincorn_setups, websocket_setups
from twincorn.load.plan import usable_cpus

#: A blocking setup's ramp stops at this many users per slot: by then three
#: users in four wait in its queue, and a further step only waits longer.
QUEUE_FACTOR = 4
#: The WebSocket part's rungs: idle sockets held at once (the full run's,
#: and --quick --websockets's).
WS_LADDER = (100, 1_000, 5_000)
WS_LADDER_QUICK = (100, 1_000)
#: twincorn's connection limit in the WebSocket part: the top rung and this
#: many more (the sender, the start-up check).
WS_CONNECTIONS_SPARE = 100


@dataclass
class LabPlan:
    """What to run, and how long each part lasts."""

    setups: list[Setup]
    max_users: int = 64
    step_seconds: float = 3.0
    service_time: float = 1.0
    #: Open model: rates as multiples of the model's ceiling (blocking
    #: setups) and as absolute rates for async ones (see rates()).
    rate_factors: tuple[float, ...] = (1.5,)
    async_rates: tuple[float, ...] = (64.0,)
    rate_seconds: float = 5.0
    hello_users: tuple[int, ...] = (16,)
    hello_seconds: float = 2.0
    #: The WebSocket part: its servers, and the idle sockets each holds at
    #: each rung (none: the part is left out).
    ws_setups: list[Setup] = field(default_factory=list)
    ws_sockets: tuple[int, ...] = ()
    quick: bool = False
    say: Callable[[str], None] = field(default=lambda text: print(text, file=sys.stderr))

    @classmethod
    def quick_plan(cls, peers: bool = False, websockets: bool | None = None) -> LabPlan:
        """--quick: the WebSocket part only when asked for."""
        plan = cls(twincorn_setups() + (peer_setups() if peers else []), quick=True,
                   max_users=64, step_seconds=2.0, rate_seconds=4.0, async_rates=())
        if websockets:
            plan.with_websockets(WS_LADDER_QUICK, peers)
        return plan

    @classmethod
    def full_plan(cls, peers: bool = False, websockets: bool | None = None) -> LabPlan:
        """The full run: the WebSocket part unless told otherwise."""
        plan = cls(twincorn_setups() + (peer_setups() if peers else []), max_users=256,
                   step_seconds=5.0, rate_factors=(0.5, 1.0, 1.5),
                   async_rates=(16.0, 64.0, 256.0), rate_seconds=8.0,
                   hello_users=(1, 8, 32, 128), hello_seconds=3.0)
        if websockets is None or websockets:
            plan.with_websockets(WS_LADDER, peers)
        return plan

    def with_websockets(self, ladder: tuple[int, ...], peers: bool = False) -> None:
        """Add the WebSocket part, climbing `ladder`."""
        self.ws_sockets = ladder
        self.ws_setups = websocket_setups(max(ladder) + WS_CONNECTIONS_SPARE, peers)

    def users(self, setup: Setup) -> list[int]:
        """The ramp's steps for `setup`: one ladder for every setup, so that
        their lines share their points on the charts. The users double from
        1 up to max_users (quadruple with --quick), plus, for each blocking
        setup, its number of slots (where its knee should be), twice and four
        times that; a blocking setup stops at QUEUE_FACTOR x its slots, where
        its queue is already long."""
        ladder = {1}
        n = 1
        while n < self.max_users:
            n = min(n * 4 if self.quick else n * 2, self.max_users)
            ladder.add(n)
        for other in self.setups:
            if other.slots is not None:  # its knee, and a queue as long again
                ladder |= {other.slots, 2 * other.slots, 4 * other.slots}
        top = self.max_users if setup.slots is None else min(self.max_users,
                                                            QUEUE_FACTOR * setup.slots)
        return sorted(u for u in ladder if u <= top)

    @staticmethod
    def leaves_a_queue(setup: Setup, users: int) -> bool:
        """Does a step end with requests still queued in the server? Their
        clients gone, they would be served during the next step (a blocking
        server cannot tell a client that hung up): the next step needs a
        new server."""
        return setup.slots is not None and users > setup.slots

    def warmup(self, setup: Setup, users: int) -> float:
        """About one round of the queue: the model's latency at this step."""
        return min(setup.predicted_latency(users, self.service_time), 8.0)

    def rates(self, setup: Setup) -> list[float]:
        """The fixed rates `setup` runs at. A blocking setup: multiples of
        its model's ceiling (1.5x: its queue grows by half its ceiling a
        second). An async setup: `async_rates`, and also the highest rate of
        each blocking setup in the plan, so that the report can draw them
        side by side at the same arrival rate (alone, `async_rates` only)."""
        ceiling = setup.ceiling(self.service_time)
        if ceiling is not None:
            return [factor * ceiling for factor in self.rate_factors]
        shared = {max(self.rates(other)) for other in self.setups
                  if other.slots is not None and self.rate_factors}
        return sorted(set(self.async_rates) | shared)

    def estimate(self) -> float:
        """Seconds the whole plan should take (for the progress line)."""
        total = 0.0
        start = 1.5  # starting a server
        for setup in self.setups:
            total += start
            for users in self.users(setup):
                total += self.warmup(setup, users) + self.step_seconds
                total += start if self.leaves_a_queue(setup, users) else 0.0
            rates = len(self.rates(setup))
            restarts = rates if setup.slots is not None else 0  # async: the same server
            total += restarts * start + rates * 1.5 * self.rate_seconds
        per_hello = 2.0 + len(self.hello_users) * (self.hello_seconds + 0.5)
        total += len(hello_setups(self)) * per_hello
        if self.ws_sockets:
            total += len(self.ws_setups) * (start + ws_measure.estimate(self.ws_sockets))
        return total


def hello_setups(plan: LabPlan) -> list[Setup]:
    """The hello apps run on twincorn's one-call-per-worker WSGI and its ASGI setup."""
    if not plan.hello_users:
        return []
    return [s for s in plan.setups if not s.peer and s.threads == 1]


class Progress:
    """`[3/14] twincorn -w 4 (WSGI, blocking) · slow · 16 users · ~40 s left`."""

    def __init__(self, plan: LabPlan) -> None:
        self.plan = plan
        self.total = sum(len(plan.users(s)) + len(plan.rates(s)) for s in plan.setups)
        self.total += len(hello_setups(plan))
        self.total += len(plan.ws_setups) * len(plan.ws_sockets)
        self.done = 0
        self.started = time.monotonic()
        self.estimate = plan.estimate()

    def step(self, setup: Setup, what: str) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.started
        left = max(0.0, self.estimate - elapsed)
        self.plan.say(f"[{self.done}/{self.total}] {setup.title} · {what} · ~{left:.0f} s left")


def run_plan(plan: LabPlan) -> dict[str, Any]:
    """Run every part of the plan; the results (as results.json holds them)."""
    started = time.monotonic()
    progress = Progress(plan)
    count = len(plan.setups) + len(plan.ws_setups)
    plan.say(f"twincorn lab: {count} configuration{'' if count == 1 else 's'}, about "
             f"{progress.estimate:.0f} s; Ctrl-C stops it (servers included)")
    configurations = []
    for setup in plan.setups:
        configurations.append(_ramp(plan, setup, progress))
    hello = [_hello(plan, setup, progress) for setup in hello_setups(plan)]
    websockets = _websockets(plan, progress)
    results = {
        "version": 1,
        "quick": plan.quick,
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - started, 1),
        "service_time_s": plan.service_time,
        "machine": {"python": platform.python_version(), "cpus": usable_cpus(),
                    "platform": platform.platform(), "twincorn": __version__},
        "configurations": configurations,
        "hello": hello,
    }
    if websockets is not None:
        results["websockets"] = websockets
    return results


def _ramp(plan: LabPlan, setup: Setup, progress: Progress) -> dict[str, Any]:
    service = plan.service_time
    steps = []
    open_runs = []
    with contextlib.ExitStack() as stack:
        server = None
        for users in plan.users(setup):
            progress.step(setup, f"slow app · {users} user{'s' if users != 1 else ''}")
            if server is None:
                server = stack.enter_context(running(setup, "slow", service))
            step = measure_closed(server.url, users, plan.warmup(setup, users),
                                  plan.step_seconds, server_pgid=server.process.pid)
            step["predicted_rps"] = setup.predicted_rps(users, service)
            step["predicted_latency_ms"] = setup.predicted_latency(users, service) * 1000
            steps.append(step)
            if plan.leaves_a_queue(setup, users):
                stack.close()  # a new server for the next step
                server = None
        for rate in plan.rates(setup):
            progress.step(setup, f"slow app · fixed rate {rate:g}/s")
            if server is None:
                server = stack.enter_context(running(setup, "slow", service))
            run = measure_open(server.url, rate, plan.rate_seconds, drain=plan.rate_seconds)
            # Kept up: answers came about as fast as one service time.
            run["kept_up"] = run["p99_ms"] <= 1500 * service
            run["model_ceiling_rps"] = setup.ceiling(service)
            open_runs.append(run)
            if setup.slots is not None:  # a blocking server may be left a queue
                stack.close()
                server = None
    return {
        "key": setup.key,
        "title": setup.title,
        "server": setup.server,
        "interface": setup.interface,
        "app": setup.app("slow"),
        "command": setup.shown_command("slow"),
        "workers": setup.workers,
        "threads": setup.threads,
        "concurrency": setup.slots,
        "peer": setup.peer,
        "model_ceiling_rps": setup.ceiling(service),
        "knee": knee(steps),
        "steps": steps,
        "open": open_runs,
    }


def _hello(plan: LabPlan, setup: Setup, progress: Progress) -> dict[str, Any]:
    steps = []
    progress.step(setup, "hello app")
    with running(setup, "hello", plan.service_time) as server:
        for users in plan.hello_users:
            steps.append(measure_closed(server.url, users, 0.5, plan.hello_seconds,
                                        server_pgid=server.process.pid))
    return {"key": setup.key, "title": setup.title, "app": setup.app("hello"),
            "command": setup.shown_command("hello"), "workers": setup.workers,
            "steps": steps}



def _websockets(plan: LabPlan, progress: Progress) -> dict[str, Any] | None:
    """The WebSocket part, each server in turn (None: not in the plan)."""
    if not (plan.ws_sockets and plan.ws_setups):
        return None
    ladder, capped = ws_measure.fit_ladder(plan.ws_sockets, ws_measure.descriptor_limit())
    if capped:
        plan.say(f"twincorn lab: {capped}")
    configurations = []
    for setup in plan.ws_setups:
        def rung(sockets: int, setup: Setup = setup) -> None:
            progress.step(setup, f"WebSockets · {sockets:,} idle sockets")

        with running(setup, "chat", plan.service_time) as server:
            held = ws_measure.measure_holding(server.port, server.process.pid, ladder, rung)
        configurations.append({
            "key": setup.key, "title": setup.title, "server": setup.server,
            "software": f"{setup.server} {_version(setup.server)}",
            "command": setup.shown_command("chat"), "peer": setup.peer, **held,
        })
    return {"asked": list(plan.ws_sockets), "sockets": ladder, "capped": capped,
            "app": APPS[("asgi", "chat")], "message_bytes": ws_measure.MESSAGE_BYTES,
            "broadcast_timeout_s": ws_measure.BROADCAST_SECONDS,
            "configurations": configurations}


def _version(distribution: str) -> str:
    if distribution == "twincorn":
        return __version__
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"
