"""The terminal: a live status line while the run goes, a table at the end.

The live line goes to stderr. On a terminal it is rewritten in place every
second (a carriage return and an erase-line escape), so the screen does not
scroll; into a file or a pipe, a plain line is written every few seconds.
The final tables go to stdout, laid out like Locust's (with milliseconds
to three significant digits rather than Locust's rounding), in 100 columns
or the terminal's width when it is wider (text_table.py).
"""

from __future__ import annotations

import sys
import textwrap
import time
from typing import Any, TextIO

from twincorn.load.results import Results
from twincorn.load.stats import PERCENTILES, Tally
from twincorn.load.text_table import ELLIPSIS, RULE, TextColumn, layout, table_width

_PLAIN_EVERY = 5.0  # seconds between status lines when stderr is not a terminal

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


def _row_name(tally: Tally) -> list[str]:
    return [tally.method, tally.name]


def ellipsis_for(stream: TextIO) -> str:
    """The ellipsis of shortened names: "…" where the stream can encode it."""
    try:
        ELLIPSIS.encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return "..."
    return ELLIPSIS


_STATS_COLUMNS = (
    TextColumn("Type", left=True),
    TextColumn("Name", left=True, flexible=True),
    TextColumn("# reqs"),
    TextColumn("# fails"),
    TextColumn("Avg", bar=True),
    TextColumn("Min"),
    TextColumn("Max"),
    TextColumn("Med"),
    TextColumn("req/s", bar=True),
    TextColumn("failures/s"),
)


def final_report(results: Results, width: int | None = None, ellipsis: str | None = None) -> str:
    """The tables printed at the end of a run, Locust's layout, in `width`
    columns (default: text_table.table_width(), 100 or the terminal's)."""
    width = table_width() if width is None else width
    ellipsis = ellipsis_for(sys.stdout) if ellipsis is None else ellipsis
    by_name = list(results.by_name().values())
    duration = results.duration_s or 1.0
    rows: list[list[str] | None] = []
    for tally in [*by_name, RULE, results.total]:
        if tally is None:
            rows.append(RULE)
            continue
        hist = tally.hist
        share = 100 * tally.failures / tally.requests if tally.requests else 0.0
        rows.append([
            *_row_name(tally), str(tally.requests), f"{tally.failures}({share:.2f}%)",
            fmt_ms(hist.mean / 1000), fmt_ms((hist.min if hist.count else 0) / 1000),
            fmt_ms(hist.max / 1000), fmt_ms(hist.percentile(50) / 1000),
            f"{tally.requests / duration:.2f}", f"{tally.failures / duration:.2f}",
        ])
    out = layout(_STATS_COLUMNS, rows, width, ellipsis)
    rule = out[1]
    out.append("")
    out += _percentile_table(
        "Response time percentiles (ms)", by_name, results.total, True, width, ellipsis
    )
    if results.model == "open":
        out.append("")
        out += _percentile_table(
            "Uncorrected percentiles (ms): from the actual send, as a closed-model "
            "tester would report them",
            by_name, results.total, False, width, ellipsis,
        )
    if results.errors:
        out += ["", "Error report", f"{'# occurrences':>13}  Error", rule]
        for e in sorted(results.errors, key=lambda e: -e.count):
            out += _wrapped(f"{e.count:>13}", f"{e.method} {e.name}: {e.message}", len(rule))
    if results.exceptions:
        out += ["", "Exceptions", f"{'# occurrences':>13}  Where: exception", rule]
        for x in sorted(results.exceptions, key=lambda x: -x.count):
            out += _wrapped(f"{x.count:>13}", f"{x.where}: {x.message}", len(rule))
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


def _wrapped(count: str, text: str, width: int) -> list[str]:
    """One entry of the error report, its text wrapped to the tables' width
    (not cut: this is the only place the whole message is shown)."""
    indent = " " * (len(count) + 2)
    lines = textwrap.wrap(text, width, initial_indent=count + "  ",
                          subsequent_indent=indent, break_on_hyphens=False)
    return lines or [count]


def _percentile_table(
    title: str, by_name: list[Tally], total: Tally, corrected: bool, width: int, ellipsis: str
) -> list[str]:
    columns = [
        TextColumn("Type", left=True),
        TextColumn("Name", left=True, flexible=True),
        *(TextColumn(f"{q:g}%") for q in PERCENTILES),
        TextColumn("# reqs"),
    ]
    rows: list[list[str] | None] = []
    for tally in [*by_name, RULE, total]:
        if tally is None:
            rows.append(RULE)
            continue
        hist = tally.hist if corrected else tally.uncorrected
        if hist is None:
            continue
        values = hist.percentiles(list(PERCENTILES))
        cells = [fmt_ms(v / 1000) if hist.count else "N/A" for v in values]
        rows.append([*_row_name(tally), *cells, str(tally.requests)])
    return [title, *layout(columns, rows, width, ellipsis)]
