"""twincorn and its peers over TLS, side by side, on the ASGI hello app.

Two loads, each server with one worker pinned to CPU 0, wrk on CPU 1:

- keep-alive: wrk's connections open once and stay busy: requests/s with
  the TLS record layer's cost (encryption) on every request and response;
- new connections: wrk sends "Connection: close", so every request opens a
  new TCP and TLS connection (a full handshake: ECDHE and the server's
  ECDSA P-256 signature, no session resumption): requests/s here is new
  TLS connections per second.

The certificate is a fresh self-signed ECDSA P-256 one (openssl), the same
for every server. Each server runs once per round, in an order rotated
round by round; twincorn/peer is the median of the per-round ratios of
requests/s, with their spread (see bench/rounds.py).

    python bench/tls.py [--duration 10] [--rounds 3] [--only keep-alive] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import hello
import machine
import options
import rounds
import servers
import wrk
from hello import Row, Sample
from servers import ROOT, RunFailed, Server

KEEP_ALIVE, NEW_CONNECTIONS = "keep-alive", "new connections"
LOADS = (KEEP_ALIVE, NEW_CONNECTIONS)
_APP = "examples.asgi.app:app"
_COMMANDS = (
    ("twincorn", f"twincorn serve {_APP} --no-access-log --bind {{host}}:{{port}}"
                 " --certfile {cert} --keyfile {key}"),
    ("uvicorn", f"uvicorn {_APP} --loop uvloop --http httptools --no-access-log"
                " --log-level warning --host {host} --port {port}"
                " --ssl-certfile {cert} --ssl-keyfile {key}"),
    ("granian", f"granian --interface asgi --workers 1 --loop uvloop --log-level warning"
                f" --host {{host}} --port {{port}} --ssl-certificate {{cert}}"
                f" --ssl-keyfile {{key}} --ssl-protocol-min tls1.2 {_APP}"),
)
# One Server per (load, peer): the tables' "app" column names the load, and
# hello.py's ratios compare the servers within it.
SERVERS = tuple(Server(name, load, argv) for load in LOADS for name, argv in _COMMANDS)


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed ECDSA P-256 certificate for 127.0.0.1, its key in PKCS#8
    (granian reads no other)."""
    cert, key = folder / "bench.crt", folder / "bench.key"
    done = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj",
         "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        capture_output=True, text=True)
    if done.returncode != 0:
        raise RunFailed(f"openssl could not make a certificate: {done.stderr.strip()}")
    return cert, key


def answering_tls(port: int) -> Callable[[], bool | None]:
    """A probe for wait_ready: GET / over TLS answers 200 (unchecked certificate)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    def probe() -> bool | None:
        try:
            with urllib.request.urlopen(f"https://{servers.HOST}:{port}/", timeout=2,
                                        context=context) as response:
                return response.status == 200 or None
        except (OSError, urllib.error.URLError):
            return None

    return probe


def load(url: str, seconds: int, kind: str, args: argparse.Namespace) -> wrk.Result:
    close = ["-H", "Connection: close"] if kind == NEW_CONNECTIONS else []
    return wrk.run([f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s",
                    "--latency", *close, url], seconds)


def measure(server: Server, args: argparse.Namespace) -> Sample:
    """A fresh server on a free port: the warm-up, then the measured run."""
    port = servers.free_port()
    argv = server.command(port, cert=args.cert, key=args.key)
    with tempfile.TemporaryFile() as log, servers.started(argv, log, path=[ROOT]) as proc:
        servers.wait_ready(proc, log, answering_tls(port))
        url = f"https://{servers.HOST}:{port}/"
        if args.warmup > 0:
            load(url, args.warmup, server.app, args)
        result = load(url, args.duration, server.app, args)
        return Sample(result.rps, result.latency_ms(50), result.latency_ms(99), result.errors)


def run_rounds(rows: Sequence[Row], args: argparse.Namespace) -> None:
    groups = [[row for row in rows if row.server.app == kind] for kind in LOADS]
    hello.run_rounds(rows, args, measure, groups)


COLUMNS = ("load", *hello.COLUMNS[1:])


def describe(rows: Sequence[Row], args: argparse.Namespace) -> str:
    median = f"median of {args.rounds} rounds" if args.rounds > 1 else "1 round"
    return (
        f"TLS (ECDSA P-256, self-signed): wrk -t{args.threads} -c{args.connections} "
        f"-d{args.duration}s --latency (+{args.warmup}s warm-up), {median}; "
        f"\"new connections\" adds -H 'Connection: close'; server on CPU "
        f"{machine.SERVER_CPU}, wrk on CPU {machine.LOAD_CPU}.\n"
        f"{machine.software(row.server.executable for row in rows)}; {ssl.OPENSSL_VERSION}."
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = options.parser(__doc__)
    hello.add_wrk_arguments(parser)
    parser.add_argument("--only", choices=LOADS, help="only one of the two loads")
    options.add_output(parser, json="also save the results as JSON")
    args = parser.parse_args(argv)
    hello.check_wrk_arguments(parser, args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not machine.ready("wrk", "openssl"):
        return 2
    rows = [Row(s, s.unavailable()) for s in SERVERS if args.only in (None, s.app)]
    with tempfile.TemporaryDirectory() as folder:
        try:
            args.cert, args.key = make_certificate(Path(folder))
        except RunFailed as exc:
            print(exc, file=sys.stderr)
            return 2
        if not servers.measure_all(lambda: run_rounds(rows, args)):
            return 130
    table = [hello.cells(rows, row) for row in rows]
    print(describe(rows, args), end="\n\n")
    print(rounds.render(COLUMNS, table, args.markdown))
    if args.json:
        args.json.write_text(json.dumps(hello.report(rows, args), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
