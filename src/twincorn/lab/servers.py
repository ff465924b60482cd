"""Starting the servers under test, and always stopping them.

Each server runs in a process group of its own, on a free loopback port,
with the project's root folder as its working folder (where `examples/`
is). `running(...)` is a context manager: whatever happens inside —
an error, Ctrl-C — the whole group is stopped (TERM, then KILL).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from twincorn.lab.setups import Setup


class ServerFailed(RuntimeError):
    """A server did not start: its output says why."""


def examples_root() -> Path:
    """The folder holding `examples/`: the working folder, else the source tree."""
    for candidate in (Path.cwd(), Path(__file__).resolve().parents[3]):
        if (candidate / "examples" / "wsgi" / "slow_app.py").is_file():
            return candidate
    raise ServerFailed(
        "the lab serves the apps in examples/: run it from a checkout of twincorn"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    setup: Setup
    app: str
    port: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


def _answers(port: int, timeout: float) -> bool:
    """One GET answered with a status line?"""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
            return sock.recv(16).startswith(b"HTTP/1.")
    except OSError:
        return False


@contextlib.contextmanager
def running(setup: Setup, kind: str, service_time: float,
            start_timeout: float = 20.0) -> Iterator[Server]:
    """Serve the `kind` app ("hello", "slow") with `setup` until the block ends."""
    root = examples_root()
    port = free_port()
    app = setup.app(kind)
    env = dict(os.environ, SLOW_APP_SECONDS=f"{service_time:g}", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        setup.command(app, port), cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )
    server = Server(setup, app, port, process, log)
    try:
        deadline = time.monotonic() + start_timeout
        while not _answers(port, timeout=service_time + 5):
            if process.poll() is not None or time.monotonic() > deadline:
                raise ServerFailed(f"{setup.title} did not start:\n{server.output()[-2000:]}")
            time.sleep(0.1)
        time.sleep(0.3)  # the other workers finish booting
        yield server
    finally:
        _stop(process)
        log.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            pass
    # Whatever is left of the group (workers of a master that died first).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)
