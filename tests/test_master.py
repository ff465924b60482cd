"""The prefork master as whole processes: workers, signals, supervision."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from master_support import ROOT, Load, Master, children, get
from test_cli import free_port

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="the master needs fork"),
    pytest.mark.timeout(60),
]


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
    assert f"stuck worker {worker}: serving GET /stuck HTTP/1.1 for " in output
    assert "in blocking_call" in output  # faulthandler's dump of the worker's stack
    assert "killed by SIGABRT" in output
    assert "out-of-memory" not in output


def test_stuck_asgi_worker_names_the_blocking_request(
    master_factory: type[Master], tmp_path: Path
) -> None:
    (tmp_path / "stuck_asgi.py").write_text(
        "import asyncio, time\n"
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    if scope['path'] == '/block':\n"
        "        time.sleep(60)  # the mistake: a blocking call in async code\n"
        "    else:\n"
        "        await asyncio.sleep(0.01)\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'ok'})\n"
    )
    master = master_factory("stuck_asgi:app", "--app-dir", str(tmp_path), "--timeout", "2")
    (worker,) = master.workers()
    for path in ("/calm", "/block?x=1", "/calm"):
        threading.Thread(target=get, args=(master.port, path, 15), daemon=True).start()
        time.sleep(0.1)
    master.wait_for(lambda: worker not in master.workers() and len(master.workers()) == 1,
                    10, "the stuck worker to be replaced")
    output = master.output()
    assert f"stuck worker {worker}: serving GET /block?x=1 HTTP/1.1 for " in output
    seconds = float(output.split("/block?x=1 HTTP/1.1 for ")[1].split()[0])
    assert 1.0 <= seconds < 6.0  # the heartbeat beats once a second


def test_boot_failure_stops_the_server(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('cannot start')\napp = None\n")
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
