"""What the web UI controls: one load run at a time, and its live view.

`RunControl` starts a run from the page's form (the command line's plan
with the form's changes, web_form.py), stops it, resets it, and keeps the
run's results after it ends: the history lives here, on the server, so a
page that reloads loses nothing. Each second the run reports its newest
timeline row; RunControl turns it into one Server-Sent Events frame and
hands it to a `Broadcast`, which every open event stream reads. A frame is
made once, whatever the number of pages watching.

Frames are of two kinds: `snapshot` (everything, the whole timeline
included: the first frame of each stream, and after every change of
phase and every reset) and `tick` (the newest row and the tables as they
are now).

The phase (what the page's status shows) is RunControl's own, an Enum
moved only along TRANSITIONS:

    READY     -> STARTING            start()
    STARTING  -> SPAWNING, RUNNING   the run is under way (its users start)
    SPAWNING  -> RUNNING             all its users started
    STARTING, SPAWNING, RUNNING
              -> STOPPING            stop(), or the run ends itself (run time...)
              -> STOPPED             the run has ended (also from STOPPING)
    STOPPED   -> READY               reset(): its results forgotten
              -> STARTING            start() again

STARTING is set by start() itself, before the POST /api/start reply, so
that nobody (that reply, /api/state, a stream) can see READY once a start
has been accepted. The run then says how far it got (LoadRun.state); the
control catches up right after the run's first step (a single process
is under way by then: STARTING lasts no longer than that step) and at
each of its rows, and never goes back: a run that has not yet seen a
Stop it was asked for does not undo STOPPING.

Every view carries `epoch` (this RunControl's) and `seq` (the Broadcast's
number of the last frame it includes). The page and the replies race:
the reply of POST /api/start may come before or after the stream's
frames of the same moment, and a stream that connects sends a snapshot of
the moment it connected. The page shows a view only if it is not older
than the one it shows (same epoch, no smaller seq); a new epoch (the
process was started again) is taken as it comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import secrets
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from twincorn.load.plan import LoadPlan, PlanError
from twincorn.load.report_tables import (
    COORDINATED_OMISSION,
    ResultsData,
    exceptions_table,
    failures_table,
    figures,
    has_uncorrected,
    latency_table,
    number,
    stats_table,
)
from twincorn.load.web_form import apply_form, bare, form_values, missing_host

log = logging.getLogger("twincorn.load")


class LoadRunLike(Protocol):
    """What RunControl needs of a load run (twincorn.load's LoadRun)."""

    @property
    def state(self) -> str: ...

    async def run(self) -> Any: ...

    def stop(self) -> None: ...

    def snapshot(self) -> dict[str, Any]: ...

    def subscribe(self, callback: Callable[[dict[str, Any]], None]) -> object: ...


RunFactory = Callable[[LoadPlan, Any], LoadRunLike]


class Phase(enum.Enum):
    """Where the web UI's run is; the value is what views carry."""

    READY = "ready"  # no run: the start form
    STARTING = "starting"  # accepted; the run is getting under way (its processes start)
    SPAWNING = "spawning"  # closed model: users still starting at the ramp's rate
    RUNNING = "running"
    STOPPING = "stopping"  # no new requests; those in flight end
    STOPPED = "stopped"  # ended; its results kept until Reset or the next start


#: The moves a phase may make (the module doc draws them).
TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.READY: frozenset({Phase.STARTING}),
    Phase.STARTING: frozenset({Phase.SPAWNING, Phase.RUNNING, Phase.STOPPING, Phase.STOPPED}),
    Phase.SPAWNING: frozenset({Phase.RUNNING, Phase.STOPPING, Phase.STOPPED}),
    Phase.RUNNING: frozenset({Phase.STOPPING, Phase.STOPPED}),
    Phase.STOPPING: frozenset({Phase.STOPPED}),
    Phase.STOPPED: frozenset({Phase.READY, Phase.STARTING}),
}

#: A run's own states (LoadRun.state) that the control follows; "ready" is
#: STARTING's business and "stopped" is seen when run() returns.
RUN_PHASES = {"spawning": Phase.SPAWNING, "running": Phase.RUNNING,
              "stopping": Phase.STOPPING}

ACTIVE = frozenset({Phase.STARTING, Phase.SPAWNING, Phase.RUNNING, Phase.STOPPING})


class Busy(RuntimeError):
    """A run is going on: stop it first."""


class Broadcast:
    """The newest frames, for any number of readers that each keep their
    place by sequence number. A reader too far behind starts again from a
    snapshot."""

    def __init__(self, keep: int = 64) -> None:
        self.seq = 0
        self.closed = False
        self.recent: deque[tuple[int, bytes]] = deque(maxlen=keep)
        self.event = asyncio.Event()

    def publish(self, event: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """Send `data` as the next frame, with its sequence number (`seq`);
        returns what was sent."""
        self.seq += 1
        sent = {**data, "seq": self.seq}
        self.recent.append((self.seq, sse_frame(event, sent)))
        event_, self.event = self.event, asyncio.Event()
        event_.set()  # wakes every reader waiting on it
        return sent

    def since(self, seq: int) -> list[bytes] | None:
        """The frames after `seq`; None if some were dropped already."""
        if seq == self.seq:
            return []
        if not self.recent or self.recent[0][0] > seq + 1:
            return None
        return [frame for n, frame in self.recent if n > seq]

    def close(self) -> None:
        self.closed = True
        self.event.set()


def sse_frame(event: str, data: Mapping[str, Any]) -> bytes:
    """One Server-Sent Events message (one line of JSON: no newlines in it)."""
    text = json.dumps(data, separators=(",", ":"), default=str)
    return f"event: {event}\ndata: {text}\n\n".encode()


def empty_results() -> dict[str, Any]:
    return {"requests": 0, "failures": 0, "duration_s": 0.0, "rps": 0.0, "latency_ms": {},
            "by_name": {}, "timeline": [], "errors": []}


class RunControl:
    """One load run at a time, started and stopped from the web UI."""

    def __init__(self, plan: LoadPlan, scenario: Any, make_run: RunFactory | None = None) -> None:
        self.plan = plan
        self.scenario = scenario
        self.make_run = make_run or default_factory
        self.phase = Phase.READY
        self.run: LoadRunLike | None = None
        self.task: asyncio.Task[None] | None = None
        self.final: dict[str, Any] | None = None  # the results once the run ended
        self.error = ""  # why the last run ended early, if it failed
        self.run_id = 0
        self.epoch = secrets.token_hex(4)  # tells this process's views from another's
        self.hub = Broadcast()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = 0

    # -- what the page sees ------------------------------------------------

    @property
    def state(self) -> str:
        return self.phase.value

    @property
    def active(self) -> bool:
        """From start() until the run has ended and its results are kept."""
        return self.phase in ACTIVE

    def results(self) -> dict[str, Any]:
        if self.final is not None:
            return self.final
        if self.run is not None:
            return self.run.snapshot()
        return empty_results()

    def view(self, results: ResultsData, *, whole: bool) -> dict[str, Any]:
        """What a frame carries: the state, the header figures, the tables,
        and the whole timeline (`whole`) or only its newest row."""
        timeline = list(results.get("timeline") or ())
        last = timeline[-1] if timeline else {}
        requests = number(results.get("requests")) or 0.0
        failures = number(results.get("failures")) or 0.0
        active = self.active
        view: dict[str, Any] = {
            "epoch": self.epoch,
            "run": self.run_id,
            "state": self.state,
            "error": self.error,
            "can_reset": self.run is not None and reset_of(self.run) is not None,
            "header": {
                "users": number(last.get("users")) if active else 0,
                "rps": number(last.get("rps")) if active else number(results.get("rps")),
                "fail_percent": 100.0 * failures / requests if requests else 0.0,
            },
            "figures": figures(results),
            "stats": stats_table(results),
            "failures": failures_table(results),
            "exceptions": exceptions_table(results),
            "latency": latency_table(results),
            "omission": COORDINATED_OMISSION if has_uncorrected(results) else "",
        }
        if whole:
            view["timeline"] = timeline
            view["form"] = form_values(self.plan, self.scenario)
        else:
            view["row"] = last
        return view

    def current(self) -> dict[str, Any]:
        """Everything now, as of the last frame published (GET /api/state,
        and the first frame of a stream)."""
        return {**self.view(self.results(), whole=True), "seq": self.hub.seq}

    def snapshot_frame(self) -> bytes:
        return sse_frame("snapshot", self.current())

    def _publish_snapshot(self) -> dict[str, Any]:
        return self.hub.publish("snapshot", self.view(self.results(), whole=True))

    def _move(self, phase: Phase) -> dict[str, Any]:
        """Go to `phase` (a legal move, or a bug) and tell every page."""
        if phase not in TRANSITIONS[self.phase]:
            raise RuntimeError(f"web UI: no move from {self.phase.name} to {phase.name}")
        self.phase = phase
        return self._publish_snapshot()

    # -- what the page asks ------------------------------------------------

    def start(self, form: Mapping[str, str]) -> dict[str, Any]:
        """Start a run with the plan changed by the form's values (FormError
        if one does not fit); returns the view of the start (its `seq`)."""
        if Phase.STARTING not in TRANSITIONS[self.phase]:
            raise Busy("A run is going on: stop it first")
        plan = apply_form(self.plan, form, self.scenario)
        try:
            run = self.make_run(plan, self.scenario)
        except PlanError as exc:
            raise missing_host(exc, plan, self.scenario) from None
        self.loop = asyncio.get_running_loop()
        self.thread = threading.get_ident()
        self.plan, self.run, self.final, self.error = plan, run, None, ""
        self.run_id += 1
        run.subscribe(self._on_row)
        self.task = self.loop.create_task(self._drive(run))
        # Callbacks run in the order they were scheduled: this one runs right
        # after the task's first step, in which a single-process LoadRun
        # starts its users (runner.py), so the pages see it under way at once.
        self.loop.call_soon(self._follow, run)
        return self._move(Phase.STARTING)

    def stop(self) -> dict[str, Any]:
        """Stop the run (its results stay); returns the view of the stop."""
        if self.run is not None and Phase.STOPPING in TRANSITIONS[self.phase]:
            self.run.stop()
            return self._move(Phase.STOPPING)
        return self.current()

    def reset(self) -> dict[str, Any]:
        """Locust's "reset stats": the run's own reset while it goes on
        (where the run has one); once it ended, forget it and its results."""
        run = self.run
        if run is not None and self.active:
            reset = reset_of(run)
            if reset is None:
                raise Busy("This run cannot reset its statistics while it goes on: stop it first")
            reset()
            return self._publish_snapshot()
        self.run, self.final, self.error, self.task = None, None, "", None
        if self.phase is Phase.READY:
            return self._publish_snapshot()
        return self._move(Phase.READY)

    async def close(self, timeout: float = 10.0) -> None:
        """Stop the run, wait for it to end, and end the event streams."""
        if self.run is not None:
            self.run.stop()
        if self.task is not None and not self.task.done():
            await asyncio.wait({self.task}, timeout=timeout)
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.hub.close()

    # -- the run's side ----------------------------------------------------

    async def _drive(self, run: LoadRunLike) -> None:
        try:
            await run.run()
        except Exception as exc:
            log.exception("the load run failed")
            self.error = f"the run failed: {exc}"
        finally:
            if run is self.run:
                self.final = run.snapshot()
                self._move(Phase.STOPPED)

    def _follow(self, run: LoadRunLike) -> bool:
        """Catch up with the run's own state where it is ahead of the phase;
        True if that moved the phase (and published a snapshot)."""
        seen = RUN_PHASES.get(run.state)
        if run is not self.run or seen is None or seen not in TRANSITIONS[self.phase]:
            return False
        self._move(seen)
        return True

    def _on_row(self, row: dict[str, Any]) -> None:
        """Called by the run once a second (from another thread too)."""
        if self.loop is not None and threading.get_ident() != self.thread:
            self.loop.call_soon_threadsafe(self._on_row, row)
            return
        run = self.run
        if run is None or self.final is not None:
            return
        if not self._follow(run):  # a snapshot carries the row too
            self.hub.publish("tick", self.view(run.snapshot(), whole=False))


def reset_of(run: LoadRunLike) -> Callable[[], object] | None:
    """The run's way to reset its statistics while it goes on, if it has one."""
    reset: Callable[[], object] | None = getattr(run, "reset_stats", None)
    return reset


def default_factory(plan: LoadPlan, scenario: Any) -> LoadRunLike:
    """A LoadRun. A scenario made from the command line's URL (no -f file)
    is made again from the plan, whose URL the form may have changed."""
    from twincorn.load.runner import LoadRun

    return LoadRun(plan, None if bare(scenario) else scenario)
