"""Soak: does a worker's resident memory grow as it serves requests?

For every server, app (ASGI, WSGI) and way of connecting (keep-alive, or a
new connection per request with `Connection: close`), one worker serves
--requests requests (1,000,000 by default) of `POST /` with a 1 KiB body,
answered with 1 KiB (bench/apps/echo1k.py), driven by wrk. The server runs
on CPU 0, wrk on CPU 1. The worker's resident memory (VmRSS) is read after a
warm-up, between wrk's bursts (the trend) and at the end after a pause.

twincorn's target: under 2 MiB of growth per worker over 1M requests, in
every combination.

wrk runs for a duration, not a count: the soak runs it in bursts sized (from
the rate so far) to end near each tenth of --requests, reads the app's count
of answered requests after each, and stops once the count is reached. The
requests column is the app's own count.

    python bench/soak.py [--requests 1000000] [--servers twincorn,uvicorn]
                         [--apps asgi,wsgi] [--modes keep-alive,close] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import app_worker
import machine
import options
import procfs
import rounds
import servers
import wrk
from machine import LOAD_CPU, SERVER_CPU
from servers import HOST, RunFailed

TARGET_MIB = 2.0
TARGET_REQUESTS = 1_000_000
MODES = ("keep-alive", "close")
APPS = ("asgi", "wsgi")

POST_1K = """\
wrk.method = "POST"
wrk.body = string.rep("x", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
"""


@dataclass(frozen=True)
class Server:
    """A server set-up: argv with {app} (asgi or wsgi), {interface} (the
    server's name for it: `asgi_name` for asgi), {host} and {port}."""

    name: str
    argv: str
    apps: tuple[str, ...] = APPS
    asgi_name: str = "asgi"

    @property
    def executable(self) -> str:
        return self.argv.split()[0]

    def command(self, app: str, port: int) -> list[str]:
        interface = self.asgi_name if app == "asgi" else app
        words = self.argv.split()
        return [part.format(app=app, interface=interface, host=HOST, port=port) for part in words]


SERVERS = {
    server.name: server
    for server in (
        Server(
            "twincorn",
            "twincorn serve echo1k:{app} --interface {interface} --workers 1 --no-access-log"
            " --bind {host}:{port}",
        ),
        Server(
            "twincorn-asyncio",
            "twincorn serve echo1k:{app} --interface {interface} --workers 1 --no-access-log"
            " --loop asyncio --bind {host}:{port}",
        ),
        # uvicorn serves WSGI through its (deprecated) WSGIMiddleware: the app
        # runs in a thread pool, its body is handed over through the loop.
        Server(
            "uvicorn",
            "uvicorn echo1k:{app} --interface {interface} --loop uvloop --http httptools"
            " --no-access-log --log-level warning --host {host} --port {port}",
            asgi_name="asgi3",
        ),
        Server(
            "gunicorn-gthread",
            "gunicorn echo1k:wsgi -k gthread --threads 4 -w 1 --keep-alive 5"
            " --log-level warning -b {host}:{port}",
            apps=("wsgi",),
        ),
    )
}


@dataclass
class Sample:
    """One soak of one server, app and mode. Memory in KiB (VmRSS); blocks
    are sys.getallocatedblocks() of the worker, after a full collection."""

    rss_boot_kib: int
    rss_start_kib: int
    live_blocks_start: int
    requests: int = 0
    seconds: float = 0.0
    errors: int = 0
    rss_end_kib: int = 0
    rss_collected_kib: int = 0  # after the final full collection
    garbage_found: int = 0  # unreachable objects that collection found
    live_blocks_end: int = 0
    trend: list[tuple[int, int]] = field(default_factory=list)  # (requests, VmRSS KiB)

    @property
    def growth_mib(self) -> float:
        return (self.rss_end_kib - self.rss_start_kib) / 1024


@dataclass
class Row:
    server: Server
    app: str
    mode: str
    problem: str = ""
    samples: list[Sample] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.server.name} {self.app} {self.mode}"


# -- one soak ----------------------------------------------------------------


def load(port: int, mode: str, seconds: int, args: argparse.Namespace) -> wrk.Result:
    argv = ["-t1", f"-c{args.connections}", f"-d{seconds}s", "-s", str(args.script)]
    if mode == "close":
        argv += ["-H", "Connection: close"]
    return wrk.run([*argv, f"http://{HOST}:{port}/"], seconds)


def next_burst(done: int, seconds: float, args: argparse.Namespace) -> int:
    """Seconds for the next burst: to the next tenth of --requests (at least
    half a tenth away) at the rate so far."""
    if done <= 0 or seconds <= 0:
        return 2
    total: int = args.requests
    step: float = total / args.checkpoints
    mark = min(total, math.ceil((done + step / 2) / step) * step)
    longest: int = args.max_burst
    return max(1, min(longest, math.ceil((mark - done) / (done / seconds))))


def soak(row: Row, args: argparse.Namespace) -> Sample:
    port = servers.free_port()
    command = row.server.command(row.app, port)
    with (
        tempfile.TemporaryFile() as log,
        servers.started(command, log, path=[app_worker.APPS]) as proc,
    ):
        pid = app_worker.find(proc, port, log)
        boot = procfs.rss_kib(pid)
        if args.warmup:
            load(port, row.mode, args.warmup, args)
        time.sleep(args.pause)
        rss_start = procfs.rss_kib(pid)
        first = app_worker.stats(port, query="collect")
        sample = Sample(boot, rss_start, first["blocks"], trend=[(0, rss_start)])
        while sample.requests < args.requests:
            burst = load(port, row.mode, next_burst(sample.requests, sample.seconds, args), args)
            sample.seconds += burst.seconds
            sample.errors += burst.errors
            sample.requests = int(app_worker.stats(port)["answered"]) - first["answered"]
            sample.trend.append((sample.requests, procfs.rss_kib(pid)))
            progress(row, sample)
        time.sleep(args.pause)
        sample.rss_end_kib = procfs.rss_kib(pid)
        last = app_worker.stats(port, query="collect")
        if last["pid"] != pid:
            raise RunFailed(f"the worker changed: pid {pid}, then {last['pid']}")
        sample.rss_collected_kib = procfs.rss_kib(pid)
        sample.garbage_found, sample.live_blocks_end = last["gc_found"], last["blocks"]
        return sample


def progress(row: Row, sample: Sample) -> None:
    rss = sample.trend[-1][1] / 1024
    rate = sample.requests / sample.seconds if sample.seconds else 0.0
    rounds.say(f"  {row.label}: {sample.requests:,} requests, {rate:,.0f}/s, RSS {rss:.1f} MiB")


def rows_for(args: argparse.Namespace) -> list[list[Row]]:
    """Every combination, grouped by app and mode: the servers of a group
    take turns."""
    groups = []
    for app in args.apps:
        for mode in args.modes:
            group = []
            for name in args.servers:
                server = SERVERS[name]
                if app in server.apps:
                    group.append(Row(server, app, mode, servers.unavailable(server.executable)))
            groups.append(group)
    return groups


def run(groups: Sequence[Sequence[Row]], args: argparse.Namespace) -> None:
    for turn, row in rounds.rounds(args.rounds, groups, lambda r: r.label, lambda r: not r.problem):
        try:
            row.samples.append(soak(row, args))
        except (RunFailed, OSError) as exc:
            row.problem = f"failed in round {turn}: {exc}"
            rounds.say(f"  {row.label} {row.problem}")


# -- the tables --------------------------------------------------------------

COLUMNS = (
    "server", "app", "connection", "requests", "seconds", "req/s", "RSS boot MiB",
    "RSS start MiB", "RSS end MiB", "growth MiB", "per 100k req MiB", "bytes/req",
    "after gc MiB", "garbage found", "live blocks/1k req", "errors", "note",
)  # fmt: skip


median = statistics.median


def note(row: Row, growth: float, args: argparse.Namespace) -> str:
    if not row.server.name.startswith("twincorn"):
        return ""
    if args.requests < TARGET_REQUESTS:
        return f"target <{TARGET_MIB:g} MiB per 1M requests: run 1M to judge"
    return f"target <{TARGET_MIB:g} MiB: {'met' if growth < TARGET_MIB else 'NOT met'}"


def cells(row: Row, args: argparse.Namespace) -> list[str]:
    head = [row.server.name, row.app, row.mode]
    if row.problem or not row.samples:
        return [*head, *["-"] * (len(COLUMNS) - 4), row.problem]
    samples = row.samples
    requests = [s.requests for s in samples]
    growth = [s.growth_mib for s in samples]
    per_request = [g / r for g, r in zip(growth, requests, strict=True)]
    live = [(s.live_blocks_end - s.live_blocks_start) * 1000 / s.requests for s in samples]
    return [
        *head,
        f"{median(requests):,.0f}",
        f"{median([s.seconds for s in samples]):.0f}",
        f"{median([s.requests / s.seconds for s in samples]):,.0f}",
        f"{median([s.rss_boot_kib / 1024 for s in samples]):.1f}",
        f"{median([s.rss_start_kib / 1024 for s in samples]):.1f}",
        f"{median([s.rss_end_kib / 1024 for s in samples]):.1f}",
        rounds.median_range(growth, 1),
        rounds.median_range([g * 100_000 for g in per_request], 2),
        f"{median([g * 2**20 for g in per_request]):.0f}",
        f"{median([s.rss_collected_kib / 1024 for s in samples]):.1f}",
        f"{median([s.garbage_found for s in samples]):,.0f}",
        f"{median(live):.1f}",
        str(sum(s.errors for s in samples)),
        note(row, median(growth), args),
    ]


def trend_cells(row: Row) -> list[str]:
    if not row.samples:
        return [row.server.name, row.app, row.mode, row.problem or "-"]
    points = ", ".join(f"{n // 1000}k: {kib / 1024:.1f}" for n, kib in row.samples[-1].trend)
    return [row.server.name, row.app, row.mode, points]


def describe(rows: Sequence[Row], args: argparse.Namespace) -> str:
    executables = [row.server.executable for row in rows]
    summed = f"median of {args.rounds} rounds (range)" if args.rounds > 1 else "1 round"
    return (
        f"POST / with 1 KiB, answered 1 KiB; wrk -t1 -c{args.connections} on CPU {LOAD_CPU},"
        f" one worker on CPU {SERVER_CPU}; {args.warmup}s warm-up; {summed}.\n"
        f"{machine.software(executables)}."
    )


def report(rows: Sequence[Row], args: argparse.Namespace) -> dict[str, Any]:
    results = [
        {
            "server": row.server.name,
            "app": row.app,
            "connection": row.mode,
            "problem": row.problem or None,
            "samples": [asdict(sample) for sample in row.samples],
        }
        for row in rows
    ]
    settings = {k: v for k, v in vars(args).items() if k not in ("json", "script")}
    return {"settings": settings, "python": sys.version.split()[0], "results": results}


# -- main --------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = options.parser(__doc__)
    add = parser.add_argument
    add("--requests", type=int, default=1_000_000, help="requests per soak (1000000)")
    add("--servers", type=options.names(list(SERVERS)), default=["twincorn", "uvicorn"],
        help=f"comma-separated, among {', '.join(SERVERS)} (twincorn,uvicorn)")  # fmt: skip
    add("--apps", type=options.names(APPS), default=list(APPS), help="asgi,wsgi (both)")
    add("--modes", type=options.names(MODES), default=list(MODES), help="keep-alive,close (both)")
    add("--connections", type=int, default=64, help="wrk connections (64)")
    add("--warmup", type=int, default=3, help="seconds of load before the start figure (3)")
    add("--pause", type=float, default=2.0, help="seconds of quiet before each figure (2)")
    add("--checkpoints", type=int, default=10, help="figures along the way (10)")
    add("--max-burst", type=int, default=60, help="longest wrk burst, seconds (60)")
    add("--rounds", type=int, default=1, help="soaks per combination, median shown (1)")
    options.add_output(
        parser, json="also save the results, with the trends", markdown="print markdown tables"
    )
    args = parser.parse_args(argv)
    if min(args.requests, args.connections, args.checkpoints, args.max_burst, args.rounds) < 1:
        parser.error("--requests, --connections, --checkpoints, --max-burst, --rounds must be > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not machine.ready("wrk"):
        return 2
    groups = rows_for(args)
    rows = [row for group in groups for row in group]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(POST_1K)
        script.flush()
        args.script = Path(script.name)
        if not servers.measure_all(lambda: run(groups, args)):
            return 130
    print(describe(rows, args), end="\n\n")
    table = [cells(row, args) for row in rows]
    print(rounds.render(COLUMNS, table, args.markdown), end="\n\n")
    trend_columns = ("server", "app", "connection", "RSS MiB after N requests")
    print(rounds.render(trend_columns, [trend_cells(row) for row in rows], args.markdown))
    if args.json:
        args.json.write_text(json.dumps(report(rows, args), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
