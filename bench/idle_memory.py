"""Memory per idle keep-alive connection, twincorn beside uvicorn and granian.

One worker of each server (on CPU 0) serves bench/apps/echo1k.py's ASGI
app. The client (this script, on CPU 1) opens --connections connections one
after the other; each sends one `GET /` and reads the whole answer, so that
the server has made all its per-connection state, then stays open and idle.
The worker's resident memory (VmRSS) is read before (after a warm-up of
short-lived connections and a full garbage collection), with all the
connections open (after a pause), and again once they are closed:

    per connection = (RSS with them open - RSS before) / connections

Kernel socket buffers are not in a process's RSS: this is the server's own
memory. The servers alternate over --rounds rounds (rotated order); the
table shows the median per server and the range.

    python bench/idle_memory.py [--connections 10000] [--rounds 3] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import app_worker
import machine
import options
import procfs
import rounds
import servers
from machine import LOAD_CPU, SERVER_CPU
from servers import HOST, RunFailed, Server

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: idle-memory\r\n\r\n"
IDLE_SECONDS = 600  # keep-alive timeouts set longer than any measurement


# Each command's {limit}: the connections allowed, more than the client opens.
SERVERS = {
    server.name: server
    for server in (
        Server(
            "twincorn",
            "asgi",
            "twincorn serve echo1k:asgi --interface asgi --workers 1 --no-access-log"
            f" --worker-connections {{limit}} --timeout-keep-alive {IDLE_SECONDS}"
            " --bind {host}:{port}",
        ),
        Server(
            "twincorn-asyncio",
            "asgi",
            "twincorn serve echo1k:asgi --interface asgi --workers 1 --no-access-log"
            f" --worker-connections {{limit}} --timeout-keep-alive {IDLE_SECONDS}"
            " --loop asyncio --bind {host}:{port}",
        ),
        Server(
            "uvicorn",
            "asgi",
            "uvicorn echo1k:asgi --interface asgi3 --loop uvloop --http httptools"
            f" --no-access-log --log-level warning --timeout-keep-alive {IDLE_SECONDS}"
            " --backlog {limit} --host {host} --port {port}",
        ),
        # granian closes a connection that sends no request head for this long
        # (at most 60 s): the measurement must take less.
        Server(
            "granian",
            "asgi",
            "granian --interface asgi --workers 1 --loop uvloop --log-level warning"
            " --http 1 --http1-header-read-timeout 60000 --backlog {limit}"
            " --host {host} --port {port} echo1k:asgi",
        ),
    )
}


@dataclass
class Sample:
    """One round of one server; memory in KiB."""

    connections: int
    open_seconds: float
    rss_before_kib: int
    rss_open_kib: int
    rss_closed_kib: int
    blocks_before: int
    blocks_open: int
    blocks_closed: int  # Python blocks once the connections are closed
    blocks_collected: int  # and after a full collection
    closed_by_server: int
    # With --breakdown: objects the collector tracks, by type, as
    # [count, shallow bytes] with the connections open less before.
    types_growth: dict[str, list[int]] = field(default_factory=dict)

    @property
    def per_connection_kib(self) -> float:
        return (self.rss_open_kib - self.rss_before_kib) / self.connections

    @property
    def kept_per_connection_kib(self) -> float:
        return (self.rss_closed_kib - self.rss_before_kib) / self.connections

    @property
    def blocks_per_connection(self) -> float:
        return (self.blocks_open - self.blocks_before) / self.connections

    @property
    def blocks_kept_per_connection(self) -> float:
        return (self.blocks_closed - self.blocks_before) / self.connections

    @property
    def blocks_leaked_per_connection(self) -> float:
        return (self.blocks_collected - self.blocks_before) / self.connections


@dataclass
class Row:
    server: Server
    problem: str = ""
    samples: list[Sample] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.server.name


# -- the client ----------------------------------------------------------------


def exchange(port: int) -> socket.socket:
    """A new connection that has sent one request and read its whole answer."""
    sock = socket.create_connection((HOST, port), timeout=10.0)
    try:
        sock.sendall(REQUEST)
        data = b""
        while b"\r\n\r\n" not in data:
            data += receive(sock)
        head, _, body = data.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if not status.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
            raise RunFailed(f"answered {status!r}")
        length = content_length(head)
        while len(body) < length:
            body += receive(sock)
        return sock
    except BaseException:
        sock.close()
        raise


def receive(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        raise RunFailed("the server closed a connection before answering")
    return chunk


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise RunFailed("an answer without Content-Length")


def closed_by_server(socks: Sequence[socket.socket]) -> int:
    """How many of the idle connections the server has closed (readable:
    end of file, or anything else it sent unasked)."""
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        return len(selector.select(timeout=0))


def warm_up(port: int, count: int) -> None:
    """Short-lived connections, one at a time: the server's code paths run,
    without leaving many connections' worth of memory behind."""
    for _ in range(count):
        exchange(port).close()


# -- one measurement -----------------------------------------------------------


def measure(server: Server, args: argparse.Namespace) -> Sample:
    port = servers.free_port()
    command = server.command(port, limit=args.connections + 100)
    socks: list[socket.socket] = []
    with (
        tempfile.TemporaryFile() as log,
        servers.started(command, log, path=[app_worker.APPS]) as proc,
    ):
        try:
            pid = app_worker.find(proc, port, log)
            warm_up(port, args.warmup)
            app_worker.stats(port, query="collect")  # the warm-up's garbage, if any
            time.sleep(args.pause)
            before, blocks_before = procfs.rss_kib(pid), app_worker.stats(port)["blocks"]
            types_before = types(port) if args.breakdown else {}
            started = time.monotonic()
            for _ in range(args.connections):
                socks.append(exchange(port))
            open_seconds = time.monotonic() - started
            time.sleep(args.pause)
            rss_open, blocks_open = procfs.rss_kib(pid), app_worker.stats(port)["blocks"]
            types_open = types(port) if args.breakdown else {}
            closed = closed_by_server(socks)
            for sock in socks:
                sock.close()
            socks.clear()
            time.sleep(args.pause)
            rss_closed, blocks_closed = procfs.rss_kib(pid), app_worker.stats(port)["blocks"]
            blocks_collected = app_worker.stats(port, query="collect")["blocks"]
            return Sample(
                args.connections, open_seconds, before, rss_open, rss_closed,
                blocks_before, blocks_open, blocks_closed, blocks_collected, closed,
                difference(types_open, types_before),
            )  # fmt: skip
        finally:
            for sock in socks:
                sock.close()


def types(port: int) -> dict[str, list[int]]:
    found: dict[str, list[int]] = app_worker.stats(port, timeout=60.0, query="types")["types"]
    return found


def difference(after: dict[str, list[int]], before: dict[str, list[int]]) -> dict[str, list[int]]:
    zero = [0, 0]
    return {
        name: [count - before.get(name, zero)[0], size - before.get(name, zero)[1]]
        for name, (count, size) in after.items()
    }


def run(rows: Sequence[Row], args: argparse.Namespace) -> None:
    for turn, row in rounds.rounds(args.rounds, [rows], lambda r: r.label, lambda r: not r.problem):
        try:
            sample = measure(row.server, args)
        except (RunFailed, OSError) as exc:
            row.problem = f"failed in round {turn}: {exc}"
            rounds.say(f"  {row.label} {row.problem}")
            continue
        row.samples.append(sample)
        rounds.say(
            f"  {row.label}: {sample.per_connection_kib:.2f} KiB per connection"
            f" ({sample.rss_before_kib / 1024:.1f} -> {sample.rss_open_kib / 1024:.1f} MiB,"
            f" {sample.closed_by_server} closed by the server)"
        )


# -- the table -----------------------------------------------------------------

COLUMNS = (
    "server", "RSS before MiB", "RSS open MiB", "KiB per connection", "twincorn/peer",
    "Python blocks per conn", "after close: RSS KiB per conn", "blocks per conn",
    "blocks after gc", "closed by server", "note",
)  # fmt: skip


def ratios(rows: Sequence[Row], row: Row) -> list[float]:
    """twincorn's per-connection memory over this peer's, round by round."""
    ours = next((r for r in rows if r.server.name == "twincorn"), None)
    if ours is None or row.server.name.startswith("twincorn") or not row.samples:
        return []
    return rounds.ratios(
        [s.per_connection_kib for s in ours.samples], [s.per_connection_kib for s in row.samples]
    )


def cells(rows: Sequence[Row], row: Row) -> list[str]:
    if not row.samples:
        return [row.server.name, *["-"] * (len(COLUMNS) - 2), row.problem or "not run"]
    samples = row.samples
    median = statistics.median
    shares = ratios(rows, row)
    return [
        row.server.name,
        f"{median([s.rss_before_kib / 1024 for s in samples]):.1f}",
        f"{median([s.rss_open_kib / 1024 for s in samples]):.1f}",
        rounds.median_range([s.per_connection_kib for s in samples]),
        rounds.median_range(shares) if shares else "-",
        f"{median([s.blocks_per_connection for s in samples]):.1f}",
        f"{median([s.kept_per_connection_kib for s in samples]):.2f}",
        f"{median([s.blocks_kept_per_connection for s in samples]):.1f}",
        f"{median([s.blocks_leaked_per_connection for s in samples]):.1f}",
        str(sum(s.closed_by_server for s in samples)),
        row.problem,
    ]


def breakdown(row: Row, top: int = 15) -> str:
    """The types that grew most, per connection, in the last round."""
    if not row.samples or not row.samples[-1].types_growth:
        return ""
    sample = row.samples[-1]
    largest = sorted(sample.types_growth.items(), key=lambda item: -item[1][1])[:top]
    lines = [f"{row.server.name}: objects the collector tracks, grown per connection", ""]
    lines += ["| type | objects | bytes (shallow) |", "|---|---|---|"]
    each = sample.connections
    lines += [f"| {name} | {n / each:.2f} | {size / each:.0f} |" for name, (n, size) in largest]
    return "\n".join(lines) + "\n"


def describe(rows: Sequence[Row], args: argparse.Namespace) -> str:
    executables = [row.server.executable for row in rows]
    return (
        f"{args.connections:,} idle keep-alive connections (one GET / each, 1 KiB answers);"
        f" one worker on CPU {SERVER_CPU}, client on CPU {LOAD_CPU};"
        f" median of {args.rounds} rounds (range).\n"
        f"{machine.software(executables)}."
    )


# -- main ----------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = options.parser(__doc__)
    add = parser.add_argument
    names = ", ".join(SERVERS)
    add("--connections", type=int, default=10_000, help="idle connections opened (10000)")
    add("--servers", type=options.names(list(SERVERS)), default=list(SERVERS),
        help=f"comma-separated, among {names} (all)")  # fmt: skip
    add("--rounds", type=int, default=3, help="rounds, servers alternating (3)")
    add("--warmup", type=int, default=500, help="short-lived connections first (500)")
    add("--pause", type=float, default=2.0, help="seconds of quiet before each figure (2)")
    add("--breakdown", action="store_true",
        help="count the worker's objects by type (diagnosis: skews the RSS figures)")  # fmt: skip
    options.add_output(parser, json="also save the results")
    args = parser.parse_args(argv)
    if min(args.connections, args.rounds) < 1 or args.warmup < 0:
        parser.error("--connections and --rounds must be > 0, --warmup >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not machine.ready(nofile=args.connections + 200):
        return 2
    machine.use_load_cpu()
    rows = [Row(SERVERS[name], SERVERS[name].unavailable()) for name in args.servers]
    if not servers.measure_all(lambda: run(rows, args)):
        return 130
    print(describe(rows, args), end="\n\n")
    print(rounds.render(COLUMNS, [cells(rows, row) for row in rows], args.markdown))
    for row in rows if args.breakdown else ():
        print("\n" + breakdown(row), end="")
    if args.json:
        results = {row.server.name: [asdict(s) for s in row.samples] for row in rows}
        settings = {k: v for k, v in vars(args).items() if k != "json"}
        args.json.write_text(json.dumps({"settings": settings, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
