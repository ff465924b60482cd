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
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "tests"  # restart_apps.py
sys.path.insert(0, str(APPS))

from keepalive import KeepAliveLoad  # noqa: E402

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
SERVER_CPU, LOAD_CPU = 0, 1
READY_TIMEOUT = 20.0
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


class RunFailed(Exception):
    """The server did not come up."""


# -- processes ----------------------------------------------------------------


def children(pid: int) -> set[int]:
    """The live child processes of `pid` (read from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid and fields[0] != "Z":
                    found.add(int(entry.name))
    return found


def workers(pid: int) -> set[int]:
    """The worker processes of the master `pid` (not multiprocessing's
    resource tracker, which uvicorn's supervisor also starts)."""
    found = set()
    for child in children(pid):
        with contextlib.suppress(OSError):
            if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes():
                found.add(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def answers(port: int) -> bool:
    """True once GET / on a new connection returns 200."""
    conn = http.client.HTTPConnection(HOST, port, timeout=2.0)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def started(setup: Setup, event: str, port: int, folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The server, ready with its 2 workers, in a session of its own (so
    that the whole group, a new master of USR2's included, is stopped)."""
    fill = {"port": str(port), "apps": str(APPS), "pid": str(folder / "master.pid")}
    command, *args = [a.format(**fill) for a in (*setup.argv, *setup.events[event])]
    argv = ["taskset", "-c", str(SERVER_CPU), str(BIN / command), *args]
    with (folder / "server.log").open("w+b") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            ready = wait_until(lambda: proc.poll() is not None or (
                answers(port) and len(workers(proc.pid)) >= 2), READY_TIMEOUT)
            if not ready or proc.poll() is not None:
                log.seek(0)
                tail = log.read().decode(errors="replace").strip().splitlines()[-1:]
                raise RunFailed(f"did not start: {tail[0] if tail else '(no output)'}")
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            if not wait_until(lambda: proc.poll() is not None, 10):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # a new master left behind


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
    return next((pid for pid in children(old) if workers(pid)), 0)


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
    serving = new != 0 and alive(new) and len(workers(new)) >= 2
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
        port = free_port()
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


def rotated(rows: Sequence[Row], turn: int) -> list[Row]:
    turn %= max(1, len(rows))
    return [*rows[turn:], *rows[:turn]]


def run_rounds(rows: Sequence[Row], args: argparse.Namespace) -> None:
    for turn in range(args.rounds):
        for event in args.events:
            for row in rotated([r for r in rows if r.event == event and not r.problem], turn):
                print(f"round {turn + 1}/{args.rounds}: {event}, {row.setup.label} ...",
                      file=sys.stderr, flush=True)
                try:
                    add(row, measure(row.setup, event, args))
                except RunFailed as exc:
                    row.problem = str(exc)
                    print(f"  {row.problem}", file=sys.stderr, flush=True)


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


def render(table: Sequence[Sequence[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        return "\n".join(lines + ["| " + " | ".join(line) + " |" for line in table])
    widths = [max(len(line[i]) for line in [COLUMNS, *table]) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in [COLUMNS, *table]
    )


# -- main ---------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0,
                        help="seconds of load per run (default 20)")
    parser.add_argument("--clients", type=int, default=8, help="keep-alive clients (8)")
    parser.add_argument("--think", type=float, default=0.0,
                        help="seconds each client waits between its requests (0)")
    parser.add_argument("--rounds", type=int, default=1, help="runs per server and event")
    parser.add_argument("--events", default=",".join(EVENTS),
                        help=f"comma-separated, of {', '.join(EVENTS)}")
    parser.add_argument("--only", default="",
                        help="comma-separated server names (twincorn, gunicorn, uvicorn)")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args(argv)
    args.events = [e for e in args.events.split(",") if e]
    unknown = set(args.events) - set(EVENTS)
    if unknown:
        parser.error(f"unknown events: {', '.join(sorted(unknown))}")
    return args


def chosen(args: argparse.Namespace) -> list[Row]:
    names = [n for n in args.only.split(",") if n]
    rows = []
    for event in args.events:
        for setup in SETUPS:
            if event not in setup.events:
                continue
            if names and not any(setup.name.startswith(n) for n in names):
                continue
            row = Row(event, setup)
            if not (BIN / setup.argv[0]).exists():
                row.problem = f"not installed ({setup.argv[0]})"
            rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("taskset") is None:
        print("taskset is needed (Debian: apt-get install util-linux)", file=sys.stderr)
        return 2
    if len(os.sched_getaffinity(0)) < 2:
        print("two CPUs are needed: the servers on one, the clients on another",
              file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {LOAD_CPU})  # the client threads inherit it
    rows = chosen(args)
    try:
        run_rounds(rows, args)
    except KeyboardInterrupt:
        print("interrupted: the table so far", file=sys.stderr)
    print(render([cells(row) for row in rows], args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
