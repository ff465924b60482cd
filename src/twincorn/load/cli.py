"""`twincorn load URL [flags]`: the load tester's command line.

The flags are made from the declarations in plan.py. This module stays
light to import (the main `twincorn` parser builds its subcommand from
it); the run's machinery is imported when a run starts.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from twincorn.load.plan import PlanError, Reports, add_arguments, from_arguments

EXAMPLES = """\
examples:
  twincorn load http://127.0.0.1:8000/ -u 50 -t 30s         closed model, 50 users
  twincorn load http://127.0.0.1:8000/ --rate 2000 -t 1m    open model, 2000 req/s
  twincorn load -f examples/loadtest.py -H http://127.0.0.1:8000 -u 10 -r 2 -t 2m
  twincorn load ws://127.0.0.1:8000/echo --message-size 64 -u 100 -t 10s
                                                          WebSocket echo round trips
  twincorn load http://127.0.0.1:8000/ -t 30s --json out.json --csv out \\
      --fail-on 'p99>500ms' --fail-on 'error_rate>1%'
  twincorn load --web                                     the web UI on :8089

exit status: 0; 1 if a request failed or none was sent (or, with --fail-on,
if a threshold holds); 2 for bad flags or a scenario that cannot be loaded.
"""


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the `load` subcommand to the main parser's subparsers."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "load",
        help="load-test an HTTP or WebSocket server (Locust's users, wrk2's constant rate)",
        description="Load-test an HTTP or WebSocket server: a URL (a ws:// one for echo\n"
        "round trips), or a scenario file of async User classes (a locustfile). Closed\n"
        "model with -u/-r (Locust's), open model with --rate (wrk2's, k6's; latency\n"
        "corrected for coordinated omission). Coming from Locust: docs/load.md#from-locust.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return parser


def _error(message: str, hint: bool = True) -> int:
    """Exit status 2 and the message; a flag's error points at --help, a
    scenario file's does not (the fix is in the file, not the flags)."""
    tail = "\n(see twincorn load --help)" if hint else ""
    print(f"twincorn load: error: {message}{tail}", file=sys.stderr)
    return 2


def main(args: dict[str, Any]) -> int:
    """Run `twincorn load` with parsed flags; return the exit status."""
    from twincorn.load.api import resolve_scenario, run_in_terminal, write_outputs
    from twincorn.load.scenario import ScenarioError
    from twincorn.load.thresholds import Threshold, ThresholdError, exit_status

    try:
        plan, reports = from_arguments(args)
        thresholds = [Threshold.parse(text) for text in reports.fail_on]
        scenario = resolve_scenario(plan, reports)
    except (PlanError, ThresholdError) as exc:
        return _error(str(exc))
    except ScenarioError as exc:
        return _error(str(exc), hint=False)
    if reports.web:
        return _web(plan, scenario, reports)
    if scenario is None:
        return _error("give a URL to load (twincorn load http://127.0.0.1:8000/), "
                      "a scenario file (-f FILE), or --web")

    try:
        results = run_in_terminal(plan, scenario, reports)
    except PlanError as exc:
        return _error(str(exc))
    except ScenarioError as exc:
        return _error(str(exc), hint=False)
    for path in write_outputs(results, reports):
        print(f"wrote {path}", file=sys.stderr)
    code, reasons = exit_status(results, thresholds)
    for reason in reasons:
        print(f"twincorn load: {reason}", file=sys.stderr)
    return code


def _web(plan: Any, scenario: Any, reports: Reports) -> int:
    from twincorn.load.web import serve_ui

    return serve_ui(plan, scenario, reports.web_host, reports.web_port)
