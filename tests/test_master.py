"""The prefork master as whole processes: workers, signals, supervision."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from test_cli import free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="the master needs fork"),
    pytest.mark.timeout(60),
]


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


@pytest.fixture
def master_factory() -> Iterator[type[Master]]:
    started: list[Master] = []

    class Tracked(Master):
        def __init__(self, *args: str, cwd: Path = ROOT) -> None:
            super().__init__(*args, cwd=cwd)
            started.append(self)

    yield Tracked
    for m in started:
        m.stop()


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


def test_workers_and_kill_9(master_factory: type[Master]) -> None:
    master = master_factory("examples.wsgi.app:app", "-w", "4")
    master.wait_for(lambda: len(master.workers()) == 4, 10, "4 workers")
    load = Load(master.port, clients=4)
    try:
        time.sleep(0.5)
        victim = min(master.workers())
        os.kill(victim, signal.SIGKILL)
        took = master.wait_for(
            lambda: len(master.workers() - {victim}) == 4, 5, "a replacement worker"
        )
        assert took < 1.0
        time.sleep(0.5)
    finally:
        load.stop()
    # Only requests in flight on the killed worker may fail: at most one per client.
    assert load.failed <= 4, (load.failed, load.ok)
    assert load.ok > 100
    output = master.output()
    assert f"worker {victim} died (killed by SIGKILL (not sent by the master" in output
    assert master.stop() == 0


def test_term_lets_slow_requests_finish(master_factory: type[Master], tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(
        "import time\n"
        "def app(environ, start_response):\n"
        "    time.sleep(float(environ['PATH_INFO'][1:] or 0))\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'done']\n"
    )
    master = master_factory("slow:app", "--app-dir", str(tmp_path), "-w", "2", "--threads", "4")
    results: list[tuple[int, bytes]] = []
    threads = [threading.Thread(target=lambda: results.append(get(master.port, "/1.5")))
               for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    start = time.monotonic()
    master.signal(signal.SIGTERM)
    for t in threads:
        t.join(10)
    assert master.proc.wait(10) == 0
    assert time.monotonic() - start < 5
    assert results == [(200, b"done")] * 4


def test_graceful_timeout_bounds_the_stop(master_factory: type[Master], tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(
        "import asyncio\n"
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    if scope['path'] == '/slow':\n"
        "        await asyncio.sleep(30)\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'ok'})\n"
    )
    master = master_factory("slow:app", "--app-dir", str(tmp_path), "--graceful-timeout", "1")
    threads = [threading.Thread(target=get, args=(master.port, "/slow", 20)) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    start = time.monotonic()
    master.signal(signal.SIGTERM)
    assert master.proc.wait(10) == 0
    assert 0.8 < time.monotonic() - start < 3.5
    for t in threads:
        t.join(5)


def test_ttin_ttou(master_factory: type[Master]) -> None:
    master = master_factory("examples.asgi.app:app", "-w", "2")
    master.wait_for(lambda: len(master.workers()) == 2, 10, "2 workers")
    master.signal(signal.SIGTTIN)
    master.wait_for(lambda: len(master.workers()) == 3, 5, "3 workers")
    master.signal(signal.SIGTTOU)
    master.wait_for(lambda: len(master.workers()) == 2, 10, "2 workers")
    master.signal(signal.SIGTTOU)  # (two at once could merge into one signal)
    master.wait_for(lambda: len(master.workers()) == 1, 10, "1 worker")
    assert get(master.port)[0] == 200


def test_hup_replaces_workers_with_new_code_and_no_failures(
    master_factory: type[Master], tmp_path: Path
) -> None:
    app_file = tmp_path / "versioned.py"
    app_file.write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [b'v1']\n"
    )
    master = master_factory("versioned:app", "--app-dir", str(tmp_path), "-w", "2")
    master.wait_for(lambda: len(master.workers()) == 2, 10, "2 workers")
    old = master.workers()
    load = Load(master.port, clients=3)
    try:
        time.sleep(0.3)
        app_file.write_text(app_file.read_text().replace("v1", "v2"))
        master.signal(signal.SIGHUP)
        master.wait_for(lambda: not (master.workers() & old) and len(master.workers()) == 2,
                        20, "the old workers to be replaced")
        time.sleep(0.3)
    finally:
        load.stop()
    assert load.failed == 0, master.output()
    assert load.bodies[-1] == b"v2" and b"v1" in load.bodies
    assert get(master.port)[1] == b"v2"


def test_stuck_worker_is_dumped_killed_and_replaced(
    master_factory: type[Master], tmp_path: Path
) -> None:
    (tmp_path / "stuck.py").write_text(
        "import time\n"
        "def blocking_call():\n"
        "    time.sleep(60)\n"
        "def app(environ, start_response):\n"
        "    if environ['PATH_INFO'] == '/stuck':\n"
        "        blocking_call()\n"
        "    start_response('200 OK', [])\n"
        "    return [b'ok']\n"
    )
    master = master_factory("stuck:app", "--app-dir", str(tmp_path), "--timeout", "2")
    (worker,) = master.workers()
    threading.Thread(target=get, args=(master.port, "/stuck", 15), daemon=True).start()
    master.wait_for(lambda: worker not in master.workers() and len(master.workers()) == 1,
                    10, "the stuck worker to be replaced")
    master.wait_for(lambda: get(master.port, timeout=1)[0] == 200, 5, "the new worker")
    output = master.output()
    assert f"worker {worker} timed out: its event loop has been blocked for" in output
    assert "in blocking_call" in output  # faulthandler's dump of the worker's stack
    assert "killed by SIGABRT" in output


def test_boot_failure_stops_the_server(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('cannot start')\n")
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "twincorn", "serve", "broken:app", "--app-dir", str(tmp_path),
         "-w", "3", "-b", f"127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 1
    assert time.monotonic() - start < 5
    assert "RuntimeError: cannot start" in result.stderr
    assert result.stderr.count("booting worker") <= 3  # no respawn loop


def test_pid_file_and_web_concurrency(tmp_path: Path) -> None:
    pid_file = tmp_path / "twincorn.pid"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "twincorn", "serve", "examples.wsgi.app:app",
         "-b", f"127.0.0.1:{port}", "--pid", str(pid_file)],
        cwd=ROOT, env={**os.environ, "WEB_CONCURRENCY": "3"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(children(proc.pid)) < 3:
            time.sleep(0.05)
        assert len(children(proc.pid)) == 3
        assert pid_file.read_text().strip() == str(proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    assert not pid_file.exists()


def test_process_titles(master_factory: type[Master]) -> None:
    pytest.importorskip("setproctitle")
    master = master_factory("examples.wsgi.app:app", "-w", "2")
    master.wait_for(lambda: len(master.workers()) == 2, 10, "2 workers")

    def title(pid: int) -> str:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()

    assert title(master.pid) == "twincorn: master [examples.wsgi.app:app]"
    for pid in master.workers():
        assert title(pid) == "twincorn: worker [examples.wsgi.app:app]"
