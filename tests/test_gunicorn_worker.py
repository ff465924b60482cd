"""twincorn's worker under gunicorn's master (-k twincorn.gunicorn.Worker)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from master_support import ROOT, children, get
from test_cli import free_port

pytest.importorskip("gunicorn")
pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="gunicorn needs fork"),
    pytest.mark.timeout(60),
]
GUNICORN = [sys.executable, "-c", "from gunicorn.app.wsgiapp import run; run()"]


def start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    log = tmp_path / "gunicorn.log"
    with log.open("w") as out:  # the child keeps its own copy
        proc = subprocess.Popen(
            [*GUNICORN, *args, "-k", "twincorn.gunicorn.Worker", "-b", f"127.0.0.1:{port}",
             "--access-logfile", "-", "--graceful-timeout", "10"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 15
    while get(port, timeout=2)[0] != 200:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"gunicorn did not start:\n{log.read_text()}")
        time.sleep(0.1)
    return proc, port, log


@pytest.mark.parametrize("app", ["examples.wsgi.app:app", "examples.asgi.app:app"])
def test_serves_wsgi_and_asgi_apps(tmp_path: Path, app: str) -> None:
    proc, port, log = start(tmp_path, app, "-w", "2")
    try:
        deadline = time.monotonic() + 10
        while len(children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(children(proc.pid)) == 2
        status, body = get(port, "/hello")
        assert status == 200 and body
        time.sleep(0.2)
        text = log.read_text()
        assert "Using worker: twincorn.gunicorn.Worker" in text
        assert '"GET /hello HTTP/1.1" 200' in text  # gunicorn's access log format
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def test_term_lets_a_slow_request_finish(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(
        "import asyncio\n"
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    await asyncio.sleep(float(scope['path'][1:] or 0))\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'done'})\n"
    )
    proc, port, _ = start(tmp_path, "slow:app", "--chdir", str(tmp_path))
    result: list[tuple[int, bytes]] = []
    client = threading.Thread(target=lambda: result.append(get(port, "/1.0")))
    client.start()
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    client.join(10)
    assert result == [(200, b"done")]
    assert proc.wait(20) == 0


def test_boot_failure_stops_gunicorn(tmp_path: Path) -> None:
    (tmp_path / "nostart.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] == 'lifespan':\n"
        "        await receive()\n"
        "        await send({'type': 'lifespan.startup.failed', 'message': 'no database'})\n"
    )
    result = subprocess.run(
        [*GUNICORN, "nostart:app", "--chdir", str(tmp_path), "-k", "twincorn.gunicorn.Worker",
         "-b", f"127.0.0.1:{free_port()}"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode != 0
    assert "no database" in result.stderr


def test_gunicorn_is_optional() -> None:
    src = (ROOT / "src" / "twincorn").rglob("*.py")
    importers = [p.name for p in src if "import gunicorn" in p.read_text()
                 or "from gunicorn" in p.read_text()]
    assert importers == ["gunicorn.py"]
