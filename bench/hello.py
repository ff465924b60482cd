"""twincorn and its peers, side by side, on the hello apps.

Each server runs the same app (examples/asgi/app.py or examples/wsgi/app.py)
with one worker, pinned to CPU 0; wrk drives it from CPU 1 with --latency.
Every run gets a fresh server on a free port, a warm-up, then the measured
run. With --rounds N every server runs once per round, in a rotated order,
and the table shows the median of the rounds (the errors column adds them up).

How to read the table:

- requests/s is what one worker process sustains with wrk's connections all
  open and busy; p50 and p99 are wrk's latency percentiles (milliseconds).
- twincorn/peer is twincorn's requests/s divided by that peer's, for the same
  app: 2.00 means twincorn served twice as many requests in the same time,
  0.80 means it served a fifth fewer. It is the number to track: absolute
  rates move with the machine and its neighbours, the ratio much less.
- errors is wrk's socket errors (connect, read, write, timeout) plus non-2xx
  or 3xx responses. It should be 0; anything else makes that row suspect.
- gunicorn's sync worker closes the connection after every response (it has
  no keep-alive), so its rate includes a TCP connect per request. That is the
  worker's nature, not a flaw of the set-up.

    python bench/hello.py [--duration 10] [--rounds 3] [--only asgi] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import machine
import options
import rounds
import servers
import wrk
from machine import LOAD_CPU, SERVER_CPU
from servers import ROOT, RunFailed, Server

# The project's aims, as (app, peer) -> minimum twincorn/peer ratio.
AIMS = {("asgi", "uvicorn"): 1.5, ("wsgi", "gunicorn sync"): 6.0}


SERVERS = (
    Server(
        "twincorn",
        "asgi",
        "twincorn serve examples.asgi.app:app --no-access-log --bind {host}:{port}",
    ),
    Server(
        "uvicorn",
        "asgi",
        "uvicorn examples.asgi.app:app --loop uvloop --http httptools --no-access-log"
        " --log-level warning --host {host} --port {port}",
    ),
    Server(
        "gunicorn asgi",
        "asgi",
        "gunicorn -k asgi -w 1 -b {host}:{port} examples.asgi.app:app",
        module="gunicorn.workers.gasgi",
    ),
    Server(
        "granian",
        "asgi",
        "granian --interface asgi --workers 1 --loop uvloop --log-level warning"
        " --host {host} --port {port} examples.asgi.app:app",
    ),
    Server(
        "twincorn",
        "wsgi",
        "twincorn serve examples.wsgi.app:app --no-access-log --bind {host}:{port}",
    ),
    Server(
        "gunicorn sync",
        "wsgi",
        "gunicorn -w 1 -b {host}:{port} examples.wsgi.app:app",
        note="no keep-alive",
    ),
    Server(
        "granian",
        "wsgi",
        "granian --interface wsgi --workers 1 --log-level warning"
        " --host {host} --port {port} examples.wsgi.app:app",
    ),
)


@dataclass
class Sample:
    """One measured wrk run."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass
class Row:
    """A server's results over the rounds; `problem` says why it has none."""

    server: Server
    problem: str = ""
    samples: list[Sample] = field(default_factory=list)

    @property
    def measured(self) -> bool:
        return not self.problem and bool(self.samples)

    @property
    def label(self) -> str:
        return f"{self.server.name} ({self.server.app})"

    def median(self, name: str) -> float:
        values: list[float] = [getattr(sample, name) for sample in self.samples]
        return statistics.median(values)

    def errors(self) -> int:
        return sum(sample.errors for sample in self.samples)


# -- one run -----------------------------------------------------------------


def load(url: str, seconds: int, args: argparse.Namespace) -> wrk.Result:
    return wrk.run(
        f"-t {args.threads} -c {args.connections} -d {seconds}s --latency {url}".split(), seconds
    )


def measure(server: Server, args: argparse.Namespace) -> Sample:
    """A fresh server on a free port: the warm-up, then the measured run."""
    port = servers.free_port()
    with (
        tempfile.TemporaryFile() as log,
        servers.started(server.command(port), log, path=[ROOT]) as proc,
    ):
        servers.wait_ready(proc, log, servers.answering(port))
        url = f"http://{servers.HOST}:{port}/"
        if args.warmup > 0:
            load(url, args.warmup, args)
        result = load(url, args.duration, args)
        return Sample(result.rps, result.latency_ms(50), result.latency_ms(99), result.errors)


def run_rounds(
    rows: Sequence[Row],
    args: argparse.Namespace,
    measure: Callable[[Server, argparse.Namespace], Sample] = measure,
    groups: Sequence[Sequence[Row]] | None = None,
) -> None:
    """Each row measured round by round, the servers of each group taking
    turns (rounds.py); a row that fails keeps its problem and its samples.
    bench/tls.py runs its own `measure` here, a group per load."""
    for turn, row in rounds.rounds(args.rounds, groups or [rows], lambda r: r.label,
                                   lambda r: not r.problem):
        try:
            row.samples.append(measure(row.server, args))
        except RunFailed as exc:
            when = f"failed in round {turn}" if turn > 1 else "unavailable"
            row.problem = f"{when}: {exc}"
            rounds.say(f"  {row.label} {row.problem}")


# -- the table ---------------------------------------------------------------

COLUMNS = ("app", "server", "requests/s", "p50 ms", "p99 ms", "errors", "twincorn/peer",
           "spread", "note")


def round_ratios(rows: Sequence[Row], row: Row) -> list[float]:
    """twincorn's requests/s over this peer's, round by round (same app)."""
    if row.server.name == "twincorn" or not row.measured:
        return []
    same_app = (r for r in rows if r.server.app == row.server.app)
    ours = next((r for r in same_app if r.server.name == "twincorn"), None)
    if ours is None or not ours.measured:
        return []
    return rounds.ratios([s.rps for s in ours.samples], [s.rps for s in row.samples])


def ratio(rows: Sequence[Row], row: Row) -> float | None:
    """The median of the per-round ratios."""
    values = round_ratios(rows, row)
    return statistics.median(values) if values else None


def note(row: Row, value: float | None) -> str:
    if row.problem:
        return row.problem if len(row.problem) <= 100 else row.problem[:97] + "..."
    aim = AIMS.get((row.server.app, row.server.name))
    parts = [row.server.note] if row.server.note else []
    if aim is not None and value is not None:
        parts.append(f"aim >= {aim}x: {'met' if value >= aim else 'not met'}")
    return "; ".join(parts)


def cells(rows: Sequence[Row], row: Row) -> list[str]:
    value = ratio(rows, row)
    head = [row.server.app, row.server.name]
    if not row.measured:
        return [*head, "-", "-", "-", "-", "-", "-", note(row, None)]
    return [
        *head,
        f"{row.median('rps'):,.0f}",
        f"{row.median('p50_ms'):.2f}",
        f"{row.median('p99_ms'):.2f}",
        str(row.errors()),
        "-" if value is None else f"{value:.2f}",
        rounds.value_range(round_ratios(rows, row)),
        note(row, value),
    ]


def describe(rows: Sequence[Row], args: argparse.Namespace) -> str:
    median = f"median of {args.rounds} rounds" if args.rounds > 1 else "1 round"
    return (
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency "
        f"(+{args.warmup}s warm-up), {median}; server on CPU {SERVER_CPU}, wrk on CPU {LOAD_CPU}.\n"
        f"{machine.software(row.server.executable for row in rows)}."
    )


def report(rows: Sequence[Row], args: argparse.Namespace) -> dict[str, Any]:
    results = []
    for row in rows:
        results.append(
            {
                "server": row.server.name,
                "app": row.server.app,
                "version": machine.version(row.server.executable),
                "problem": row.problem or None,
                "rps": row.median("rps") if row.measured else None,
                "p50_ms": row.median("p50_ms") if row.measured else None,
                "p99_ms": row.median("p99_ms") if row.measured else None,
                "errors": row.errors() if row.measured else None,
                "twincorn_over_peer": ratio(rows, row),
                "ratio_per_round": round_ratios(rows, row),
                "samples": [asdict(sample) for sample in row.samples],
            }
        )
    names = ("duration", "connections", "threads", "warmup", "rounds")
    settings = {name: getattr(args, name) for name in names}
    return {"settings": settings, "python": sys.version.split()[0], "results": results}


# -- main --------------------------------------------------------------------


def add_wrk_arguments(parser: argparse.ArgumentParser) -> None:
    """The wrk runs' flags (bench/tls.py has them too)."""
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run (10)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of load before each run (2)")
    parser.add_argument("--rounds", type=int, default=1, help="runs per server, median shown (1)")


def check_wrk_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if min(args.duration, args.connections, args.threads, args.rounds) < 1 or args.warmup < 0:
        parser.error("--duration, --connections, --threads, --rounds must be > 0, --warmup >= 0")
    if args.connections < args.threads:
        parser.error("wrk needs at least as many connections as threads")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = options.parser(__doc__)
    add_wrk_arguments(parser)
    parser.add_argument("--only", choices=("asgi", "wsgi"), help="only the ASGI or the WSGI app")
    options.add_output(parser, json="also save the results as JSON")
    args = parser.parse_args(argv)
    check_wrk_arguments(parser, args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not machine.ready("wrk"):
        return 2
    rows = [Row(s, s.unavailable()) for s in SERVERS if args.only in (None, s.app)]
    if not servers.measure_all(lambda: run_rounds(rows, args)):
        return 130
    table = [cells(rows, row) for row in rows]
    print(describe(rows, args), end="\n\n")
    print(rounds.render(COLUMNS, table, args.markdown))
    if args.json:
        args.json.write_text(json.dumps(report(rows, args), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
