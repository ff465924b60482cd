"""`twincorn.load.run(...)`: a whole run from Python, as the CLI does it.

    from twincorn import load
    results = load.run("http://127.0.0.1:8000/", users=16, run_time="8s")
    results.rps, results.to_dict()["latency_ms"]["p99"]

Keyword arguments are the `twincorn load` options by their Python names
(users, spawn_rate, rate, run_time, stop_after, processes, json, csv, ...;
strings such as "30s" or "auto" are read as on the command line), plus
`scenario=` (a scenario file's path, or a Scenario) or `user_classes=[...]`.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from twincorn.load.plan import LoadPlan, PlanError, Reports, split_options
from twincorn.load.results import Results
from twincorn.load.runner import LoadRun
from twincorn.load.scenario import Scenario, from_classes, from_file, from_url
from twincorn.load.users import User


def resolve_scenario(plan: LoadPlan, reports: Reports) -> Scenario | None:
    """The scenario the options name: a file, else the URL (None: neither)."""
    if reports.scenario:
        return from_file(reports.scenario)
    if plan.url:
        return from_url(plan.url, plan.method, plan.header, plan.body,
                            plan.message_size, plan.message_text)
    return None


def write_outputs(results: Results, reports: Reports) -> list[str]:
    """--json, --csv, --html; returns what was written."""
    written: list[str] = []
    if not (reports.json or reports.csv or reports.html):
        return written
    data = results.to_dict()
    if reports.json:
        Path(reports.json).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        written.append(reports.json)
    if reports.csv:
        from twincorn.load.output_csv import write_csv

        written += [str(p) for p in write_csv(data, reports.csv)]
    if reports.html:
        try:
            from twincorn.load.report_html import (  # type: ignore[import-not-found,unused-ignore]
                render_html,
            )
        except ImportError:
            print("--html: the HTML report is not available in this build", file=sys.stderr)
        else:
            page: str = render_html(data)
            Path(reports.html).write_text(page, encoding="utf-8")
            written.append(reports.html)
    return written


async def execute(
    plan: LoadPlan,
    scenario: Scenario | None,
    *,
    subscribers: Sequence[Callable[[dict[str, Any]], None]] = (),
    handle_sigint: bool = True,
) -> Results:
    """Run to the end; the first Ctrl-C stops the run cleanly (a second one
    interrupts as usual)."""
    run = LoadRun(plan, scenario)
    for callback in subscribers:
        run.subscribe(callback)
    loop = asyncio.get_running_loop()
    sigint = handle_sigint and threading.current_thread() is threading.main_thread()
    if sigint:

        def interrupted() -> None:
            loop.remove_signal_handler(signal.SIGINT)
            run.stop("interrupted")

        loop.add_signal_handler(signal.SIGINT, interrupted)
    try:
        return await run.run()
    finally:
        if sigint:
            loop.remove_signal_handler(signal.SIGINT)


def run(
    url: str | None = None,
    *,
    scenario: str | Scenario | None = None,
    user_classes: Sequence[type[User]] | None = None,
    **options: Any,
) -> Results:
    """Run a load test and return its Results (see the module doc).

    Files named by json=, csv=, html= are written as by the CLI. Nothing is
    printed unless quiet=False (the live line and the final table).
    """
    options.setdefault("quiet", True)
    if url is not None:
        options["url"] = url
    if isinstance(scenario, str):
        options["scenario"] = scenario
    plan, reports = split_options(options)
    chosen: Scenario | None
    if isinstance(scenario, Scenario):
        chosen = scenario
    elif user_classes is not None:
        chosen = from_classes(list(user_classes))
    else:
        chosen = resolve_scenario(plan, reports)
    if chosen is None:
        raise PlanError("give a URL, a scenario file (scenario=) or user_classes=")
    results = run_in_terminal(plan, chosen, reports)
    write_outputs(results, reports)
    return results


def run_in_terminal(plan: LoadPlan, scenario: Scenario, reports: Reports) -> Results:
    """Run on a new event loop, with the live status line and then the final
    table on the terminal (unless reports.quiet): for run() and the CLI."""
    from twincorn.load.terminal import LiveStatus, final_report
    from twincorn.server.worker import new_event_loop

    status = None if reports.quiet else LiveStatus(run_time=plan.run_time,
                                                   stop_after=plan.stop_after)
    loop, _ = new_event_loop("auto")
    try:
        results = loop.run_until_complete(
            execute(plan, scenario, subscribers=[status] if status else [])
        )
    finally:
        loop.close()
    if status is not None:
        status.close()
        print(final_report(results), end="", flush=True)
    return results
