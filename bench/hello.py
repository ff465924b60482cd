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
import atexit
import contextlib
import http.client
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
SERVER_CPU = "0"
WRK_CPU = "1"
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0

# The project's aims, as (app, peer) -> minimum twincorn/peer ratio.
AIMS = {("asgi", "uvicorn"): 1.5, ("wsgi", "gunicorn sync"): 6.0}


@dataclass(frozen=True)
class Server:
    """One server set-up: an executable next to sys.executable, and its arguments.

    `{host}` and `{port}` in args are filled in at start. The executable is
    also the distribution whose version is reported. `module`, if set, must
    be importable for the set-up to run (e.g. gunicorn's asgi worker).
    """

    name: str
    app: str
    executable: str
    args: str
    module: str | None = None
    note: str = ""


SERVERS = (
    Server(
        "twincorn",
        "asgi",
        "twincorn",
        "serve examples.asgi.app:app --no-access-log --bind {host}:{port}",
    ),
    Server(
        "uvicorn",
        "asgi",
        "uvicorn",
        "examples.asgi.app:app --loop uvloop --http httptools --no-access-log"
        " --log-level warning --host {host} --port {port}",
    ),
    Server(
        "gunicorn asgi",
        "asgi",
        "gunicorn",
        "-k asgi -w 1 -b {host}:{port} examples.asgi.app:app",
        module="gunicorn.workers.gasgi",
    ),
    Server(
        "granian",
        "asgi",
        "granian",
        "--interface asgi --workers 1 --loop uvloop --log-level warning"
        " --host {host} --port {port} examples.asgi.app:app",
    ),
    Server(
        "twincorn",
        "wsgi",
        "twincorn",
        "serve examples.wsgi.app:app --no-access-log --bind {host}:{port}",
    ),
    Server(
        "gunicorn sync",
        "wsgi",
        "gunicorn",
        "-w 1 -b {host}:{port} examples.wsgi.app:app",
        note="no keep-alive",
    ),
    Server(
        "granian",
        "wsgi",
        "granian",
        "--interface wsgi --workers 1 --log-level warning"
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

    def median(self, name: str) -> float:
        values: list[float] = [getattr(sample, name) for sample in self.samples]
        return statistics.median(values)

    def errors(self) -> int:
        return sum(sample.errors for sample in self.samples)


class RunFailed(Exception):
    """A server did not come up, or wrk could not measure it."""


# -- processes ---------------------------------------------------------------

_live: set[subprocess.Popen[bytes]] = set()


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, then SIGKILL it if it lingers."""
    try:
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
    finally:
        _live.discard(proc)


def _signal_group(proc: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signum)


def stop_all() -> None:
    for proc in list(_live):
        stop(proc)


def start(server: Server, port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """Start a server pinned to SERVER_CPU, in its own session (so Ctrl-C
    reaches only this script, which then stops it)."""
    args = [arg.format(host=HOST, port=port) for arg in server.args.split()]
    argv = ["taskset", "-c", SERVER_CPU, str(BIN / server.executable), *args]
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _live.add(proc)
    return proc


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def answers(port: int) -> bool:
    """True once the port accepts a connection and GET / returns 200."""
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            pass
        conn = http.client.HTTPConnection(HOST, port, timeout=2.0)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            return response.status == 200
        finally:
            conn.close()
    except (OSError, http.client.HTTPException):
        return False


def wait_ready(proc: subprocess.Popen[bytes], port: int, log: IO[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RunFailed(f"exited with code {proc.returncode}: {last_line(log)}")
        if answers(port):
            return
        time.sleep(0.05)
    raise RunFailed(f"not ready after {READY_TIMEOUT:.0f}s: {last_line(log)}")


def last_line(log: IO[bytes]) -> str:
    log.flush()
    log.seek(0)
    lines = log.read().decode(errors="replace").strip().splitlines()
    return lines[-1].strip() if lines else "(no output)"


@contextlib.contextmanager
def running(server: Server, port: int) -> Iterator[str]:
    """A started and ready server, as its URL; always stopped afterwards."""
    with tempfile.TemporaryFile() as log:
        proc = start(server, port, log)
        try:
            wait_ready(proc, port, log)
            yield f"http://{HOST}:{port}/"
        finally:
            stop(proc)


# -- wrk ---------------------------------------------------------------------

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_PERCENTILE = r"^\s*{}%\s+([\d.]+)(us|ms|s|m)\s*$"
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)


def wrk(url: str, seconds: int, args: argparse.Namespace) -> str:
    load = f"-t {args.threads} -c {args.connections} -d {seconds}s --latency {url}"
    argv = ["taskset", "-c", WRK_CPU, "wrk", *load.split()]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        raise RunFailed(f"wrk did not finish within {seconds + 30}s") from None
    if done.returncode != 0:
        raise RunFailed(f"wrk exited with code {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def percentile_ms(output: str, percent: int) -> float:
    match = re.search(_PERCENTILE.format(percent), output, re.MULTILINE)
    if match is None:
        raise RunFailed(f"no {percent}% latency in wrk's output")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> Sample:
    rps = _RPS.search(output)
    if rps is None:
        raise RunFailed(f"no Requests/sec in wrk's output: {output.strip()!r}")
    socket_errors = _SOCKET_ERRORS.search(output)
    non_2xx = _NON_2XX.search(output)
    errors = sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return Sample(float(rps.group(1)), percentile_ms(output, 50), percentile_ms(output, 99), errors)


def measure(server: Server, args: argparse.Namespace) -> Sample:
    with running(server, free_port()) as url:
        if args.warmup > 0:
            wrk(url, args.warmup, args)
        return parse_wrk(wrk(url, args.duration, args))


# -- the rounds --------------------------------------------------------------


def why_unavailable(server: Server) -> str:
    """'' if the server can be tried, else why not."""
    if not (BIN / server.executable).exists():
        return "not installed"
    if server.module and importlib.util.find_spec(server.module) is None:
        return f"unavailable (no {server.module})"
    return ""


def rotated(rows: Sequence[Row], turn: int) -> list[Row]:
    if not rows:
        return []
    turn %= len(rows)
    return [*rows[turn:], *rows[:turn]]


def run_rounds(rows: Sequence[Row], args: argparse.Namespace) -> None:
    for turn in range(args.rounds):
        for row in rotated([row for row in rows if not row.problem], turn):
            label = f"{row.server.name} ({row.server.app})"
            print(f"round {turn + 1}/{args.rounds}: {label} ...", file=sys.stderr, flush=True)
            try:
                row.samples.append(measure(row.server, args))
            except RunFailed as exc:
                when = f"failed in round {turn + 1}" if turn else "unavailable"
                row.problem = f"{when}: {exc}"
                print(f"  {label} {row.problem}", file=sys.stderr, flush=True)


# -- the table ---------------------------------------------------------------

COLUMNS = ("app", "server", "requests/s", "p50 ms", "p99 ms", "errors", "twincorn/peer",
           "spread", "note")


def round_ratios(rows: Sequence[Row], row: Row) -> list[float]:
    """twincorn's requests/s over this peer's, round by round (same app):
    each pair measured minutes apart at most, so a slow spell of a shared
    machine moves one ratio rather than one server's median."""
    if row.server.name == "twincorn" or not row.measured:
        return []
    same_app = (r for r in rows if r.server.app == row.server.app)
    ours = next((r for r in same_app if r.server.name == "twincorn"), None)
    if ours is None or not ours.measured:
        return []
    return [a.rps / b.rps for a, b in zip(ours.samples, row.samples, strict=False) if b.rps]


def ratio(rows: Sequence[Row], row: Row) -> float | None:
    """The median of the per-round ratios."""
    values = round_ratios(rows, row)
    return statistics.median(values) if values else None


def spread(rows: Sequence[Row], row: Row) -> str:
    values = round_ratios(rows, row)
    return f"{min(values):.2f}-{max(values):.2f}" if len(values) > 1 else "-"


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
        spread(rows, row),
        note(row, value),
    ]


def render_markdown(table: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(line) + " |" for line in table]
    return "\n".join(lines)


def render_text(table: Sequence[Sequence[str]]) -> str:
    widths = [max(len(line[i]) for line in [COLUMNS, *table]) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in [COLUMNS, *table]
    )


def version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def describe(rows: Sequence[Row], args: argparse.Namespace) -> str:
    python = ".".join(map(str, sys.version_info[:3]))
    found = {row.server.executable: version(row.server.executable) for row in rows}
    versions = ", ".join(f"{name} {v}" for name, v in found.items() if v)
    median = f"median of {args.rounds} rounds" if args.rounds > 1 else "1 round"
    return (
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency "
        f"(+{args.warmup}s warm-up), {median}; server on CPU {SERVER_CPU}, wrk on CPU {WRK_CPU}.\n"
        f"Python {python}; {versions}."
    )


def report(rows: Sequence[Row], args: argparse.Namespace) -> dict[str, Any]:
    results = []
    for row in rows:
        value = ratio(rows, row)
        results.append(
            {
                "server": row.server.name,
                "app": row.server.app,
                "version": version(row.server.executable),
                "problem": row.problem or None,
                "rps": row.median("rps") if row.measured else None,
                "p50_ms": row.median("p50_ms") if row.measured else None,
                "p99_ms": row.median("p99_ms") if row.measured else None,
                "errors": row.errors() if row.measured else None,
                "twincorn_over_peer": value,
                "ratio_per_round": round_ratios(rows, row),
                "samples": [asdict(sample) for sample in row.samples],
            }
        )
    names = ("duration", "connections", "threads", "warmup", "rounds")
    settings = {name: getattr(args, name) for name in names}
    return {"settings": settings, "python": sys.version.split()[0], "results": results}


# -- main --------------------------------------------------------------------


def missing_tools() -> list[str]:
    problems = []
    if shutil.which("wrk") is None:
        problems.append("wrk not found: install it with `apt-get install wrk` (Debian, Ubuntu).")
    if shutil.which("taskset") is None:
        problems.append("taskset not found: it is in util-linux (`apt-get install util-linux`).")
    elif not {int(SERVER_CPU), int(WRK_CPU)} <= os.sched_getaffinity(0):
        problems.append(f"needs CPUs {SERVER_CPU} and {WRK_CPU}: one for the server, one for wrk.")
    return problems


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run (10)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of load before each run (2)")
    parser.add_argument("--rounds", type=int, default=1, help="runs per server, median shown (1)")
    parser.add_argument("--only", choices=("asgi", "wsgi"), help="only the ASGI or the WSGI app")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also save the results as JSON")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args(argv)
    if min(args.duration, args.connections, args.threads, args.rounds) < 1 or args.warmup < 0:
        parser.error("--duration, --connections, --threads, --rounds must be > 0, --warmup >= 0")
    if args.connections < args.threads:
        parser.error("wrk needs at least as many connections as threads")
    return args


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    problems = missing_tools()
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    rows = [Row(s, why_unavailable(s)) for s in SERVERS if args.only in (None, s.app)]
    try:
        run_rounds(rows, args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        stop_all()
    table = [cells(rows, row) for row in rows]
    print(describe(rows, args), end="\n\n")
    print(render_markdown(table) if args.markdown else render_text(table))
    if args.json:
        args.json.write_text(json.dumps(report(rows, args), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
