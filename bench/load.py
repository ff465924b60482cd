"""twincorn load beside Locust and wrk: requests per second per core.

One fast local server (a few lines of uvloop Protocol that answer every
request with the same 200, pinned to CPU 0) and, one after the other, each
load tester pinned to CPU 1 for the same time with the same number of
connections:

    twincorn load URL            the lean loop (no scenario file)
    twincorn load -f (User)      a scenario's User class, `await self.client.get("/")`
    Locust FastHttpUser          locust --headless, one process
    Locust HttpUser              the same, with python-requests
    wrk -t1                      C, the ceiling

How to read the table:

- requests/s is what the tester completed per second of the run.
- client CPU is the share of its one core the tester used while loading
  (sampled from /proc every 0.2 s, from 2 s after its start to its end, so
  that start-up, imports included, is left out). A tester below 100% was
  waiting, on the server or on a neighbour of this shared machine; so
- requests per CPU-second (requests/s divided by that share) is the number
  to compare: what one whole core of each tester would do. It is "requests
  per second per core" even when the core was not the limit.
- server CPU shows whether the server was the limit (near 100%).

The ratios compare twincorn's lean loop with FastHttpUser (the aim: at
least 4x) and wrk with twincorn (the aim: at most 3x), per CPU-second.

    python bench/load.py [--duration 10] [--connections 50] [--markdown]

Locust comes from the `bench` extra (`pip install -e '.[bench]'`), or
`--locust PATH`; wrk and taskset from Debian (`apt-get install wrk`).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import machine
import options
import procfs
import rounds
import servers
import wrk
from machine import LOAD_CPU, SERVER_CPU
from servers import BIN, HOST, ROOT, RunFailed

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!"

USER_SCENARIO = """\
from twincorn.load import User, task

class Hello(User):
    @task
    async def index(self):
        await self.client.get("/")
"""
LOCUST_FAST = """\
from locust import FastHttpUser, task

class Hello(FastHttpUser):
    @task
    def index(self):
        self.client.get("/")
"""
LOCUST_PLAIN = LOCUST_FAST.replace("FastHttpUser", "HttpUser")


# -- the server ---------------------------------------------------------------------


class _Answer(asyncio.Protocol):
    """Answers each request head (ended by an empty line) with RESPONSE."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.tail = b""

    def data_received(self, data: bytes) -> None:
        data = self.tail + data
        count = data.count(b"\r\n\r\n")
        self.tail = data[data.rfind(b"\r\n\r\n") + 4 :] if count else data[-3:]
        if count:
            self.transport.write(RESPONSE * count)


def serve(port: int) -> None:
    """Run the fast server (in its own process, pinned to CPU 0 by taskset)."""
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Answer, HOST, port, backlog=4096)
        await server.serve_forever()

    uvloop.run(main())


# -- the clients --------------------------------------------------------------------


@dataclass
class Row:
    client: str
    requests: int = 0
    seconds: float = 0.0  # of load, as the tester measured it
    client_share: float = 0.0  # of its core, while loading (0 to 1)
    server_share: float = 0.0  # of the server's core, meanwhile
    note: str = ""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def per_cpu_second(self) -> float:
        return self.rps / self.client_share if self.client_share else 0.0


def run_client(name: str, argv: list[str], server_pid: int, timeout: float
               ) -> tuple[Row, str]:
    """Run a tester pinned to CPU 1 (taskset execs it: same pid), sampling
    its CPU time and the server's every 0.2 s."""
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(machine.pinned(LOAD_CPU, argv), cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT, text=True)
        started = time.monotonic()
        samples: list[tuple[float, float, float]] = []  # (time, client cpu, server cpu)
        while proc.poll() is None and time.monotonic() - started < timeout:
            try:
                samples.append((time.monotonic(), procfs.cpu_seconds(proc.pid),
                                procfs.cpu_seconds(server_pid)))
            except (OSError, IndexError, ValueError):
                pass  # exiting
            time.sleep(0.2)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        log.seek(0)
        output = log.read()
    row = Row(name)
    steady = [s for s in samples if s[0] - started >= 2.0]
    if len(steady) >= 2:
        (t0, c0, s0), (t1, c1, s1) = steady[0], steady[-1]
        row.client_share = (c1 - c0) / (t1 - t0)
        row.server_share = (s1 - s0) / (t1 - t0)
    if proc.returncode not in (0, 1):
        row.note = f"exit status {proc.returncode}: {output.strip()[-300:]}"
    return row, output


def twincorn_row(name: str, args: list[str], url: str, duration: float, connections: int,
                 server_pid: int, work: Path) -> Row:
    out = work / f"{name.replace(' ', '_').replace('/', '')}.json"
    argv = [sys.executable, "-m", "twincorn", "load", *args, "-u", str(connections),
            "-t", f"{duration}s", "-q", "--json", str(out)]
    row, _ = run_client(name, argv, server_pid, duration + 30)
    if out.exists():
        data = json.loads(out.read_text())
        row.requests = data["requests"]
        row.seconds = data["duration_s"]  # the measured run, not the process's start-up
        if data["failures"]:
            row.note = f"{data['failures']} failures"
    return row


def locust_row(name: str, locust: str | None, locustfile: str, url: str, duration: float,
               connections: int, server_pid: int, work: Path) -> Row:
    if locust is None:
        return Row(name, note="not installed: pip install -e '.[bench]' or --locust PATH")
    file = work / f"{name.split()[-1]}.py"
    file.write_text(locustfile)
    prefix = work / name.split()[-1]
    argv = [locust, "-f", str(file), "--headless", "-u", str(connections), "-r",
            str(connections), "-t", f"{duration:g}s", "--host", url.rstrip("/"),
            "--only-summary",
            "--csv", str(prefix), "--loglevel", "WARNING"]
    row, output = run_client(name, argv, server_pid, duration + 60)
    stats = Path(f"{prefix}_stats.csv")
    if not stats.exists():
        row.note = row.note or f"no stats written: {output.strip()[-300:]}"
        return row
    for line in csv.DictReader(stats.read_text().splitlines()):
        if line["Name"] == "Aggregated":
            row.requests = int(line["Request Count"])
            row.seconds = row.requests / float(line["Requests/s"]) if row.requests else 0
            if int(line["Failure Count"]):
                row.note = f"{line['Failure Count']} failures"
    return row


def wrk_row(url: str, duration: float, connections: int, server_pid: int) -> Row:
    name = "wrk -t1"
    if shutil.which("wrk") is None:
        return Row(name, note="not installed: apt-get install wrk")
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", url]
    row, output = run_client(name, argv, server_pid, duration + 30)
    try:
        result = wrk.parse(output)
    except RunFailed:
        return row
    row.requests, row.seconds = result.requests, result.seconds
    return row


def find_locust(given: str | None) -> str | None:
    if given:
        return given
    local = BIN / "locust"
    return str(local) if local.exists() else shutil.which("locust")


# -- the table ----------------------------------------------------------------------


def ratio(a: Row | None, b: Row | None) -> float | None:
    if a is None or b is None or not a.per_cpu_second or not b.per_cpu_second:
        return None
    return a.per_cpu_second / b.per_cpu_second


COLUMNS = ("client", "requests/s", "client CPU", "requests per CPU-second", "server CPU", "note")


def cells(r: Row) -> list[str]:
    if not r.requests:
        return [r.client, "", "", "", "", r.note]
    return [
        r.client,
        f"{r.rps:,.0f}",
        f"{100 * r.client_share:.0f}%",
        f"{r.per_cpu_second:,.0f}",
        f"{100 * r.server_share:.0f}%",
        r.note,
    ]


def table(rows: list[Row], duration: float) -> str:
    lines = [rounds.render(COLUMNS, [cells(r) for r in rows], True, numeric=COLUMNS[1:5])]
    by_name = {r.client: r for r in rows}
    lean = by_name.get("twincorn load URL")
    fast = by_name.get("Locust FastHttpUser")
    wrk = by_name.get("wrk -t1")
    lines.append("")
    lean_fast = ratio(lean, fast)
    wrk_lean = ratio(wrk, lean)
    if lean_fast is not None:
        verdict = "met" if lean_fast >= 4 else "not met"
        lines.append(f"- twincorn / FastHttpUser, per CPU-second: **{lean_fast:.1f}x** "
                     f"(aim: at least 4x, {verdict})")
    users_fast = ratio(by_name.get("twincorn load -f (User)"), fast)
    if users_fast is not None:
        lines.append(f"- twincorn with a User class / FastHttpUser: {users_fast:.1f}x")
    if wrk_lean is not None:
        verdict = "met" if wrk_lean <= 3 else "not met"
        lines.append(f"- wrk / twincorn, per CPU-second: **{wrk_lean:.2f}x** "
                     f"(aim: at most 3x, {verdict})")
    lines.append(f"- {duration:g} s per client; CPU {SERVER_CPU} serves, CPU {LOAD_CPU} loads.")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = options.parser(__doc__)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per client")
    parser.add_argument("--connections", type=int, default=50, help="users / connections")
    parser.add_argument("--only", action="append", default=None,
                        help="run only clients whose name contains this (repeat)")
    parser.add_argument("--locust", help="the locust executable (default: beside python)")
    options.add_output(parser, json="also write the rows to FILE",
                       markdown="(the table is markdown)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    return parser.parse_args()


Plan = list[tuple[str, Callable[[], Row]]]


def plan(url: str, args: argparse.Namespace, pid: int, work: Path) -> Plan:
    """The testers, by name, each a call that runs it."""
    (work / "hello_user.py").write_text(USER_SCENARIO)
    user = ["-f", str(work / "hello_user.py"), "-H", url]
    locust = find_locust(args.locust)
    d, c = args.duration, args.connections
    return [
        ("twincorn load URL",
         lambda: twincorn_row("twincorn load URL", [url], url, d, c, pid, work)),
        ("twincorn load -f (User)",
         lambda: twincorn_row("twincorn load -f (User)", user, url, d, c, pid, work)),
        ("Locust FastHttpUser",
         lambda: locust_row("Locust FastHttpUser", locust, LOCUST_FAST, url, d, c, pid, work)),
        ("Locust HttpUser",
         lambda: locust_row("Locust HttpUser", locust, LOCUST_PLAIN, url, d, c, pid, work)),
        ("wrk -t1", lambda: wrk_row(url, d, c, pid)),
    ]  # fmt: skip


def run_all(rows: list[Row], args: argparse.Namespace) -> None:
    """The fast server on CPU 0, and each tester chosen in turn against it."""
    port = servers.free_port()
    url = f"http://{HOST}:{port}/"
    with (
        tempfile.TemporaryFile() as log,
        servers.started([sys.executable, __file__, "--serve", str(port)], log) as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        servers.wait_ready(server, log, servers.answering(port))
        for name, run in plan(url, args, server.pid, Path(tmp)):
            if args.only and not any(o.lower() in name.lower() for o in args.only):
                continue
            rounds.say(f"running {name} for {args.duration:g} s...")
            rows.append(run())


def main() -> int:
    args = parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    if not machine.ready():
        return 2
    rows: list[Row] = []
    try:
        if not servers.measure_all(lambda: run_all(rows, args)):
            return 130
    except RunFailed as exc:
        print(f"the bench server did not start: {exc}", file=sys.stderr)
        return 2
    print(table(rows, args.duration))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
