"""The terminal: a live status line while the run goes, a table at the end.

The live line goes to stderr. On a terminal it is rewritten in place every
second (a carriage return and an erase-line escape), so the screen does not
scroll; into a file or a pipe, a plain line is written every few seconds.
The final tables go to stdout, laid out like Locust's (with milliseconds
to three significant digits rather than Locust's rounding).
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from twincorn.load.results import Results
from twincorn.load.stats import PERCENTILES, Tally

_PLAIN_EVERY = 5.0  # seconds between status lines when stderr is not a terminal
NAME_WIDTH = 50

#: How the last line says why the run stopped (Results.stopped_by).
_STOPPED = {
    "run-time": "stopped at --run-time",
    "stop-after": "stopped at --stop-after",
    "interrupted": "interrupted (Ctrl-C)",
    "stop()": "stopped by stop()",
}


def fmt_ms(value: float) -> str:
    """Milliseconds to at least three significant digits: 0.312, 3.21, 32.1, 321."""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


class LiveStatus:
    """A subscriber to a LoadRun: prints the newest second's figures."""

    def __init__(
        self,
        stream: TextIO | None = None,
        run_time: float | None = None,
        stop_after: int = 0,
        tty: bool | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.run_time = run_time
        self.stop_after = stop_after
        self._last_plain = 0.0
        self._shown = False

    def __call__(self, row: dict[str, Any]) -> None:
        line = self.line(row)
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
            self._shown = True
        else:
            now = time.monotonic()
            if now - self._last_plain < _PLAIN_EVERY:
                return
            self._last_plain = now
            self.stream.write(line + "\n")
        self.stream.flush()

    def line(self, row: dict[str, Any]) -> str:
        t = float(row["t"])
        if self.run_time:
            progress = f"{t:5.0f}s/{self.run_time:g}s"
        elif self.stop_after:
            progress = f"{int(row.get('total_requests', 0)):,}/{self.stop_after:,} req"
        else:
            progress = f"{t:5.0f}s"
        total = int(row.get("total_requests", 0))
        failed = int(row.get("total_failures", 0))
        share = 100 * failed / total if total else 0.0
        parts = [
            f"[{progress}]",
            f"users {row['users']}",
            f"{float(row['rps']):,.0f} req/s",
            f"p50 {fmt_ms(float(row['p50_ms']))} ms",
            f"p99 {fmt_ms(float(row['p99_ms']))} ms",
            f"failures {failed:,} ({share:.2f}%)",
            f"in flight {row['in_flight']}",
        ]
        if "p99_uncorrected_ms" in row:
            parts.insert(5, f"(uncorrected p99 {fmt_ms(float(row['p99_uncorrected_ms']))} ms)")
        return "  ".join(parts)

    def close(self) -> None:
        if self.tty and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _row_name(tally: Tally) -> tuple[str, str]:
    name = tally.name if len(tally.name) <= NAME_WIDTH else tally.name[: NAME_WIDTH - 3] + "..."
    return tally.method[:8], name


def final_report(results: Results) -> str:
    """The tables printed at the end of a run, Locust's layout."""
    out: list[str] = []
    by_name = list(results.by_name().values())
    duration = results.duration_s or 1.0
    head = (
        f"{'Type':<8} {'Name':<{NAME_WIDTH}} {'# reqs':>9} {'# fails':>16} |"
        f" {'Avg':>7} {'Min':>7} {'Max':>7} {'Med':>7} | {'req/s':>9} {'failures/s':>10}"
    )
    rule = "-" * len(head)
    out += [head, rule]
    for tally in [*by_name, None, results.total]:
        if tally is None:
            out.append(rule)
            continue
        method, name = _row_name(tally)
        hist = tally.hist
        share = 100 * tally.failures / tally.requests if tally.requests else 0.0
        fails = f"{tally.failures}({share:.2f}%)"
        out.append(
            f"{method:<8} {name:<{NAME_WIDTH}} {tally.requests:>9} {fails:>16} |"
            f" {fmt_ms(hist.mean / 1000):>7} {fmt_ms((hist.min if hist.count else 0) / 1000):>7}"
            f" {fmt_ms(hist.max / 1000):>7} {fmt_ms(hist.percentile(50) / 1000):>7} |"
            f" {tally.requests / duration:>9.2f} {tally.failures / duration:>10.2f}"
        )
    out.append("")
    out += _percentile_table(
        "Response time percentiles (ms)", by_name, results.total, corrected=True
    )
    if results.model == "open":
        out.append("")
        out += _percentile_table(
            "Uncorrected percentiles (ms): from the actual send, as a closed-model "
            "tester would report them",
            by_name, results.total, corrected=False,
        )
    if results.errors:
        out += ["", "Error report", f"{'# occurrences':>13}  Error", rule]
        for e in sorted(results.errors, key=lambda e: -e.count):
            out.append(f"{e.count:>13}  {e.method} {e.name}: {e.message}")
    if results.exceptions:
        out += ["", "Exceptions", f"{'# occurrences':>13}  Where: exception", rule]
        for x in sorted(results.exceptions, key=lambda x: -x.count):
            out.append(f"{x.count:>13}  {x.where}: {x.message}")
    out += [
        "",
        f"{results.requests:,} request{'' if results.requests == 1 else 's'} in "
        f"{results.duration_s:.2f} s: "
        f"{results.rps:,.1f} req/s, {results.failures:,} failed "
        f"({100 * results.error_rate:.2f}%)"
        + (f", {results.dropped:,} arrivals dropped" if results.dropped else "")
        + (f"; {_STOPPED.get(results.stopped_by, 'stopped by ' + results.stopped_by)}"
           if results.stopped_by else ""),
    ]
    if results.unfinished and results.unfinished_oldest >= 1.0:
        # Worth a line when some had waited long: requests a server left
        # unanswered would otherwise vanish from the figures.
        many = results.unfinished != 1
        out.append(
            f"{results.unfinished:,} request{'s' if many else ''} still in flight at the end "
            f"{'were' if many else 'was'} not counted; the oldest had waited "
            f"{results.unfinished_oldest:.2f} s"
        )
    return "\n".join(out) + "\n"


def _percentile_table(
    title: str, by_name: list[Tally], total: Tally, corrected: bool
) -> list[str]:
    labels = [f"{q:g}%" for q in PERCENTILES]
    head = f"{'Type':<8} {'Name':<{NAME_WIDTH}} " + " ".join(f"{x:>7}" for x in labels)
    head += f" {'# reqs':>9}"
    rule = "-" * len(head)
    lines = [title, head, rule]
    for tally in [*by_name, None, total]:
        if tally is None:
            lines.append(rule)
            continue
        hist = tally.hist if corrected else tally.uncorrected
        if hist is None:
            continue
        method, name = _row_name(tally)
        values = hist.percentiles(list(PERCENTILES))
        cells = " ".join(
            f"{fmt_ms(v / 1000):>7}" if hist.count else f"{'N/A':>7}" for v in values
        )
        lines.append(f"{method:<8} {name:<{NAME_WIDTH}} {cells} {tally.requests:>9}")
    return lines
