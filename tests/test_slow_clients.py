"""A slow-headers attack (slowloris) must not deny service to a normal client.

slowhttptest -H opens more connections than the worker's default
--worker-connections (1000) and keeps each one alive with a header line now
and then, never ending the head. Meanwhile a normal client asks GET / every
tenth of a second, each time on a new connection (the newcomer, whom a full
server refuses first). Every one of its requests must be answered 200.
bench/slow_clients.py measures the same in all four attack modes.
"""

from __future__ import annotations

import csv
import resource
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from master_support import Master

SLOWHTTPTEST = shutil.which("slowhttptest")
pytestmark = pytest.mark.skipif(
    SLOWHTTPTEST is None,
    reason="slowhttptest not found (Debian: apt-get install slowhttptest; .ci/run installs it)",
)

CONNECTIONS = 1500  # past the default --worker-connections of 1000
RATE = 750  # connections a second: all of them open within 2 s
ATTACK_SECONDS = 8
POLL_INTERVAL = 0.1
POLL_TIMEOUT = 3.0


@contextmanager
def open_files(needed: int) -> Iterator[None]:
    """This process's (and so the server's) open-files limit raised to
    `needed` for the duration; skip if the hard limit is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"open files hard limit {hard} < {needed}: raise it (ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def slowloris(port: int, out: Path) -> subprocess.Popen[bytes]:
    """slowhttptest -H against the port; it stops by itself after ATTACK_SECONDS."""
    assert SLOWHTTPTEST is not None
    argv = [
        SLOWHTTPTEST, "-H", "-c", str(CONNECTIONS), "-r", str(RATE), "-i", "2", "-x", "24",
        "-l", str(ATTACK_SECONDS), "-p", "3", "-u", f"http://127.0.0.1:{port}/",
        "-g", "-o", str(out / "attack"),
    ]
    with (out / "attack.txt").open("wb") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=out)


def ask(port: int) -> str:
    """GET / on a new connection: the status ("200"), or how it failed."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=POLL_TIMEOUT) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    except TimeoutError:
        return "timeout"
    except ConnectionResetError:
        return "reset"
    except OSError as exc:
        return type(exc).__name__
    if not data.startswith(b"HTTP/1.1 "):
        return "closed without an answer"
    return data[9:12].decode()


def poll_while(running: Callable[[], bool], port: int) -> Counter[str]:
    """ask() every POLL_INTERVAL while `running()`: what it saw, counted."""
    seen: Counter[str] = Counter()
    due = time.monotonic()
    while running():
        seen[ask(port)] += 1
        due = max(due + POLL_INTERVAL, time.monotonic())
        time.sleep(max(0.0, due - time.monotonic()))
    return seen


def attack_reach(out: Path) -> int:
    """The most connections slowhttptest had opened at once, plus those the
    server had closed by then (from its CSV, one row a second)."""
    with (out / "attack.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return max((int(r["Connected"]) + int(r["Closed"]) for r in rows), default=0)


def test_a_normal_client_is_served_during_a_slow_headers_attack(
    master_factory: Callable[..., Master], tmp_path: Path
) -> None:
    with open_files(CONNECTIONS + 1000):
        master = master_factory("examples.asgi.app:app")
        attack = slowloris(master.port, tmp_path)
        try:
            time.sleep(CONNECTIONS / RATE)  # the attack's connections are open
            seen = poll_while(lambda: attack.poll() is None, master.port)
            attack.wait(30)
        finally:
            if attack.poll() is None:
                attack.kill()
                attack.wait()
    assert attack_reach(tmp_path) >= 1000, (tmp_path / "attack.txt").read_text()
    failed = {outcome: n for outcome, n in seen.items() if outcome != "200"}
    log_tail = "\n".join(master.output().splitlines()[-5:])
    assert not failed, f"the normal client saw {dict(seen)}; server log:\n{log_tail}"
    assert seen["200"] >= 20, seen  # the client polled through the attack
