"""What the web UI controls: one load run at a time, and its live view.

`RunControl` starts a run from the page's form (the command line's plan
with the form's changes), stops it, resets it, and keeps the run's results
after it ends: the history lives here, on the server, so a page that
reloads loses nothing. Each second the run reports its newest timeline row;
RunControl turns it into one Server-Sent Events frame and hands it to a
`Broadcast`, which every open event stream reads. A frame is made once,
whatever the number of pages watching.

Frames are of two kinds: `snapshot` (everything, the whole timeline
included: the first frame of each stream, and after a start, stop or
reset) and `tick` (the newest row and the tables as they are now).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from twincorn.load.plan import LoadPlan, PlanError, parse_duration
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


class FormError(ValueError):
    """A start form value that cannot be used, in one sentence."""


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

    def publish(self, frame: bytes) -> None:
        self.seq += 1
        self.recent.append((self.seq, frame))
        event, self.event = self.event, asyncio.Event()
        event.set()  # wakes every reader waiting on it

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
        self.run: LoadRunLike | None = None
        self.task: asyncio.Task[None] | None = None
        self.final: dict[str, Any] | None = None  # the results once the run ended
        self.error = ""  # why the last run ended early, if it failed
        self.run_id = 0
        self.hub = Broadcast()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = 0

    # -- what the page sees ------------------------------------------------

    @property
    def state(self) -> str:
        return "ready" if self.run is None else self.run.state

    @property
    def active(self) -> bool:
        """From start() until the run has ended and its results are kept."""
        return self.run is not None and self.final is None

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
            view["form"] = form_values(self.plan, bare(self.scenario))
        else:
            view["row"] = last
        return view

    def snapshot_frame(self) -> bytes:
        return sse_frame("snapshot", self.view(self.results(), whole=True))

    # -- what the page asks ------------------------------------------------

    def start(self, form: Mapping[str, str]) -> None:
        """Start a run with the plan changed by the form's values."""
        if self.active:
            raise Busy("a run is going on: stop it first")
        plan = apply_form(self.plan, form, bare(self.scenario))
        try:
            run = self.make_run(plan, self.scenario)
        except PlanError as exc:
            raise FormError(str(exc)) from None
        self.loop = asyncio.get_running_loop()
        self.thread = threading.get_ident()
        self.plan, self.run, self.final, self.error = plan, run, None, ""
        self.run_id += 1
        run.subscribe(self._on_row)
        self.task = self.loop.create_task(self._drive(run))
        self.hub.publish(self.snapshot_frame())

    def stop(self) -> None:
        if self.run is not None and self.active:
            self.run.stop()
            self.hub.publish(self.snapshot_frame())

    def reset(self) -> None:
        """Locust's "reset stats": the run's own reset while it goes on
        (where the run has one); once it ended, forget it and its results."""
        run = self.run
        if run is not None and self.active:
            reset = reset_of(run)
            if reset is None:
                raise Busy("this run cannot reset its statistics while it goes on: stop it first")
            reset()
        else:
            self.run, self.final, self.error, self.task = None, None, "", None
        self.hub.publish(self.snapshot_frame())

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
                self.hub.publish(self.snapshot_frame())

    def _on_row(self, row: dict[str, Any]) -> None:
        """Called by the run once a second (from another thread too)."""
        if self.loop is not None and threading.get_ident() != self.thread:
            self.loop.call_soon_threadsafe(self._on_row, row)
            return
        if self.run is not None and self.final is None:
            self.hub.publish(sse_frame("tick", self.view(self.run.snapshot(), whole=False)))


def reset_of(run: LoadRunLike) -> Callable[[], object] | None:
    """The run's way to reset its statistics while it goes on, if it has one."""
    reset: Callable[[], object] | None = getattr(run, "reset_stats", None)
    return reset


def default_factory(plan: LoadPlan, scenario: Any) -> LoadRunLike:
    """A LoadRun. A scenario made from the command line's URL (no -f file)
    is made again from the plan, whose URL the form may have changed."""
    from twincorn.load.runner import LoadRun

    return LoadRun(plan, None if bare(scenario) else scenario)


# -- the start form --------------------------------------------------------


def format_duration(seconds: float | None) -> str:
    """Seconds as the form shows them: "1h10m", "30s", "" for none."""
    if seconds is None or seconds <= 0:
        return ""
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)


def bare(scenario: Any) -> bool:
    """True for no scenario file: each user GETs the plan's URL."""
    return scenario is None or getattr(scenario, "builtin", None) is not None


def form_values(plan: LoadPlan, url_only: bool = True) -> dict[str, Any]:
    """The plan as the start form shows it (its host field: the URL to
    GET when `url_only`, else the scenario's host)."""
    return {
        "model": "open" if plan.rate > 0 else "closed",
        "users": plan.users,
        "spawn_rate": plan.spawn_rate,
        "rate": plan.rate or None,
        "max_in_flight": plan.max_in_flight,
        "host": (plan.url if url_only else plan.host or plan.url) or "",
        "run_time": format_duration(plan.run_time),
    }


def apply_form(plan: LoadPlan, form: Mapping[str, str], url_only: bool = True) -> LoadPlan:
    """A copy of the plan with the form's values, checked (FormError).

    The host field is the URL every user GETs when there is no scenario
    file (`url_only`), else the base URL of the scenario's paths (--host).
    """
    changes: dict[str, Any] = {}
    if form.get("model", "closed") == "open":
        changes["rate"] = number_field(form, "rate", float)
        if form.get("max_in_flight", "").strip():
            changes["max_in_flight"] = number_field(form, "max_in_flight", int)
    else:
        changes["rate"] = 0.0
        if form.get("users", "").strip():
            changes["users"] = number_field(form, "users", int)
        if form.get("spawn_rate", "").strip():  # 0: all at once, as on the command line
            changes["spawn_rate"] = number_field(form, "spawn_rate", float, zero=True)
    host = form.get("host", "").strip()
    if host:
        changes["url" if url_only else "host"] = host
    if "run_time" in form:
        text = form["run_time"].strip()
        try:
            changes["run_time"] = parse_duration(text) if text else None
        except PlanError as exc:
            raise FormError(f"run time: {exc}") from None
    try:
        return plan.replace(**changes).validate()
    except PlanError as exc:
        raise FormError(str(exc)) from None


def number_field(form: Mapping[str, str], name: str, kind: type[int] | type[float],
                 zero: bool = False) -> Any:
    """A positive number from the form (or zero, where `zero` allows it)."""
    text = form.get(name, "").strip()
    try:
        value = kind(text)
    except ValueError:
        raise FormError(f"{name.replace('_', ' ')}: {text!r} is not a number") from None
    if value < 0 or (value == 0 and not zero):
        raise FormError(f"{name.replace('_', ' ')} must be more than 0")
    return value
