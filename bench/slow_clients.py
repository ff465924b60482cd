"""twincorn and its peers under slow-client attacks (Debian's slowhttptest).

For each attack mode and each server, one run goes:

1. start the server (one worker, pinned to CPU 0) and wait until it answers;
2. start the normal clients (threads of this script, pinned to CPU 1): each
   sends GET / every --interval seconds with a --timeout, one on a new
   connection per poll ("new": the newcomer that a connection-limit attack
   hurts), one on a kept-alive connection opened before the attack ("kept");
3. let them poll --baseline seconds with no attack;
4. run slowhttptest (also on CPU 1) against the server for --duration
   seconds with --connections connections, while the clients go on polling;
5. stop everything and compare what the clients saw during the attack with
   what they saw in the baseline.

The modes (slowhttptest's flags; `man slowhttptest`):

- H, slow headers (slowloris): requests whose head never ends, a header line
  every -i seconds;
- B, slow body (slow POST): a whole head announcing a body (-s bytes) that
  comes a few bytes (-x) every -i seconds;
- X, slow read: pipelined GETs (-k) over a tiny TCP receive window (-w..-y),
  the answers read -z bytes every -n seconds;
- R, range: GET with a Range header of thousands of ranges (-a, -b), the
  Apache killer; not slow, a burst of large heads.

The table, one row per mode, server and client: the client's answers and
failures (by kind) during the attack, its p99 latency in the baseline and
during the attack and their ratio (attack over baseline), and slowhttptest's
own view (most attack connections it held at once; seconds its probe found
the service unavailable). The aim: no failure and a ratio <= 3.

    python bench/slow_clients.py [--modes HBXR] [--servers twincorn,uvicorn] [--markdown]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import machine
import options
import procfs
import rounds
import servers
from machine import LOAD_CPU, SERVER_CPU
from servers import HOST, ROOT, RunFailed, Server
from slow_poller import Poll, Poller

NOFILE_MARGIN = 1000  # descriptors beyond the attack's, for the clients and the server

_ASGI = "twincorn serve examples.asgi.app:app --no-access-log --bind {host}:{port}"
_WSGI = "twincorn serve examples.wsgi.app:app --no-access-log --bind {host}:{port}"
SERVERS = {
    "twincorn": Server("twincorn", "asgi", _ASGI),
    "twincorn-10k": Server(
        "twincorn --worker-connections 10000", "asgi", _ASGI + " --worker-connections 10000"
    ),
    "uvicorn": Server(
        "uvicorn",
        "asgi",
        "uvicorn examples.asgi.app:app --loop uvloop --http httptools --no-access-log"
        " --host {host} --port {port}",
    ),
    "gunicorn-uvicorn": Server(
        "gunicorn -k uvicorn.workers.UvicornWorker",
        "asgi",
        "gunicorn -k uvicorn.workers.UvicornWorker -w 1 -b {host}:{port} examples.asgi.app:app",
        module="uvicorn.workers",
    ),
    "twincorn-wsgi": Server("twincorn", "wsgi", _WSGI),
    # The same apps reading the request body first (bench/body_app.py).
    "twincorn-body": Server(
        "twincorn",
        "asgi, reads body",
        _ASGI.replace("examples.asgi.app:app", "bench.body_app:app"),
    ),
    "uvicorn-body": Server(
        "uvicorn",
        "asgi, reads body",
        "uvicorn bench.body_app:app --loop uvloop --http httptools --no-access-log"
        " --host {host} --port {port}",
    ),
    "twincorn-wsgi-body": Server(
        "twincorn",
        "wsgi, reads body",
        _WSGI.replace("examples.wsgi.app:app", "bench.body_app:wsgi_app"),
    ),
}
DEFAULT_SERVERS = "twincorn,uvicorn,twincorn-10k,gunicorn-uvicorn,twincorn-wsgi"
# Without --servers, the slow-body attack also runs against the apps that
# read the body (the hello apps answer without reading it).
DEFAULT_EXTRA = {"B": "twincorn-body,uvicorn-body,twincorn-wsgi-body"}


@dataclass(frozen=True)
class Mode:
    """One slowhttptest attack: its flag and the options only it takes."""

    letter: str
    name: str
    args: str  # {interval} is filled in from --attack-interval


MODES = {
    "H": Mode("H", "slow headers", "-H -i {interval} -x 24"),
    "B": Mode("B", "slow body", "-B -i {interval} -t POST -s 8192 -x 10"),
    "X": Mode("X", "slow read", "-X -k 3 -w 512 -y 1024 -n 5 -z 32"),
    "R": Mode("R", "range", "-R -a 10 -b 3000"),
}


@dataclass
class Phase:
    """What one client saw in one phase (baseline or attack)."""

    polls: int
    answers: int
    failures: dict[str, int]
    p50_ms: float | None
    p99_ms: float | None
    #: When failures began and ended, and when the slowest answer was sent,
    #: in seconds from the phase's start (None: no failure, no answer).
    failing_from: float | None = None
    failing_until: float | None = None
    slowest_at: float | None = None


@dataclass
class Attack:
    """slowhttptest's own account of one attack."""

    seconds: float
    max_connected: int
    closed: int
    unavailable_seconds: int
    verdict: str  # its last "service available" line: YES or NO
    exit_status: str


@dataclass
class Run:
    """One server under one attack mode, in one round."""

    mode: str
    server: str
    app: str
    round: int
    nofile: str = ""
    problem: str = ""
    clients: dict[str, dict[str, Phase]] = field(default_factory=dict)
    attack: Attack | None = None
    log_lines: list[tuple[int, str]] = field(default_factory=list)


# -- measuring ---------------------------------------------------------------


def percentile(values: Sequence[float], percent: float) -> float | None:
    """Nearest-rank percentile (the smallest value with `percent`% at or below it)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * percent // 100))
    return ordered[int(rank) - 1]


def phase(polls: Sequence[Poll], start: float, end: float) -> Phase:
    """The polls sent in [start, end), summed up."""
    inside = [p for p in polls if start <= p.at < end]
    answered = [p.seconds * 1000 for p in inside if p.outcome == "ok"]
    failed = [p.at - start for p in inside if p.outcome != "ok"]
    slowest = max((p for p in inside if p.outcome == "ok"), key=lambda p: p.seconds, default=None)
    return Phase(
        len(inside), len(answered), dict(Counter(p.outcome for p in inside if p.outcome != "ok")),
        percentile(answered, 50), percentile(answered, 99),
        failing_from=min(failed, default=None), failing_until=max(failed, default=None),
        slowest_at=None if slowest is None else slowest.at - start,
    )


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def parse_attack(csv_path: Path, output: str, seconds: float) -> Attack:
    """slowhttptest's CSV (one line a second: closed, pending, connected,
    service available, the last 0 when its probe got no answer in -p s) and
    the closing lines of its output."""
    rows: list[dict[str, str]] = []
    if csv_path.exists():
        with csv_path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    text = _ANSI.sub("", output)
    verdicts = re.findall(r"service available:\s*(\w+)", text)
    exit_status = re.findall(r"Exit status:\s*(.+)", text)
    return Attack(
        seconds=seconds,
        max_connected=max((int(r["Connected"]) for r in rows), default=0),
        closed=int(rows[-1]["Closed"]) if rows else 0,
        unavailable_seconds=sum(1 for r in rows if r["Service Available"].strip() == "0"),
        verdict=verdicts[-1] if verdicts else "?",
        exit_status=exit_status[-1].strip() if exit_status else "?",
    )


def attack(mode: Mode, port: int, args: argparse.Namespace, workdir: Path) -> Attack:
    """Run slowhttptest to its end (it stops after --duration seconds, or
    sooner once it has no connection left) and read its report."""
    options = mode.args.format(interval=args.attack_interval).split()
    argv = [
        "slowhttptest", *options, "-c", str(args.connections), "-r", str(args.rate),
        "-l", str(args.duration), "-p", str(args.probe_timeout),
        "-u", f"http://{HOST}:{port}/", "-g", "-o", str(workdir / "attack"),
    ]
    started = time.monotonic()
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, errors="replace", cwd=workdir,
            timeout=args.duration + 60, stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise RunFailed("slowhttptest did not stop 60 s after its duration") from None
    seconds = time.monotonic() - started
    if done.returncode != 0 and not (workdir / "attack.csv").exists():
        raise RunFailed(f"slowhttptest exited {done.returncode}: {done.stderr.strip()}")
    return parse_attack(workdir / "attack.csv", done.stdout, seconds)


def log_summary(log: IO[bytes], top: int) -> list[tuple[int, str]]:
    """The server log's most frequent lines, with times, ids, addresses and
    numbers blanked so that alike lines count together."""
    log.flush()
    log.seek(0)
    counts: Counter[str] = Counter()
    for line in log.read().decode(errors="replace").splitlines():
        line = re.sub(r"^\[[^]]*\] \[\d+\] ", "", line.strip())  # twincorn's, gunicorn's prefix
        line = re.sub(r"\(?'?\d+\.\d+\.\d+\.\d+'?(, |:)\d+\)?", "ADDR", line)
        line = re.sub(r"\d+", "N", line)
        if line:
            counts[line[:160]] += 1
    return [(count, line) for line, count in counts.most_common(top)]


def measure(run: Run, server: Server, mode: Mode, args: argparse.Namespace) -> None:
    """One run (see the module's docstring); fills `run` in."""
    port = servers.free_port()
    with tempfile.TemporaryFile() as log, tempfile.TemporaryDirectory() as workdir:
        pollers: list[Poller] = []
        with servers.started(server.command(port), log, path=[ROOT]) as proc:
            try:
                servers.wait_ready(proc, log, servers.answering(port))
                run.nofile = procfs.nofile_limit(proc.pid)
                pollers = [
                    Poller(HOST, port, kept, args.interval, args.timeout).begin()
                    for kept in (False, True)
                ]
                time.sleep(args.baseline)
                start = time.monotonic()
                run.attack = attack(mode, port, args, Path(workdir))
                end = time.monotonic()
                if proc.poll() is not None:
                    run.problem = f"the server exited ({proc.returncode}) during the attack"
            finally:
                for poller in pollers:
                    poller.finish()
        for poller in pollers:
            run.clients[poller.name] = {
                "baseline": phase(poller.polls, start - args.baseline, start),
                "attack": phase(poller.polls, start, end),
            }
        run.log_lines = log_summary(log, args.log_lines)


# -- the rounds --------------------------------------------------------------


def run_rounds(runs: list[Run], args: argparse.Namespace) -> None:
    """Every mode against every server, round after round; within a mode the
    servers take turns in a rotated order (A B C, then B C A, ...)."""
    for key in {key for keys in args.servers.values() for key in keys}:
        if SERVERS[key].unavailable():
            rounds.say(f"{key}: {SERVERS[key].unavailable()}, left out")
    groups = [
        [(letter, key) for key in args.servers[letter] if not SERVERS[key].unavailable()]
        for letter in args.modes
    ]
    for turn, (letter, key) in rounds.rounds(args.rounds, groups, label):
        server = SERVERS[key]
        run = Run(letter, key, server.app, turn)
        try:
            measure(run, server, MODES[letter], args)
        except RunFailed as exc:
            run.problem = str(exc)
        print_run(run)
        runs.append(run)


def label(item: tuple[str, str]) -> str:
    letter, key = item
    return f"-{letter} ({MODES[letter].name}), {key}"


def print_run(run: Run) -> None:
    """A run's figures on stderr as it ends, and its server log's top lines."""
    out = sys.stderr
    if run.problem:
        print(f"  problem: {run.problem}", file=out)
    if run.attack is not None:
        a = run.attack
        print(
            f"  slowhttptest: {a.seconds:.0f} s, held up to {a.max_connected}, closed {a.closed},"
            f" probe unanswered {a.unavailable_seconds} s, last verdict {a.verdict},"
            f" {a.exit_status}; server nofile {run.nofile}",
            file=out,
        )
    for client, phases in run.clients.items():
        base, hit = phases["baseline"], phases["attack"]
        print(
            f"  {client:4}: baseline {base.answers}/{base.polls} ok p50 {ms(base.p50_ms)}"
            f" p99 {ms(base.p99_ms)};"
            f" attack {hit.answers}/{hit.polls} ok, failures {kinds(hit.failures) or 0},"
            f" p50 {ms(hit.p50_ms)} p99 {ms(hit.p99_ms)} ms{when(hit)}",
            file=out,
        )
    for count, line in run.log_lines:
        print(f"  log {count:6} x {line}", file=out)


def when(hit: Phase) -> str:
    """When, in the attack, the failures and the slowest answer came."""
    text = ""
    if hit.failing_from is not None and hit.failing_until is not None:
        text += f"; failing from +{hit.failing_from:.1f} s to +{hit.failing_until:.1f} s"
    if hit.slowest_at is not None:
        text += f"; slowest answer sent at +{hit.slowest_at:.1f} s"
    return text


# -- the table ---------------------------------------------------------------


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def kinds(failures: dict[str, int]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in sorted(failures.items(), key=lambda kv: -kv[1]))


def p99_ratio(phases: dict[str, Phase]) -> float | None:
    base, hit = phases["baseline"].p99_ms, phases["attack"].p99_ms
    if base is None or hit is None or base <= 0:
        return None
    return hit / base


def median_of(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


COLUMNS = (
    "mode", "server", "app", "client", "answers", "failures", "base p50 ms", "base p99 ms",
    "attack p50 ms", "attack p99 ms", "p99 ratio", "attack held", "probe down s",
)


def row_cells(mode: str, key: str, client: str, runs: Sequence[Run]) -> list[str]:
    """One table row: the runs of one server in one mode, for one client;
    answers and failures added up over the rounds, latencies their medians,
    the ratio the median of the per-round ratios (with its range)."""
    head = [f"-{mode} {MODES[mode].name}", SERVERS[key].name, SERVERS[key].app, client]
    done = [run for run in runs if client in run.clients]
    if not done:
        problem = next((run.problem for run in runs if run.problem), "no result")
        return [*head, "-", problem[:80], *["-"] * (len(COLUMNS) - len(head) - 2)]
    phases = [run.clients[client] for run in done]
    hits = [p["attack"] for p in phases]
    failures: Counter[str] = Counter()
    for hit in hits:
        failures.update(hit.failures)
    base_failed = sum(sum(p["baseline"].failures.values()) for p in phases)
    ratios = [r for r in map(p99_ratio, phases) if r is not None]
    ratio_text = rounds.median_range(ratios, 2, sep="-") if ratios else "-"
    attacks = [run.attack for run in done if run.attack is not None]
    text = kinds(dict(failures)) or "0"
    if base_failed:
        text += f" (and {base_failed} in the baseline)"
    return [
        *head,
        f"{sum(h.answers for h in hits)}/{sum(h.polls for h in hits)}",
        text,
        ms(median_of([p["baseline"].p50_ms for p in phases])),
        ms(median_of([p["baseline"].p99_ms for p in phases])),
        ms(median_of([h.p50_ms for h in hits])),
        ms(median_of([h.p99_ms for h in hits])),
        ratio_text,
        str(max((a.max_connected for a in attacks), default=0)),
        "/".join(str(a.unavailable_seconds) for a in attacks),
    ]


def table(runs: Sequence[Run], args: argparse.Namespace) -> list[list[str]]:
    lines = []
    for mode in args.modes:
        for key in args.servers[mode]:
            mine = [run for run in runs if run.mode == mode and run.server == key]
            if mine:
                lines += [row_cells(mode, key, client, mine) for client in ("new", "kept")]
    return lines


def describe(args: argparse.Namespace, runs: Sequence[Run]) -> str:
    nofile = sorted({run.nofile for run in runs if run.nofile})
    return (
        f"slowhttptest -c {args.connections} -r {args.rate} -l {args.duration}"
        f" -i {args.attack_interval} -p {args.probe_timeout}; normal clients: GET / every"
        f" {args.interval} s, timeout {args.timeout} s, {args.baseline} s of baseline first;"
        f" {args.rounds} round(s). Server on CPU {SERVER_CPU} (open files"
        f" {', '.join(nofile) or '?'}), clients and slowhttptest on CPU {LOAD_CPU}.\n"
        f"{machine.software(['twincorn', 'uvicorn', 'gunicorn'])}."
    )


# -- main --------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = options.parser(__doc__)
    add = parser.add_argument
    add("--modes", default="HBXR", help="attack modes, letters of H B X R (HBXR)")
    add(
        "--servers",
        type=options.names(list(SERVERS)),
        help=f"comma-separated, of: {', '.join(SERVERS)} (default: {DEFAULT_SERVERS},"
        " and for -B also the apps that read the body)",
    )
    add("--connections", type=int, default=4000, help="slowhttptest -c (4000)")
    add("--rate", type=int, default=1000, help="slowhttptest -r, connections per second (1000)")
    add("--duration", type=int, default=30, help="slowhttptest -l, seconds (30)")
    add("--attack-interval", type=int, default=5, help="slowhttptest -i for H and B (5)")
    add("--probe-timeout", type=int, default=3, help="slowhttptest -p (3)")
    add("--baseline", type=float, default=10.0, help="seconds of polling before the attack (10)")
    add("--interval", type=float, default=0.1, help="seconds between a client's polls (0.1)")
    add("--timeout", type=float, default=3.0, help="a poll's socket timeout, seconds (3)")
    add("--rounds", type=int, default=1, help="runs per mode and server, alternated (1)")
    add("--twincorn-log-level", help="pass --log-level to twincorn (debug shows each refusal)")
    add("--log-lines", type=int, default=6, help="server log lines shown per run (6)")
    options.add_output(parser, json="also save every run as JSON")
    args = parser.parse_args(argv)
    args.modes = args.modes.upper()
    if not args.modes or set(args.modes) - set(MODES):
        parser.error(f"--modes takes letters of {''.join(MODES)}")
    chosen = args.servers or DEFAULT_SERVERS.split(",")
    extra = {} if args.servers else DEFAULT_EXTRA
    args.servers = {
        mode: chosen + [s for s in extra.get(mode, "").split(",") if s] for mode in args.modes
    }
    if min(args.connections, args.rate, args.duration, args.rounds) < 1:
        parser.error("--connections, --rate, --duration and --rounds must be > 0")
    return args


def with_log_level(level: str | None) -> None:
    """Add --log-level to the twincorn set-ups (default settings otherwise)."""
    if level:
        for key, server in SERVERS.items():
            if server.executable == "twincorn":
                argv = f"{server.argv} --log-level {level}"
                SERVERS[key] = dataclasses.replace(server, argv=argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not machine.ready("slowhttptest", nofile=args.connections + NOFILE_MARGIN):
        return 2
    with_log_level(args.twincorn_log_level)
    machine.use_load_cpu()  # the clients' threads and slowhttptest
    runs: list[Run] = []
    if not servers.measure_all(lambda: run_rounds(runs, args)):
        return 130
    print(describe(args, runs), end="\n\n")
    print(rounds.render(COLUMNS, table(runs, args), args.markdown))
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k != "json"}
        data = {"settings": settings, "runs": [asdict(run) for run in runs]}
        args.json.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
