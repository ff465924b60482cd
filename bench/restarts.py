"""Restarts under keep-alive load: how many requests does each way of ending a
worker lose, for twincorn and for its peers?

Client threads (--clients, 8) each reuse one http.client connection for as
long as the server keeps it open, with no retries (tests/keepalive.py, the
helper of tests/test_restarts.py): every exception on a request, and every
status other than 200, is one failure. Meanwhile the script sends the
server its signals:

    hup           3 HUPs, evenly spaced (replace every worker, one by one)
    usr2          USR2 at a third, TERM of the old master at two thirds
    ttou          twice: TTIN, then TTOU (a worker retired while serving)
    max-requests  --max-requests 1000 with a jitter of 200 (uvicorn: --limit-max-requests)
    lifetime      --max-worker-lifetime 5 (twincorn only)
    memory        --max-worker-memory 64m, the clients on /leak (twincorn only)
    term          slow requests (0.5 s) in flight beside the keep-alive clients,
                  then TERM: failures of requests sent before it are lost requests

Servers, each with 2 workers on tests/restart_apps.py (which answers its pid):
twincorn (WSGI and ASGI), gunicorn with the gthread worker (WSGI,
--threads 4) and uvicorn --workers 2 (ASGI), each for the events it has.
The servers run on CPU 0 (taskset), the clients on CPU 1. With --rounds N,
each event runs every server once per round, in an order rotated round by
round; the table adds the rounds up and lists each round's failures.

    python bench/restarts.py [--duration 20] [--rounds 1] [--only twincorn] [--markdown]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import machine
import options
import procfs
import rounds
import servers
from servers import HOST, ROOT, RunFailed

APPS = ROOT / "tests"  # restart_apps.py and keepalive.py
sys.path.insert(0, str(APPS))

from keepalive import KeepAliveLoad  # noqa: E402

EVENTS = ("hup", "usr2", "ttou", "max-requests", "lifetime", "memory", "term")
SLOW_CLIENTS = 4


@dataclass(frozen=True)
class Setup:
    """A server with 2 workers: its command ({port}, {apps}, {pid} filled in)
    and, per event it supports, the flags that event needs."""

    name: str
    interface: str
    argv: tuple[str, ...]
    events: dict[str, tuple[str, ...]]

    @property
    def label(self) -> str:
        return f"{self.name} ({self.interface})"


def _twincorn(interface: str) -> Setup:
    threads = ("--threads", "4") if interface == "wsgi" else ()
    return Setup("twincorn", interface, (
        "twincorn", "serve", f"restart_apps:{interface}", "--app-dir", "{apps}", "-w", "2",
        "-b", f"{HOST}:{{port}}", "--no-access-log"), {
        "hup": (), "usr2": ("--pid", "{pid}"), "ttou": (),
        "max-requests": ("--max-requests", "1000", "--max-requests-jitter", "200"),
        "lifetime": ("--max-worker-lifetime", "5"), "memory": ("--max-worker-memory", "64m"),
        "term": threads,
    })


SETUPS = (
    _twincorn("wsgi"),
    _twincorn("asgi"),
    Setup("gunicorn gthread", "wsgi", (
        "gunicorn", "-k", "gthread", "--threads", "4", "-w", "2", "-b", f"{HOST}:{{port}}",
        "--pythonpath", "{apps}", "restart_apps:wsgi"), {
        "hup": (), "usr2": ("--pid", "{pid}"), "ttou": (),
        "max-requests": ("--max-requests", "1000", "--max-requests-jitter", "200"),
        "term": (),
    }),
    Setup("uvicorn", "asgi", (
        "uvicorn", "restart_apps:asgi", "--app-dir", "{apps}", "--workers", "2",
        "--host", HOST, "--port", "{port}", "--no-access-log", "--log-level", "warning"), {
        "hup": (), "ttou": (),
        "max-requests": ("--limit-max-requests", "1000", "--limit-max-requests-jitter", "200"),
        "term": (),
    }),
)


@dataclass
class Run:
    """One server under one event: the load and what the event script saw."""

    load: KeepAliveLoad
    slow: KeepAliveLoad | None = None
    term: float = 0.0  # when TERM was sent (the term event)
    exited: float = 0.0  # when the master was seen gone after it
    notes: list[str] = field(default_factory=list)


@dataclass
class Row:
    """One server under one event, added up over the rounds."""

    event: str
    setup: Setup
    ok: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    per_round: list[int] = field(default_factory=list)
    connections: int = 0
    closes: int = 0
    latency_max: float = 0.0
    pids: int = 0
    notes: list[str] = field(default_factory=list)
    problem: str = ""

    @property
    def label(self) -> str:
        return f"{self.event}, {self.setup.label}"


# -- processes ----------------------------------------------------------------


def workers(pid: int) -> set[int]:
    """The worker processes of the master `pid` (not multiprocessing's
    resource tracker, which uvicorn's supervisor also starts)."""
    found = set()
    for child in procfs.children(pid):
        with contextlib.suppress(OSError):
            if b"resource_tracker" not in procfs.command_line(child):
                found.add(child)
    return found


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@contextlib.contextmanager
def started(setup: Setup, event: str, port: int, folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The server, ready with its 2 workers; stopped afterwards, the whole
    group (a new master of USR2's included), after 10 s of grace."""
    fill = {"port": str(port), "apps": str(APPS), "pid": str(folder / "master.pid")}
    argv = [a.format(**fill) for a in (*setup.argv, *setup.events[event])]
    with (
        (folder / "server.log").open("w+b") as log,
        servers.started(argv, log, grace=10) as proc,
    ):

        def ready() -> bool | None:
            return (servers.answers(port) and len(workers(proc.pid)) >= 2) or None

        servers.wait_ready(proc, log, ready)
        yield proc


# -- the events ---------------------------------------------------------------


def pause_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def do_hup(proc: subprocess.Popen[bytes], run: Run, start: float, duration: float,
           folder: Path) -> None:
    for n in range(1, 4):
        pause_until(start + duration * n / 4)
        os.kill(proc.pid, signal.SIGHUP)
    pause_until(start + duration)


def do_ttou(proc: subprocess.Popen[bytes], run: Run, start: float, duration: float,
            folder: Path) -> None:
    for n, sig in enumerate((signal.SIGTTIN, signal.SIGTTOU) * 2, start=1):
        pause_until(start + duration * n / 5)
        os.kill(proc.pid, sig)
    pause_until(start + duration)
    run.notes.append(f"{len(workers(proc.pid))} workers at the end")


def new_master(old: int) -> int:
    """The master that USR2 started: the old one's child that has children
    of its own (gunicorn 27 names its pid file FILE.2 where twincorn and
    older gunicorns rename theirs FILE.oldbin: so not from the files)."""
    return next((pid for pid in procfs.children(old) if workers(pid)), 0)


def do_usr2(proc: subprocess.Popen[bytes], run: Run, start: float, duration: float,
            folder: Path) -> None:
    pause_until(start + duration / 3)
    os.kill(proc.pid, signal.SIGUSR2)
    def new_ready() -> bool:
        new = new_master(proc.pid)
        return new != 0 and len(workers(new)) >= 2

    if not wait_until(new_ready, 20):
        run.notes.append("no new master with 2 workers in 20 s")
    new = new_master(proc.pid)
    pause_until(start + duration * 2 / 3)
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
        run.notes.append(f"old master exited {proc.returncode}")
    except subprocess.TimeoutExpired:
        run.notes.append("old master still running after 30 s")
    pause_until(start + duration)
    serving = new != 0 and procfs.alive(new) and len(workers(new)) >= 2
    run.notes.append("the new master serves" if serving else "no new master serving")


def do_nothing(proc: subprocess.Popen[bytes], run: Run, start: float, duration: float,
               folder: Path) -> None:
    """The recycling limits need no signal: the load runs its time."""
    pause_until(start + duration)


def do_term(proc: subprocess.Popen[bytes], run: Run, start: float, duration: float,
            folder: Path) -> None:
    assert run.slow is not None
    pause_until(start + duration)
    run.term = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(40)
        run.exited = time.monotonic()
        run.notes.append(f"exited {proc.returncode} after {run.exited - run.term:.1f} s")
    except subprocess.TimeoutExpired:
        run.exited = time.monotonic()
        run.notes.append("still running 40 s after TERM")
    time.sleep(0.2)


SCRIPTS: dict[str, Callable[[subprocess.Popen[bytes], Run, float, float, Path], None]] = {
    "hup": do_hup, "usr2": do_usr2, "ttou": do_ttou, "max-requests": do_nothing,
    "lifetime": do_nothing, "memory": do_nothing, "term": do_term,
}


def measure(setup: Setup, event: str, args: argparse.Namespace) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port = servers.free_port()
        with started(setup, event, port, folder) as proc:
            path = "/leak" if event == "memory" else "/"
            run = Run(KeepAliveLoad(port, clients=args.clients, path=path, think=args.think))
            if event == "term":
                run.slow = KeepAliveLoad(port, clients=SLOW_CLIENTS, path="/slow")
            try:
                SCRIPTS[event](proc, run, time.monotonic(), args.duration, folder)
            finally:
                run.load.stop()
                if run.slow is not None:
                    run.slow.stop()
    return run


# -- counting -----------------------------------------------------------------


def counted(run: Run) -> tuple[Counter[str], list[str]]:
    """The failures that count, by kind, and notes on the others.

    For TERM, a request counts if it was sent before TERM; those sent
    after it, while the server was still there, are shown in the notes."""
    if not run.term:
        return run.load.kinds(), []
    kinds: Counter[str] = Counter()
    late: Counter[str] = Counter()
    answered = 0
    for load in (run.load, run.slow):
        assert load is not None
        for f in load.failures:
            if f.sent is not None and f.sent < run.term:
                kinds[f.kind] += 1
            elif f.sent is not None and f.sent < run.exited:
                late[f.kind] += 1
    assert run.slow is not None
    answered = sum(1 for d in run.slow.done if d.sent < run.term < d.at)
    notes = [f"slow requests in flight at TERM answered: {answered}"]
    if late:
        notes.append("sent after TERM, failed while the master ran: "
                     + ", ".join(f"{k} {n}" for k, n in late.most_common()))
    return kinds, notes


def add(row: Row, run: Run) -> None:
    kinds, notes = counted(run)
    load = run.load
    row.ok += load.ok + (run.slow.ok if run.slow else 0)
    row.kinds.update(kinds)
    row.per_round.append(sum(kinds.values()))
    row.connections += load.connections
    row.closes += load.closes
    row.latency_max = max(row.latency_max, load.latency_max())
    row.pids = max(row.pids, len(load.bodies))
    row.notes = [*run.notes, *notes]


def run_rounds(rows: Sequence[Row], args: argparse.Namespace) -> None:
    groups = [[r for r in rows if r.event == event] for event in args.events]
    for _, row in rounds.rounds(args.rounds, groups, lambda r: r.label, lambda r: not r.problem):
        try:
            add(row, measure(row.setup, row.event, args))
        except RunFailed as exc:
            row.problem = str(exc)
            rounds.say(f"  {row.problem}")


# -- the table ----------------------------------------------------------------

COLUMNS = ("event", "interface", "server", "requests", "failed", "by kind", "per round",
           "connections", "said close", "max wait s", "pids", "note")


def cells(row: Row) -> list[str]:
    head = [row.event, row.setup.interface, row.setup.name]
    if row.problem or not row.per_round:
        return [*head, *["-"] * 8, row.problem or "not run"]
    kinds = ", ".join(f"{k} {n}" for k, n in row.kinds.most_common()) or "-"
    return [*head, f"{row.ok:,}", str(sum(row.kinds.values())), kinds,
            "+".join(map(str, row.per_round)), str(row.connections), str(row.closes),
            f"{row.latency_max:.2f}", str(row.pids), "; ".join(row.notes)]


# -- main ---------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = options.parser(__doc__)
    add = parser.add_argument
    add("--duration", type=float, default=20.0, help="seconds of load per run (default 20)")
    add("--clients", type=int, default=8, help="keep-alive clients (8)")
    add("--think", type=float, default=0.0,
        help="seconds each client waits between its requests (0)")  # fmt: skip
    add("--rounds", type=int, default=1, help="runs per server and event")
    add("--events", type=options.names(EVENTS), default=list(EVENTS),
        help=f"comma-separated, of {', '.join(EVENTS)}")  # fmt: skip
    add("--only", default="", help="comma-separated server names (twincorn, gunicorn, uvicorn)")
    options.add_output(parser)
    return parser.parse_args(argv)


def chosen(args: argparse.Namespace) -> list[Row]:
    names = [n for n in args.only.split(",") if n]
    rows = []
    for event in args.events:
        for setup in SETUPS:
            if event not in setup.events:
                continue
            if names and not any(setup.name.startswith(n) for n in names):
                continue
            rows.append(Row(event, setup, problem=servers.unavailable(setup.argv[0])))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not machine.ready():
        return 2
    machine.use_load_cpu()  # the client threads inherit it
    rows = chosen(args)
    servers.measure_all(lambda: run_rounds(rows, args), "interrupted: the table so far")
    print(rounds.render(COLUMNS, [cells(row) for row in rows], args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
