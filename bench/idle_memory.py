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
import os
import resource
import selectors
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import serving
from serving import HOST, LOAD_CPU, RunFailed

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: idle-memory\r\n\r\n"
IDLE_SECONDS = 600  # keep-alive timeouts set longer than any measurement


@dataclass(frozen=True)
class Server:
    """A server set-up: argv with {host}, {port} and {limit} (connections
    allowed: more than the client opens)."""

    name: str
    argv: str

    def command(self, port: int, limit: int) -> list[str]:
        words = self.argv.split()
        return [part.format(host=HOST, port=port, limit=limit) for part in words]


SERVERS = {
    server.name: server
    for server in (
        Server(
            "twincorn",
            "twincorn serve echo1k:asgi --interface asgi --workers 1 --no-access-log"
            f" --worker-connections {{limit}} --timeout-keep-alive {IDLE_SECONDS}"
            " --bind {host}:{port}",
        ),
        Server(
            "twincorn-asyncio",
            "twincorn serve echo1k:asgi --interface asgi --workers 1 --no-access-log"
            f" --worker-connections {{limit}} --timeout-keep-alive {IDLE_SECONDS}"
            " --loop asyncio --bind {host}:{port}",
        ),
        Server(
            "uvicorn",
            "uvicorn echo1k:asgi --interface asgi3 --loop uvloop --http httptools"
            f" --no-access-log --log-level warning --timeout-keep-alive {IDLE_SECONDS}"
            " --backlog {limit} --host {host} --port {port}",
        ),
        # granian closes a connection that sends no request head for this long
        # (at most 60 s): the measurement must take less.
        Server(
            "granian",
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
    port = serving.free_port()
    with tempfile.TemporaryFile() as log:
        proc = serving.start(server.command(port, args.connections + 100), log)
        socks: list[socket.socket] = []
        try:
            pid = serving.wait_ready(proc, port, log)
            warm_up(port, args.warmup)
            serving.fetch_stats(port, query="collect")  # the warm-up's garbage, if any
            time.sleep(args.pause)
            before, blocks_before = serving.rss_kib(pid), serving.fetch_stats(port)["blocks"]
            types_before = types(port) if args.breakdown else {}
            started = time.monotonic()
            for _ in range(args.connections):
                socks.append(exchange(port))
            open_seconds = time.monotonic() - started
            time.sleep(args.pause)
            rss_open, blocks_open = serving.rss_kib(pid), serving.fetch_stats(port)["blocks"]
            types_open = types(port) if args.breakdown else {}
            closed = closed_by_server(socks)
            for sock in socks:
                sock.close()
            socks.clear()
            time.sleep(args.pause)
            rss_closed, blocks_closed = serving.rss_kib(pid), serving.fetch_stats(port)["blocks"]
            blocks_collected = serving.fetch_stats(port, query="collect")["blocks"]
            return Sample(
                args.connections, open_seconds, before, rss_open, rss_closed,
                blocks_before, blocks_open, blocks_closed, blocks_collected, closed,
                difference(types_open, types_before),
            )  # fmt: skip
        finally:
            for sock in socks:
                sock.close()
            serving.stop(proc)


def types(port: int) -> dict[str, list[int]]:
    found: dict[str, list[int]] = serving.fetch_stats(port, timeout=60.0, query="types")["types"]
    return found


def difference(after: dict[str, list[int]], before: dict[str, list[int]]) -> dict[str, list[int]]:
    zero = [0, 0]
    return {
        name: [count - before.get(name, zero)[0], size - before.get(name, zero)[1]]
        for name, (count, size) in after.items()
    }


def rotated(rows: Sequence[Row], turn: int) -> list[Row]:
    turn %= max(1, len(rows))
    return [*rows[turn:], *rows[:turn]]


def run(rows: Sequence[Row], args: argparse.Namespace) -> None:
    for turn in range(args.rounds):
        for row in rotated([row for row in rows if not row.problem], turn):
            name = row.server.name
            print(f"round {turn + 1}/{args.rounds}: {name} ...", file=sys.stderr, flush=True)
            try:
                sample = measure(row.server, args)
            except (RunFailed, OSError) as exc:
                row.problem = f"failed in round {turn + 1}: {exc}"
                print(f"  {name} {row.problem}", file=sys.stderr, flush=True)
                continue
            row.samples.append(sample)
            print(
                f"  {name}: {sample.per_connection_kib:.2f} KiB per connection"
                f" ({sample.rss_before_kib / 1024:.1f} -> {sample.rss_open_kib / 1024:.1f} MiB,"
                f" {sample.closed_by_server} closed by the server)",
                file=sys.stderr,
                flush=True,
            )


# -- the table -----------------------------------------------------------------

COLUMNS = (
    "server", "RSS before MiB", "RSS open MiB", "KiB per connection", "twincorn/peer",
    "Python blocks per conn", "after close: RSS KiB per conn", "blocks per conn",
    "blocks after gc", "closed by server", "note",
)  # fmt: skip


def spread(values: Sequence[float], digits: int = 2) -> str:
    middle = f"{statistics.median(values):.{digits}f}"
    if len(values) < 2:
        return middle
    return f"{middle} ({min(values):.{digits}f}..{max(values):.{digits}f})"


def ratios(rows: Sequence[Row], row: Row) -> list[float]:
    """twincorn's per-connection memory over this peer's, round by round."""
    ours = next((r for r in rows if r.server.name == "twincorn"), None)
    if ours is None or row.server.name.startswith("twincorn") or not row.samples:
        return []
    pairs = zip(ours.samples, row.samples, strict=False)
    return [a.per_connection_kib / b.per_connection_kib for a, b in pairs]


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
        spread([s.per_connection_kib for s in samples]),
        spread(shares) if shares else "-",
        f"{median([s.blocks_per_connection for s in samples]):.1f}",
        f"{median([s.kept_per_connection_kib for s in samples]):.2f}",
        f"{median([s.blocks_kept_per_connection for s in samples]):.1f}",
        f"{median([s.blocks_leaked_per_connection for s in samples]):.1f}",
        str(sum(s.closed_by_server for s in samples)),
        row.problem,
    ]


def render(table: Sequence[Sequence[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        return "\n".join(lines + ["| " + " | ".join(line) + " |" for line in table])
    widths = [max(len(line[i]) for line in [COLUMNS, *table]) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in [COLUMNS, *table]
    )


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
    executables = [row.server.argv.split()[0] for row in rows]
    return (
        f"{args.connections:,} idle keep-alive connections (one GET / each, 1 KiB answers);"
        f" one worker on CPU {serving.SERVER_CPU}, client on CPU {LOAD_CPU};"
        f" median of {args.rounds} rounds (range).\n"
        f"{serving.describe_software(executables)}."
    )


# -- main ----------------------------------------------------------------------


def raise_descriptor_limit(needed: int) -> str:
    """Raise this process's RLIMIT_NOFILE (the servers inherit it); '' or why not."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return ""
    if hard != resource.RLIM_INFINITY:
        hard = max(hard, needed)  # only root may raise the hard limit
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    except (ValueError, OSError):
        return f"needs {needed} file descriptors: raise the limit (ulimit -n {needed})"
    return ""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    names = ", ".join(SERVERS)
    add("--connections", type=int, default=10_000, help="idle connections opened (10000)")
    add("--servers", default=",".join(SERVERS), help=f"comma-separated, among {names} (all)")
    add("--rounds", type=int, default=3, help="rounds, servers alternating (3)")
    add("--warmup", type=int, default=500, help="short-lived connections first (500)")
    add("--pause", type=float, default=2.0, help="seconds of quiet before each figure (2)")
    add("--breakdown", action="store_true",
        help="count the worker's objects by type (diagnosis: skews the RSS figures)")  # fmt: skip
    add("--json", type=Path, metavar="FILE", help="also save the results")
    add("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args(argv)
    args.servers = [name.strip() for name in args.servers.split(",") if name.strip()]
    unknown = [name for name in args.servers if name not in SERVERS]
    if unknown or not args.servers:
        parser.error(f"--servers: choose among {names}")
    if min(args.connections, args.rounds) < 1 or args.warmup < 0:
        parser.error("--connections and --rounds must be > 0, --warmup >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    problems = serving.missing_tools(wrk=False)
    problem = raise_descriptor_limit(args.connections + 200)
    if problem or problems:
        print("\n".join([*problems, problem]).strip(), file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    serving.install_cleanup()
    rows = [Row(SERVERS[name]) for name in args.servers]
    for row in rows:
        if not serving.installed(row.server.argv.split()[0]):
            row.problem = "not installed"
    try:
        run(rows, args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        serving.stop_all()
    print(describe(rows, args), end="\n\n")
    print(render([cells(rows, row) for row in rows], args.markdown))
    for row in rows if args.breakdown else ():
        print("\n" + breakdown(row), end="")
    if args.json:
        results = {row.server.name: [asdict(s) for s in row.samples] for row in rows}
        settings = {k: v for k, v in vars(args).items() if k != "json"}
        args.json.write_text(json.dumps({"settings": settings, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
