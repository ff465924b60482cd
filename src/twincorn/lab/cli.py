"""`twincorn lab`: the blocking-WSGI-against-async-ASGI experiment, in one command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twincorn.extras import install_hint

DESCRIPTION = """\
Run the classic experiment: a WSGI app that blocks for a second per request
and an ASGI app that awaits a second, served by twincorn with 4 blocking
workers, 4 workers x 8 threads, and 1 async worker (and, with --peers, by
gunicorn and uvicorn as the seed ran them); load each with a growing number
of users (twincorn load, no think time) and at fixed rates; then hold
thousands of idle WebSockets on one process (a chat room) for their memory
and the latency of a broadcast to them all; then write a
report (index.html, PNG charts, results.json, summary.md) that compares
what was measured with what the model predicts.
"""


def add_parser(commands: Any) -> None:
    lab = commands.add_parser(
        "lab", help="run the blocking-WSGI-vs-async-ASGI experiment and draw it",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lab.add_argument("--quick", action="store_true",
                     help="a shorter run (under 2 minutes on 2 cores) that still shows the lesson")
    lab.add_argument("--peers", action="store_true",
                     help="also run gunicorn and uvicorn where installed (pip install "
                          "'twincorn[peers]', or pip install -e '.[peers]' in a checkout)")
    lab.add_argument("--out", default="lab-report", metavar="DIR",
                     help="folder of the report [default: lab-report]")
    lab.add_argument("--only", action="append", metavar="KEY",
                     help="run only this configuration (twincorn-wsgi, twincorn-wsgi-threads, "
                          "twincorn-asgi, gunicorn-wsgi, gunicorn-uvicorn-asgi, uvicorn-asgi; "
                          "in the WebSocket part twincorn-ws, uvicorn-ws); repeat for more")
    lab.add_argument("--max-users", type=_positive(int), metavar="N",
                     help="the ramp's last step [default: 64 quick, 256 full]")
    lab.add_argument("--step-seconds", type=_positive(float), metavar="S",
                     help="measured seconds per step, after its warm-up [default: 2 quick, 5 full]")
    lab.add_argument("--service-time", type=_positive(float), metavar="S",
                     help="how long the slow apps wait per request [default: 1]")
    lab.add_argument("--no-hello", action="store_true", help="skip the hello apps")
    lab.add_argument("--websockets", action=argparse.BooleanOptionalAction,
                     help="the WebSocket part: idle sockets held by one process, their memory "
                          "and a broadcast's latency [default: in the full run, not with "
                          "--quick]")
    lab.add_argument("--no-fixed-rate", action="store_true",
                     help="skip the fixed-rate runs (the open model); only the ramps of users")
    # The old name, which read as "do not open a browser": kept, hidden, with a warning.
    lab.add_argument("--no-open", action=_Renamed, dest="no_fixed_rate", nargs=0,
                     help=argparse.SUPPRESS)
    lab.add_argument("--analyse", metavar="RESULTS_JSON",
                     help="write the report again from a saved results.json, running nothing")


class _Renamed(argparse.Action):
    """A flag's old name: does what the new one does, and says so."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print("twincorn lab: --no-open is now --no-fixed-rate (it skips the fixed-rate runs)",
              file=sys.stderr)
        setattr(namespace, self.dest, True)


def _positive(kind: Callable[[str], float]) -> Callable[[str], Any]:
    def read(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a {'whole ' if kind is int else ''}number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
        return value

    return read


def _error(message: str) -> int:
    print(f"twincorn lab: error: {message}\n(see twincorn lab --help)", file=sys.stderr)
    return 2


def main(args: dict[str, Any]) -> int:
    from twincorn.lab.experiment import LabPlan, run_plan
    from twincorn.lab.report import write_report
    from twincorn.lab.servers import ServerFailed
    from twincorn.lab.setups import websocket_setups

    out = Path(args["out"])
    if args.get("analyse"):
        try:
            results = json.loads(Path(args["analyse"]).read_text())
        except (OSError, ValueError) as exc:
            return _error(f"--analyse {args['analyse']}: cannot read it ({exc})")
        return _finish(results, out, write_report)
    make = LabPlan.quick_plan if args["quick"] else LabPlan.full_plan
    plan = make(args["peers"], args.get("websockets"))
    if args.get("only"):
        known = {s.key for s in plan.setups + plan.ws_setups}
        unknown = set(args["only"]) - known
        left_out = unknown & {s.key for s in websocket_setups(1, args["peers"])}
        if left_out and not plan.ws_setups:
            return _error(f"--only {', '.join(sorted(left_out))}: the WebSocket part is not in "
                          "this run; add --websockets (--quick leaves it out)")
        if unknown:
            return _error(f"--only: unknown configuration {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(sorted(known))}")
        plan.setups = [s for s in plan.setups if s.key in args["only"]]
        plan.ws_setups = [s for s in plan.ws_setups if s.key in args["only"]]
    for name in ("max_users", "step_seconds", "service_time"):
        if args.get(name) is not None:
            setattr(plan, name, args[name])
    if args["no_hello"]:
        plan.hello_users = ()
    if args["no_fixed_rate"]:
        plan.rate_factors, plan.async_rates = (), ()
    try:
        results = run_plan(plan)
    except KeyboardInterrupt:
        print("\ntwincorn lab: interrupted; the servers are stopped", file=sys.stderr)
        return 130
    except ServerFailed as exc:
        print(f"twincorn lab: {exc}", file=sys.stderr)
        return 1
    return _finish(results, out, write_report)


def _finish(results: dict[str, Any], out: Path, write_report: Any) -> int:
    from twincorn.lab.analysis import summary_markdown

    written = write_report(results, out)
    print(summary_markdown(results))
    print("report: " + ", ".join(str(p) for p in written))
    if not any(p.suffix == ".png" for p in written):
        print("(no PNG charts: matplotlib is missing; " + install_hint("lab") + ")")
    return 0
