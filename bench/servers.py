"""Servers under test: started pinned to a CPU, waited for, always stopped.

A server is started as an executable next to sys.executable (the one of the
environment that runs the script) with its arguments, pinned with taskset to
machine.SERVER_CPU, in a session of its own: Ctrl-C reaches only the script,
which then stops it, and stopping it ends its whole process group (the
master, its workers, a new master started by USR2). Its output goes to a
log file whose last line says why it did not start.

Run the measurements through measure_all(): every server still running
when they end, fail, are interrupted or the script gets SIGTERM is stopped.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

from machine import SERVER_CPU, pinned

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
READY_TIMEOUT = 20.0
STOP_GRACE = 5.0

T = TypeVar("T")


class RunFailed(Exception):
    """A server did not come up, died, or could not be measured."""


@dataclass(frozen=True)
class Server:
    """A server set-up: its name, the app it serves (for the tables), and
    its command line, an executable next to sys.executable then its
    arguments, with {host}, {port} (and whatever else a script passes to
    command()) filled in at start. `module`, if set, must be importable for
    the set-up to run (e.g. gunicorn's asgi worker)."""

    name: str
    app: str
    argv: str
    module: str | None = None
    note: str = ""

    @property
    def executable(self) -> str:
        return self.argv.split()[0]

    def command(self, port: int, **fill: object) -> list[str]:
        return [word.format(host=HOST, port=port, **fill) for word in self.argv.split()]

    def unavailable(self) -> str:
        return unavailable(self.executable, self.module)


def unavailable(executable: str, module: str | None = None) -> str:
    """'' if a server can be tried, else why not."""
    if not (BIN / executable).exists():
        return "not installed"
    if module and importlib.util.find_spec(module) is None:
        return f"unavailable (no {module})"
    return ""


# -- starting and stopping ----------------------------------------------------

_live: set[subprocess.Popen[bytes]] = set()


def start(
    argv: Sequence[str], log: IO[bytes], path: Sequence[Path] = ()
) -> subprocess.Popen[bytes]:
    """Start `argv` (an executable next to sys.executable, or a path, then
    its arguments) pinned to SERVER_CPU, with `path` before PYTHONPATH; its
    output goes to `log`."""
    paths = [*map(str, path), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    proc = subprocess.Popen(
        pinned(SERVER_CPU, [str(BIN / argv[0]), *argv[1:]]),
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _live.add(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE) -> None:
    """TERM the server's process group, KILL it if the server has not exited
    after `grace` seconds, then KILL what is left of the group (a worker
    outliving its master a moment, a new master of USR2's)."""
    try:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
        _signal_group(proc, signal.SIGKILL)
    finally:
        _live.discard(proc)


def _signal_group(proc: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signum)


@contextlib.contextmanager
def started(
    argv: Sequence[str], log: IO[bytes], path: Sequence[Path] = (), grace: float = STOP_GRACE
) -> Iterator[subprocess.Popen[bytes]]:
    """start(), then stop() whatever happens."""
    proc = start(argv, log, path)
    try:
        yield proc
    finally:
        stop(proc, grace)


def stop_all() -> None:
    for proc in list(_live):
        stop(proc)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def measure_all(work: Callable[[], None], interrupted: str = "interrupted") -> bool:
    """Run `work` (a script's measurements), stopping every server left
    running at its end, on an error, on Ctrl-C, on SIGTERM (made an exit)
    and at exit; False if Ctrl-C cut it short (`interrupted` is said)."""
    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        work()
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return False
    finally:
        stop_all()
    return True


# -- waiting ------------------------------------------------------------------


def wait_ready(proc: subprocess.Popen[bytes], log: IO[bytes], probe: Callable[[], T | None]) -> T:
    """Call `probe` until it answers (not None), for READY_TIMEOUT seconds at
    most; RunFailed if the server exits first or never answers."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RunFailed(f"exited with code {proc.returncode}: {last_line(log)}")
        found = probe()
        if found is not None:
            return found
        time.sleep(0.05)
    raise RunFailed(f"not ready after {READY_TIMEOUT:.0f}s: {last_line(log)}")


def answers(port: int) -> bool:
    """True if GET / on a new connection returns 200."""
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


def answering(port: int) -> Callable[[], bool | None]:
    """A probe for wait_ready: the server answers GET / with 200."""
    return lambda: answers(port) or None


def last_line(log: IO[bytes]) -> str:
    log.flush()
    log.seek(0)
    lines = log.read().decode(errors="replace").strip().splitlines()
    return lines[-1].strip() if lines else "(no output)"


def free_port() -> int:
    """A port of HOST that nothing listens on (free when asked)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port
