"""`--processes N`: one run over N load processes, merged exactly.

The parent starts N processes (multiprocessing's "spawn": fresh
interpreters, safe to start from inside a running event loop or a threaded
program), each running the same scenario with its share of the plan
(`LoadPlan.split`: users, spawn rate, rate, limits, --stop-after). Each
rebuilds the scenario from its spec (a file path, the URL, or importable
User classes) and reports "ready"; the parent then sends every process the
same start time, so that their seconds line up.

Each process sends its Window once a second over its pipe (histograms in
their sparse form, see histogram.py), and a final one when it stops. The
parent merges the windows of one second from every process (counts summed,
histograms added bucket by bucket) and absorbs the merged window into its
statistics: its percentiles, per second and in all, are those of every
request from every process. Stopping the parent (Ctrl-C, stop()) sends
"stop" to every process; the processes ignore SIGINT themselves, so that a
Ctrl-C in the terminal (sent to the whole process group) stops the run
once, through the parent.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from twincorn.load.plan import LoadPlan
from twincorn.load.scenario import ScenarioError, Spec, from_spec
from twincorn.load.stats import Window

if TYPE_CHECKING:
    from twincorn.load.runner import LoadRun

_READY_SECONDS = 60.0  # how long processes may take to start and load the scenario
_START_MARGIN = 0.05  # seconds between "go" and the common start


@dataclass
class _Child:
    number: int
    process: Any  # multiprocessing.Process (the spawn context's)
    conn: Connection
    ready: bool = False
    done: bool = False
    last_index: int = 0
    info: dict[str, Any] = field(default_factory=dict)


async def run_children(run: LoadRun, stop_event: asyncio.Event) -> None:
    """Run `run`'s plan over plan.processes load processes."""
    loop = asyncio.get_running_loop()
    context = multiprocessing.get_context("spawn")
    plans = run.plan.split(run.plan.processes)
    children: list[_Child] = []
    inbox: asyncio.Queue[tuple[_Child, tuple[Any, ...]]] = asyncio.Queue()
    for number, plan in enumerate(plans):
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=child_main,
            args=(plan, run.scenario.spec, child_end, number),
            name=f"twincorn-load-{number}",
            daemon=True,
        )
        process.start()
        child_end.close()
        child = _Child(number, process, parent_end)
        children.append(child)
        loop.add_reader(parent_end.fileno(), _reader(child, inbox, loop))
    try:
        await _wait_ready(children, inbox)
        t0 = time.monotonic() + _START_MARGIN
        for child in children:
            child.conn.send(("go", t0))
        run.begin(t0 + run.plan.warmup)
        run.state = "spawning" if _ramps(run.plan) else "running"
        await _collect(run, children, inbox, stop_event, t0)
    finally:
        for child in children:
            _close(child, loop)
        await _join(children)
    run.processes = [child.info for child in children]


def _ramps(plan: LoadPlan) -> bool:
    return not plan.open_model and plan.spawn_rate > 0


def _reader(
    child: _Child, inbox: asyncio.Queue[tuple[_Child, tuple[Any, ...]]],
    loop: asyncio.AbstractEventLoop,
) -> Any:
    def read() -> None:
        try:
            while child.conn.poll():
                inbox.put_nowait((child, child.conn.recv()))
        except (EOFError, OSError):
            loop.remove_reader(child.conn.fileno())
            inbox.put_nowait((child, ("eof",)))

    return read


async def _next(
    inbox: asyncio.Queue[tuple[_Child, tuple[Any, ...]]], stop_event: asyncio.Event | None,
) -> tuple[_Child, tuple[Any, ...]] | None:
    """The next message, or None if stop_event is set first."""
    if stop_event is None:
        return await inbox.get()
    getter = asyncio.ensure_future(inbox.get())
    stopper = asyncio.ensure_future(stop_event.wait())
    done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if getter in done:
        return getter.result()
    getter.cancel()
    return None


async def _wait_ready(
    children: list[_Child], inbox: asyncio.Queue[tuple[_Child, tuple[Any, ...]]]
) -> None:
    """Until every process has loaded the scenario (a stop waits for this)."""
    while not all(c.ready for c in children):
        try:
            async with asyncio.timeout(_READY_SECONDS):
                message = await inbox.get()
        except TimeoutError:
            raise ScenarioError("load processes did not start in time") from None
        child, (kind, *args) = message
        if kind == "ready":
            child.ready = True
            child.info = {"process": child.number, "pid": args[0], "requests": 0,
                          "failures": 0}
        elif kind == "error":
            raise ScenarioError(f"load process {child.number}: {args[0]}")
        elif kind == "eof":
            raise ScenarioError(
                f"load process {child.number} exited while starting "
                f"(status {child.process.exitcode})"
            )


async def _collect(
    run: LoadRun, children: list[_Child],
    inbox: asyncio.Queue[tuple[_Child, tuple[Any, ...]]],
    stop_event: asyncio.Event, t0: float,
) -> None:
    """Merge the processes' windows, second by second, until all are done."""
    pending: dict[int, tuple[Window, set[int]]] = {}
    next_index = 1
    stop_sent = False
    ramp_end = t0 + (run.plan.users / run.plan.spawn_rate if _ramps(run.plan) else 0)
    while not all(c.done for c in children):
        if stop_event.is_set() and not stop_sent:
            stop_sent = True
            run.state = "stopping"
            for child in children:
                if not child.done:
                    _send(child, ("stop", run.stopped_by or "stop()"))
        message = await _next(inbox, None if stop_sent else stop_event)
        if message is None:
            continue
        child, (kind, *args) = message
        if kind == "window":
            window, final, info = args
            child.info.update(info)
            if window.index in pending:
                pending[window.index][0].merge(window)
                pending[window.index][1].add(child.number)
            else:
                pending[window.index] = (window, {child.number})
            if final:
                child.done = True
                child.last_index = window.index
                if child.info.get("stopped_by") and not run.stopped_by:
                    run.stopped_by = child.info["stopped_by"]
        elif kind == "eof" and not child.done:
            child.done = True
            child.last_index = 0
            child.info["error"] = f"exited unexpectedly (status {child.process.exitcode})"
        if run.state == "spawning" and time.monotonic() >= ramp_end:
            run.state = "running"
        next_index = _flush(run, children, pending, next_index)
    for index in sorted(pending):
        window, _ = pending.pop(index)
        run.deliver(window)
    run.duration = max(run.stats.elapsed, 0.0)


def _flush(
    run: LoadRun, children: list[_Child], pending: dict[int, tuple[Window, set[int]]],
    next_index: int,
) -> int:
    """Absorb, in order, the seconds every process has reported (or finished before)."""
    while next_index in pending:
        window, seen = pending[next_index]
        expected = {
            c.number for c in children if not (c.done and c.last_index < next_index)
        }
        if not expected <= seen:
            break
        del pending[next_index]
        run.deliver(window)
        next_index += 1
    return next_index


def _send(child: _Child, message: tuple[Any, ...]) -> None:
    try:
        child.conn.send(message)
    except (OSError, ValueError):
        pass  # the process is gone; its pipe's EOF says so


def _close(child: _Child, loop: asyncio.AbstractEventLoop) -> None:
    if not child.done:
        _send(child, ("stop", "parent stopped"))
    try:
        loop.remove_reader(child.conn.fileno())
    except (OSError, ValueError):
        pass


async def _join(children: list[_Child]) -> None:
    deadline = time.monotonic() + 10
    for child in children:
        while child.process.is_alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if child.process.is_alive():
            child.process.kill()
            child.process.join(1)
        child.conn.close()


def child_main(plan: LoadPlan, spec: Spec, conn: Connection, number: int) -> None:
    """A load process: run its share of the plan, windows to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    from twincorn.load.runner import LoadRun
    from twincorn.server.worker import new_event_loop

    try:
        scenario = from_spec(spec)
        run = LoadRun(plan, scenario)
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    loop, _ = new_event_loop("auto")
    asyncio.set_event_loop(loop)
    info: dict[str, Any] = {"process": number, "pid": os.getpid(), "requests": 0,
                            "failures": 0}

    def sink(window: Window, final: bool) -> None:
        for tally in window.tallies.values():
            info["requests"] += tally.requests
            info["failures"] += tally.failures
        if final:
            info["stopped_by"] = run.stopped_by
        try:
            conn.send(("window", window, final, dict(info)))
        except (OSError, ValueError):
            run.stop("parent gone")

    def from_parent() -> None:
        try:
            kind, *args = conn.recv()
        except (EOFError, OSError):
            loop.remove_reader(conn.fileno())
            run.stop("parent gone")
            return
        if kind == "stop":
            run.stop(args[0])

    run.sink = sink
    conn.send(("ready", os.getpid()))
    try:
        kind, t0 = conn.recv()
    except EOFError:
        return
    if kind != "go":
        return
    run.start_at = t0
    loop.add_reader(conn.fileno(), from_parent)
    try:
        loop.run_until_complete(run.run())
    finally:
        loop.close()
        conn.close()
