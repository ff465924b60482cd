"""Helpers for tests that run the master as a whole process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from keepalive import Done as Done
from keepalive import Failure as Failure
from keepalive import KeepAliveLoad as KeepAliveLoad
from test_cli import free_port

ROOT = Path(__file__).resolve().parent.parent


def children(pid: int) -> set[int]:
    """The live child processes of `pid` (read from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def get(port: int, path: str = "/", timeout: float = 5.0) -> tuple[int, bytes]:
    """One request on its own connection: (status, body); (0, b"") on failure."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    except OSError:
        return 0, b""
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 "):
        return 0, b""
    return int(head[9:12]), body


class Master:
    """`twincorn serve` started as a process group of its own."""

    def __init__(self, *args: str, cwd: Path = ROOT) -> None:
        self.port = free_port()
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"twincorn-master-{self.port}.log"
        self.log = self.log_path.open("w+")  # closed by stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "twincorn", "serve", *args, "-b", f"127.0.0.1:{self.port}",
             "--no-access-log"],
            cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT,
        )
        try:
            self.wait_for(lambda: get(self.port, timeout=3)[0] == 200, 15, "the server to start")
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def workers(self) -> set[int]:
        return children(self.pid)

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait_for(self, condition: object, seconds: float, what: str) -> float:
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            if callable(condition) and condition():
                return time.monotonic() - start
            if self.proc.poll() is not None:
                raise AssertionError(f"master exited waiting for {what}:\n{self.output()}")
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}:\n{self.output()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in children(self.pid):
            os.kill(pid, signal.SIGKILL)
        self.log.close()
        self.log_path.unlink(missing_ok=True)
        return self.proc.returncode


class Load:
    """Clients sending requests in a loop, counting what failed."""

    def __init__(self, port: int, clients: int = 4, path: str = "/") -> None:
        self.port, self.path = port, path
        self.ok = self.failed = 0
        self.bodies: list[bytes] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(clients)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            status, body = get(self.port, self.path)
            with self._lock:
                if status == 200:
                    self.ok += 1
                    self.bodies.append(body)
                else:
                    self.failed += 1

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(10)

