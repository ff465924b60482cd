"""Servers under test for the memory benchmarks: start, find, measure, stop.

Used by bench/soak.py and bench/idle_memory.py. Every server is started with
the executables next to sys.executable, pinned to SERVER_CPU with taskset, in
its own session (so Ctrl-C reaches only the script, which then stops it),
serving an app of bench/apps/ (on PYTHONPATH).

The process measured is the one that runs the app: the apps answer
`GET /stats` with their pid, so a prefork server's worker (twincorn's,
gunicorn's, granian's) is found without guessing at the process tree; it
must be the server's own process or one of its descendants. Its resident
memory is VmRSS of /proc/PID/status.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "bench" / "apps"
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
SERVER_CPU = "0"
LOAD_CPU = "1"
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0


class RunFailed(Exception):
    """A server did not come up, died, or could not be measured."""


_live: set[subprocess.Popen[bytes]] = set()


def start(argv: Sequence[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    """Start `argv` (an executable next to sys.executable, then its
    arguments) pinned to SERVER_CPU; its output goes to `log`."""
    paths = [str(APPS), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        ["taskset", "-c", SERVER_CPU, str(BIN / argv[0]), *argv[1:]],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _live.add(proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, then SIGKILL it if it lingers."""
    try:
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        # A worker may outlive its master for a moment: end the whole group.
        _signal_group(proc, signal.SIGKILL)
    finally:
        _live.discard(proc)


def _signal_group(proc: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signum)


def stop_all() -> None:
    for proc in list(_live):
        stop(proc)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def install_cleanup() -> None:
    """Stop every started server at exit, on SIGTERM too."""
    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def fetch_stats(port: int, timeout: float = 10.0, query: str = "") -> dict[str, Any]:
    """The app's figures (bench/apps/echo1k.py, GET /stats); query `collect`:
    after a full garbage collection in the worker; `types`: objects by type."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", f"/stats?{query}" if query else "/stats")
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RunFailed(f"GET /stats answered {response.status}")
        figures: dict[str, Any] = json.loads(body)
        return figures
    finally:
        conn.close()


def wait_ready(proc: subprocess.Popen[bytes], port: int, log: IO[bytes]) -> int:
    """Wait until the app answers; the pid of the process that runs it."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RunFailed(f"exited with code {proc.returncode}: {last_line(log)}")
        try:
            pid = int(fetch_stats(port, timeout=2.0)["pid"])
        except (OSError, http.client.HTTPException, RunFailed, ValueError):
            time.sleep(0.1)
            continue
        if not descends_from(pid, proc.pid):
            raise RunFailed(f"the app runs in pid {pid}, not under the server's {proc.pid}")
        return pid
    raise RunFailed(f"not ready after {READY_TIMEOUT:.0f}s: {last_line(log)}")


def descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False
        pid = int(_status_field(status, "PPid").split()[0])
    return False


def _status_field(status: str, name: str) -> str:
    for line in status.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise RunFailed(f"no {name} in /proc/PID/status")


def rss_kib(pid: int) -> int:
    """Resident memory of one process, in KiB (VmRSS)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError as exc:
        raise RunFailed(f"process {pid} is gone") from exc
    value, unit = _status_field(status, "VmRSS").split()
    assert unit == "kB", unit
    return int(value)


def last_line(log: IO[bytes]) -> str:
    log.flush()
    log.seek(0)
    lines = log.read().decode(errors="replace").strip().splitlines()
    return lines[-1].strip() if lines else "(no output)"


def version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def describe_software(executables: Sequence[str]) -> str:
    python = ".".join(map(str, sys.version_info[:3]))
    found = {name: version(name) for name in dict.fromkeys(executables)}
    found["uvloop"] = version("uvloop")
    found["httptools"] = version("httptools")
    versions = ", ".join(f"{name} {v}" for name, v in found.items() if v)
    return f"Python {python}; {versions}; {time.strftime('%Y-%m-%d')}"


def missing_tools(wrk: bool) -> list[str]:
    problems = []
    if wrk and shutil.which("wrk") is None:
        problems.append("wrk not found: install it with `apt-get install wrk` (Debian, Ubuntu).")
    if shutil.which("taskset") is None:
        problems.append("taskset not found: it is in util-linux (`apt-get install util-linux`).")
    elif not {int(SERVER_CPU), int(LOAD_CPU)} <= os.sched_getaffinity(0):
        problems.append(f"needs CPUs {SERVER_CPU} and {LOAD_CPU}: one for the server, one for load")
    return problems


def installed(executable: str) -> bool:
    return (BIN / executable).exists()
