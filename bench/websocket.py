"""WebSockets: twincorn beside uvicorn, hypercorn and granian, one worker each.

Every server serves the same plain ASGI echo (bench/apps/ws_echo.py), one
worker pinned to CPU 0, access log off. The client is the same for all,
on CPU 1: `twincorn load` for the rates, a small asyncio client using the
`websockets` library for the memory. Four measurements, each on a fresh
server:

- echo 64 B, echo 16 KiB: `twincorn load ws://HOST:PORT/echo
  --message-size SIZE -u 100 -r 0`: 100 sockets, each making round trips
  back to back (one message in flight per socket); round trips per second.
- connect: a scenario whose task opens a socket, makes one 64 B round trip
  and closes it (`async with self.client.websocket("/echo")`), run by
  --connect-users users; handshakes completed per second.
- idle memory: --idle sockets opened one after the other, each making one
  round trip, then left open and idle; the worker's resident memory
  (VmRSS) before (after a warm-up of short-lived sockets and a full
  collection) and with them all open:

      KiB per idle socket = (RSS open - RSS before) / sockets

Within each measurement the servers take turns, in an order rotated round
by round (bench/rounds.py); twincorn/peer is twincorn's figure (the
websockets backend) over the peer's, round by round, and the table shows
the median of those ratios with their range. For the rates above 1 is
better for twincorn; for memory below 1 is. The aims (issue 11): round
trips at least 1.5x uvicorn's `websockets` implementation, memory per idle
socket no more than uvicorn's.

    python bench/websocket.py [--rounds 5] [--duration 5] [--markdown]
    python bench/websocket.py --servers twincorn,uvicorn-websockets --metrics echo64
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

import app_worker
import load
import machine
import options
import rounds
import servers
import ws_idle
from machine import LOAD_CPU, SERVER_CPU
from servers import HOST, RunFailed, Server


class Metric(Enum):
    """What one measurement measures; its value is its name in --metrics."""

    ECHO_64 = "echo64"
    ECHO_16K = "echo16k"
    CONNECT = "connect"
    IDLE = "idle"

    @property
    def title(self) -> str:
        return TITLES[self]


TITLES = {
    Metric.ECHO_64: "64 B round trips/s",
    Metric.ECHO_16K: "16 KiB round trips/s",
    Metric.CONNECT: "connects/s",
    Metric.IDLE: "KiB per idle socket",
}
MESSAGE_SIZES = {Metric.ECHO_64: "64", Metric.ECHO_16K: "16KiB"}
# The row of `twincorn load --json`'s by_name each rate is read from.
LOAD_ROWS = {Metric.ECHO_64: "/echo", Metric.ECHO_16K: "/echo", Metric.CONNECT: "connect /echo"}

CONNECT_SCENARIO = """\
from twincorn.load import User, task

MESSAGE = b"x" * 64


class Connector(User):
    @task
    async def connect(self):
        async with self.client.websocket("/echo") as ws:
            await ws.send(MESSAGE)
            await ws.receive()
"""

# Each command's {limit}: the connections allowed, above --idle. uvicorn has
# no limit by default; granian's --backlog also sets its --backpressure (the
# requests, a WebSocket being one, a worker serves at once).
SERVERS = {
    server.name: server
    for server in (
        Server(
            "twincorn",
            "asgi",
            "twincorn serve ws_echo:app --interface asgi --workers 1 --no-access-log"
            " --ws websockets --worker-connections {limit} --bind {host}:{port}",
        ),
        Server(
            "twincorn-wsproto",
            "asgi",
            "twincorn serve ws_echo:app --interface asgi --workers 1 --no-access-log"
            " --ws wsproto --worker-connections {limit} --bind {host}:{port}",
            module="wsproto",
        ),
        Server(
            "uvicorn-websockets",
            "asgi",
            "uvicorn ws_echo:app --interface asgi3 --loop uvloop --http httptools"
            " --ws websockets --no-access-log --log-level warning --backlog {limit}"
            " --host {host} --port {port}",
            module="websockets.legacy",
        ),
        Server(
            "uvicorn-websockets-sansio",
            "asgi",
            "uvicorn ws_echo:app --interface asgi3 --loop uvloop --http httptools"
            " --ws websockets-sansio --no-access-log --log-level warning --backlog {limit}"
            " --host {host} --port {port}",
            module="uvicorn.protocols.websockets.websockets_sansio_impl",
        ),
        Server(
            "uvicorn-wsproto",
            "asgi",
            "uvicorn ws_echo:app --interface asgi3 --loop uvloop --http httptools"
            " --ws wsproto --no-access-log --log-level warning --backlog {limit}"
            " --host {host} --port {port}",
            module="wsproto",
        ),
        Server(
            "hypercorn",
            "asgi",
            "hypercorn ws_echo:app --workers 1 --worker-class uvloop --log-level warning"
            " --backlog {limit} --bind {host}:{port}",
        ),
        Server(
            "granian",
            "asgi",
            "granian --interface asgi --workers 1 --loop uvloop --http 1 --log-level warning"
            " --backlog {limit} --host {host} --port {port} ws_echo:app",
        ),
    )
}
INSTALL = {
    "twincorn": "pip install -e .",
    "uvicorn": "pip install 'uvicorn[standard]' (make .venv/.peers)",
    "hypercorn": "pip install hypercorn (make .venv/.peers)",
    "granian": "pip install granian (make .venv/.peers)",
}
MODULES = {"wsproto": "pip install wsproto", "websockets.legacy": "websockets < 16 has it"}
REFERENCE = "twincorn"
# The aims, as (metric, peer) -> the bound on twincorn/peer (">=" for the
# rates, "<=" for memory).
AIMS = {
    (Metric.ECHO_64, "uvicorn-websockets"): 1.5,
    (Metric.ECHO_16K, "uvicorn-websockets"): 1.5,
    **{(Metric.IDLE, name): 1.0 for name in SERVERS if name.startswith("uvicorn")},
}


@dataclass
class Rate:
    """One run of twincorn load: the rate, its latency, what each side used."""

    value: float  # round trips or connects per second
    failures: int
    p50_ms: float
    p99_ms: float
    server_cpu: float  # share of its core, 0 to 1
    client_cpu: float

    @property
    def per_cpu_second(self) -> float:
        """Round trips (connects) per second of the server's CPU: its cost,
        whether or not it was the limit."""
        return self.value / self.server_cpu if self.server_cpu else 0.0


Sample = Rate | ws_idle.Memory


@dataclass
class Series:
    """One server's samples of one metric over the rounds; `problem` says
    why it has no more (unavailable, or failed in a round)."""

    server: Server
    metric: Metric
    problem: str = ""
    samples: list[Sample] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.metric.value}: {self.server.name}"

    @property
    def values(self) -> list[float]:
        return [s.value for s in self.samples]


# -- one measurement -----------------------------------------------------------


def command(server: Server, port: int, args: argparse.Namespace) -> list[str]:
    return server.command(port, limit=args.idle + 100)


def client_argv(metric: Metric, port: int, args: argparse.Namespace, work: Path) -> list[str]:
    """The `twincorn load` command of a rate, writing work/load.json."""
    seconds = f"{args.warmup + args.duration:g}s"
    common = ["-r", "0", "-t", seconds, "--warmup", f"{args.warmup:g}s", "-q",
              "--json", str(work / "load.json")]  # fmt: skip
    if metric is Metric.CONNECT:
        scenario = work / "connect_scenario.py"
        scenario.write_text(CONNECT_SCENARIO)
        target = ["-f", str(scenario), "-H", f"http://{HOST}:{port}", "-u", str(args.connect_users)]
    else:
        target = [f"ws://{HOST}:{port}/echo", "--message-size", MESSAGE_SIZES[metric],
                  "-u", str(args.sockets)]  # fmt: skip
    return [sys.executable, "-m", "twincorn", "load", *target, *common]


def read_rate(metric: Metric, data: dict[str, object]) -> tuple[float, int, float, float]:
    """(per second, failures, p50 ms, p99 ms) of a `twincorn load --json`."""
    by_name = data.get("by_name")
    row = by_name.get(LOAD_ROWS[metric]) if isinstance(by_name, dict) else None
    if not isinstance(row, dict) or not row.get("requests"):
        raise RunFailed(f"no {LOAD_ROWS[metric]!r} row in twincorn load's results")
    latency = row["latency_ms"]
    failures = data.get("failures", 0)
    assert isinstance(failures, int)
    return float(row["rps"]), failures, float(latency["p50"]), float(latency["p99"])


def measure_rate(server: Server, metric: Metric, args: argparse.Namespace) -> Rate:
    port = servers.free_port()
    with (
        tempfile.TemporaryFile() as log,
        tempfile.TemporaryDirectory() as tmp,
        servers.started(command(server, port, args), log, path=[app_worker.APPS]) as proc,
    ):
        pid = app_worker.find(proc, port, log)
        work = Path(tmp)
        argv = client_argv(metric, port, args, work)
        timing, output = load.run_client(metric.value, argv, pid, args.warmup + args.duration + 30)
        if not (work / "load.json").exists():
            raise RunFailed(f"twincorn load wrote no results: {output.strip()[-300:]}")
        try:
            data = json.loads((work / "load.json").read_text())
        except ValueError as exc:
            raise RunFailed(f"twincorn load's results unreadable: {exc}") from exc
        if proc.poll() is not None:
            raise RunFailed(f"the server exited ({proc.returncode}): {servers.last_line(log)}")
    value, failures, p50, p99 = read_rate(metric, data)
    return Rate(value, failures, p50, p99, timing.server_share, timing.client_share)


def measure_memory(server: Server, args: argparse.Namespace) -> ws_idle.Memory:
    port = servers.free_port()
    with (
        tempfile.TemporaryFile() as log,
        servers.started(command(server, port, args), log, path=[app_worker.APPS]) as proc,
    ):
        pid = app_worker.find(proc, port, log)
        plan = ws_idle.Plan(args.idle, args.memory_warmup, args.pause)
        return ws_idle.measure(f"ws://{HOST}:{port}/echo", port, pid, plan)


def measure(series: Series, args: argparse.Namespace) -> Rate | ws_idle.Memory:
    if series.metric is Metric.IDLE:
        return measure_memory(series.server, args)
    return measure_rate(series.server, series.metric, args)


def due(args: argparse.Namespace) -> Callable[[Series], bool]:
    """Whether a series runs in this round: not after a problem, and the
    idle memory (steady from round to round, and the longest) only in the
    first --idle-rounds rounds."""

    def runs(series: Series) -> bool:
        if series.problem:
            return False
        return series.metric is not Metric.IDLE or len(series.samples) < args.idle_rounds

    return runs


def run(all_series: Sequence[Series], metrics: Sequence[Metric], args: argparse.Namespace) -> None:
    groups = [[s for s in all_series if s.metric is metric] for metric in metrics]
    for turn, series in rounds.rounds(args.rounds, groups, lambda s: s.label, due(args)):
        try:
            sample = measure(series, args)
        except (RunFailed, OSError) as exc:
            series.problem = f"failed in round {turn}: {exc}"
            rounds.say(f"  {series.label} {series.problem}")
            continue
        series.samples.append(sample)
        rounds.say(f"  {series.label}: {value_cell(series.metric, sample.value)}")


# -- the tables ----------------------------------------------------------------


def sample_value(sample: Sample) -> float:
    return sample.value


def sample_per_cpu_second(sample: Sample) -> float:
    return sample.per_cpu_second if isinstance(sample, Rate) else 0.0


def value_cell(metric: Metric, value: float) -> str:
    return f"{value:.2f}" if metric is Metric.IDLE else f"{value:,.0f}"


def find(all_series: Sequence[Series], name: str, metric: Metric) -> Series | None:
    return next((s for s in all_series if s.server.name == name and s.metric is metric), None)


def round_ratios(
    all_series: Sequence[Series], series: Series, figure: Callable[[Sample], float] = sample_value
) -> list[float]:
    """twincorn's figure over this peer's, round by round ([] for twincorn's
    own rows, or when either has no samples)."""
    ours = find(all_series, REFERENCE, series.metric)
    if ours is None or series.server.name.startswith("twincorn"):
        return []
    return rounds.ratios(list(map(figure, ours.samples)), list(map(figure, series.samples)))


def aim_note(metric: Metric, name: str, shares: Sequence[float],
             per_cpu: Sequence[float] = ()) -> str:
    """'64 B aim >= 1.5x: not met (per server CPU-second: met)' and the
    like; '' where no aim applies."""
    bound = AIMS.get((metric, name))
    if bound is None or not shares:
        return ""
    if metric is Metric.IDLE:
        met = statistics.median(shares) <= bound
        return f"memory aim <= {bound:g}x: {'met' if met else 'not met'}"
    size = metric.title.split(" round")[0]
    note = f"{size} aim >= {bound:g}x: {verdict(shares, bound)}"
    return f"{note} (per server CPU-second: {verdict(per_cpu, bound)})" if per_cpu else note


def verdict(shares: Sequence[float], bound: float) -> str:
    return "met" if statistics.median(shares) >= bound else "not met"


def short(text: str, width: int = 100) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def main_columns(metrics: Sequence[Metric]) -> list[str]:
    columns = ["server"]
    for metric in metrics:
        columns += [metric.title, "twincorn/peer"]
    return [*columns, "note"]


def main_cells(all_series: Sequence[Series], name: str, metrics: Sequence[Metric]) -> list[str]:
    """A server's line: per metric its median and twincorn/peer (the median
    of the per-round ratios, and their range); then the aims and problems."""
    line, notes = [name], []
    for metric in metrics:
        series = find(all_series, name, metric)
        if series is None:
            line += ["-", "-"]
            continue
        shares = round_ratios(all_series, series)
        median = value_cell(metric, statistics.median(series.values)) if series.samples else "-"
        line += [median, rounds.median_range(shares) if shares else "-"]
        if series.problem:
            notes.append(series.problem if series.problem.startswith(("not", "unavailable"))
                         else f"{metric.value} {short(series.problem)}")  # fmt: skip
        notes.append(aim_note(metric, name, shares,
                              round_ratios(all_series, series, sample_per_cpu_second)))
    return [*line, "; ".join(dict.fromkeys(filter(None, notes)))]


RATE_COLUMNS = ("server", "measure", "per s", "p50 ms", "p99 ms", "failures", "server CPU",
                "client CPU", "per server CPU-second", "twincorn/peer")  # fmt: skip


def rate_cells(all_series: Sequence[Series], series: Series) -> list[str]:
    """Medians over the rounds (failures: the sum); CPU as a share of one
    core; then what the server did per second of its CPU, and twincorn's
    figure of that over the peer's (median of the rounds' ratios)."""
    rates = [s for s in series.samples if isinstance(s, Rate)]
    median = statistics.median
    shares = round_ratios(all_series, series, sample_per_cpu_second)
    return [
        series.server.name, series.metric.title.removesuffix("/s"),
        value_cell(series.metric, median(r.value for r in rates)),
        f"{median(r.p50_ms for r in rates):.2f}", f"{median(r.p99_ms for r in rates):.2f}",
        str(sum(r.failures for r in rates)),
        f"{100 * median(r.server_cpu for r in rates):.0f}%",
        f"{100 * median(r.client_cpu for r in rates):.0f}%",
        value_cell(series.metric, median(r.per_cpu_second for r in rates)),
        rounds.median_range(shares) if shares else "-",
    ]  # fmt: skip


MEMORY_COLUMNS = ("server", "RSS before MiB", "RSS open MiB", "KiB per idle socket",
                  "Python blocks per socket", "after close: KiB per socket", "open s",
                  "closed by server")  # fmt: skip


def memory_cells(series: Series) -> list[str]:
    samples = [s for s in series.samples if isinstance(s, ws_idle.Memory)]
    median = statistics.median
    return [
        series.server.name,
        f"{median(s.rss_before_kib / 1024 for s in samples):.1f}",
        f"{median(s.rss_open_kib / 1024 for s in samples):.1f}",
        rounds.median_range([s.value for s in samples]),
        f"{median(s.blocks_per_socket for s in samples):.1f}",
        f"{median(s.kept_kib for s in samples):.2f}",
        f"{median(s.open_seconds for s in samples):.1f}",
        str(sum(s.closed_by_server for s in samples)),
    ]


def tables(all_series: Sequence[Series], args: argparse.Namespace) -> str:
    """The main table, then the rates' latency and CPU, then the memory's figures."""
    names = list(dict.fromkeys(s.server.name for s in all_series))
    main = [main_cells(all_series, name, args.metrics) for name in names]
    parts = [rounds.render(main_columns(args.metrics), main, args.markdown)]
    measured = [s for s in all_series if s.samples]
    rates = [rate_cells(all_series, s) for m in args.metrics for s in measured
             if s.metric is m and m is not Metric.IDLE]  # fmt: skip
    if rates:
        parts.append(rounds.render(RATE_COLUMNS, rates, args.markdown, RATE_COLUMNS[2:]))
    memory = [memory_cells(s) for s in measured if s.metric is Metric.IDLE]
    if memory:
        parts.append(rounds.render(MEMORY_COLUMNS, memory, args.markdown, MEMORY_COLUMNS[1:]))
    return "\n\n".join(parts)


def describe(all_series: Sequence[Series], args: argparse.Namespace) -> str:
    executables = [s.server.executable for s in all_series]
    return (
        f"echo: {args.sockets} sockets, round trips back to back (`twincorn load -u"
        f" {args.sockets} -r 0`), {args.duration:g} s after {args.warmup:g} s of warm-up;"
        f" connect: {args.connect_users} users, each socket opened, one 64 B round trip,"
        f" closed; idle: {args.idle:,} sockets, in the first {min(args.idle_rounds, args.rounds)}"
        f" rounds. One worker on CPU {SERVER_CPU}, client on CPU {LOAD_CPU}; median of"
        f" {args.rounds} rounds (range).\n"
        f"{machine.software([*executables, 'websockets', 'wsproto'])}."
    )


def report(all_series: Sequence[Series], args: argparse.Namespace) -> dict[str, object]:
    results: dict[str, dict[str, object]] = {}
    for s in all_series:
        results.setdefault(s.server.name, {})[s.metric.value] = {
            "problem": s.problem or None,
            "median": statistics.median(s.values) if s.samples else None,
            "twincorn_over_peer": round_ratios(all_series, s),
            "samples": [asdict(sample) for sample in s.samples],
        }
    settings = {k: v for k, v in vars(args).items() if k != "json"}
    settings["servers"] = list(args.servers)
    settings["metrics"] = [m.value for m in args.metrics]
    return {"settings": settings, "python": sys.version.split()[0], "results": results}


# -- main ----------------------------------------------------------------------


def unavailable(server: Server) -> str:
    """'' if the server can be tried, else why not and how to install it."""
    problem = server.unavailable()
    if problem == "not installed":
        return f"not installed: {INSTALL[server.executable]}"
    if problem and server.module:
        return f"{problem}: {MODULES[server.module]}"
    return problem


def metric_names(text: str) -> list[Metric]:
    return [Metric(name) for name in options.names([m.value for m in Metric])(text)]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = options.parser(__doc__)
    add = parser.add_argument
    add("--rounds", type=int, default=5, help="rounds, servers alternating (5)")
    add("--duration", type=float, default=5.0, help="seconds of each measured rate (5)")
    add("--warmup", type=float, default=1.0, help="seconds of load before each, not counted (1)")
    add("--sockets", type=int, default=100, help="sockets of the echo rates (100)")
    add("--connect-users", type=int, default=100, help="users of the connect rate (100)")
    add("--idle", type=int, default=10_000, help="idle sockets held (10000)")
    add("--idle-rounds", type=int, default=3,
        help="rounds that measure the idle memory, the first ones (3)")  # fmt: skip
    add("--memory-warmup", type=int, default=200, help="short-lived sockets first (200)")
    add("--pause", type=float, default=2.0, help="seconds of quiet before each memory figure (2)")
    add("--servers", type=options.names(list(SERVERS)), default=list(SERVERS),
        help=f"comma-separated, among {', '.join(SERVERS)} (all)")  # fmt: skip
    add("--metrics", type=metric_names, default=list(Metric),
        help=f"comma-separated, among {', '.join(m.value for m in Metric)} (all)")  # fmt: skip
    options.add_output(parser, json="also save the results, every round's samples included")
    args = parser.parse_args(argv)
    if min(args.rounds, args.sockets, args.connect_users, args.idle, args.idle_rounds) < 1:
        parser.error("--rounds, --sockets, --connect-users, --idle, --idle-rounds must be > 0")
    if args.duration <= 0 or min(args.warmup, args.pause, args.memory_warmup) < 0:
        parser.error("--duration must be > 0; --warmup, --pause, --memory-warmup >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    nofile = args.idle + 200 if Metric.IDLE in args.metrics else 0
    if not machine.ready(nofile=nofile):
        return 2
    machine.use_load_cpu()
    all_series = [
        Series(SERVERS[name], metric, unavailable(SERVERS[name]))
        for name in args.servers
        for metric in args.metrics
    ]
    if not servers.measure_all(lambda: run(all_series, args.metrics, args)):
        return 130
    print(describe(all_series, args), end="\n\n")
    print(tables(all_series, args))
    if args.json:
        args.json.write_text(json.dumps(report(all_series, args), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
