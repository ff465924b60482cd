"""`twincorn serve` as a process: loading apps, errors, the examples."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_pair() -> int:
    """A port p with p and p+1 free, below the ephemeral range: the demo's
    own client connections (ephemeral source ports) cannot take them."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        try:
            for candidate in (port, port + 1):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of ports")


def run_cli(*args: str, cwd: Path = ROOT, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twincorn", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout,
    )


class Served:
    """`twincorn serve ...` in the background, stopped with SIGTERM."""

    def __init__(self, *args: str, cwd: Path = ROOT) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "twincorn", "serve", *args, "--port", str(self.port)],
            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.proc.communicate()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("server did not start")

    def get(self, path: str = "/") -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def stop(self) -> tuple[int, str, str]:
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=10)
        return self.proc.returncode, out, err


@pytest.mark.parametrize(
    ("app", "interface"),
    [("examples.wsgi.app:app", "wsgi"), ("examples.asgi.app:app", "asgi")],
)
def test_serve_examples(app: str, interface: str) -> None:
    server = Served(app)
    try:
        r = server.get()
        assert r.status_code == 200 and r.text == "Hello, World!\n"
    finally:
        code, out, err = server.stop()
    assert code == 0
    assert f"interface: {interface} (detected)" in err
    assert "listening on http://127.0.0.1:" in err
    assert '"GET / HTTP/1.1" 200 14' in out  # the access log


def test_serve_from_the_apps_folder() -> None:
    server = Served("app:app", cwd=ROOT / "examples" / "wsgi")
    try:
        assert server.get().text == "Hello, World!\n"
    finally:
        assert server.stop()[0] == 0


def test_factory_and_app_dir(tmp_path: Path) -> None:
    (tmp_path / "made.py").write_text(
        "def create_app():\n"
        "    def app(environ, start_response):\n"
        "        start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "        return [b'made']\n"
        "    return app\n"
    )
    for args in (("made:create_app()",), ("made:create_app", "--factory")):
        server = Served(*args, "--app-dir", str(tmp_path))
        try:
            assert server.get().text == "made"
        finally:
            assert server.stop()[0] == 0


@pytest.mark.parametrize(
    ("source", "spec", "message", "traceback", "early"),
    [
        # early: found by the master's look at the source, before it binds
        ("", "nosuchmodule:app", "module 'nosuchmodule' not found", False, True),
        ("x = 1\n", "mod:app", "has no attribute 'app'", False, True),
        ("app = 42\n", "mod:app", "is not callable (it is an int)", False, False),
        ("raise RuntimeError('boom at import')\napp = None\n", "mod:app",
         "importing 'mod' raised", True, False),
        ("import missing_dependency\napp = None\n", "mod:app", "importing 'mod' raised", True,
         False),
        ("def app(*args):\n    pass\n", "mod:app", "cannot tell whether", False, False),
        ("def app(a, b, c):\n    pass\n", "mod:app", "--interface asgi", False, False),
    ],
)
def test_load_errors(tmp_path: Path, source: str, spec: str, message: str, traceback: bool,
                     early: bool) -> None:
    (tmp_path / "mod.py").write_text(source)
    result = run_cli("serve", spec, "--app-dir", str(tmp_path), "--port", str(free_port()))
    assert result.returncode == 1
    error_lines = [line for line in result.stderr.splitlines() if "[ERROR]" in line]
    assert len(error_lines) == 1 and message in error_lines[0], result.stderr
    assert ("Traceback (most recent call last)" in result.stderr) is traceback
    assert ("booting worker" not in result.stderr) is early, result.stderr
    if traceback:  # the application's frames, not importlib's
        assert "importlib" not in result.stderr and "importer.py" not in result.stderr


def test_interface_override(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text(
        "def app(*args):\n"
        "    environ, start_response = args\n"
        "    start_response('200 OK', [])\n"
        "    return [b'ok']\n"
    )
    server = Served("mod:app", "--app-dir", str(tmp_path), "--interface", "wsgi")
    try:
        assert server.get().text == "ok"
    finally:
        code, _, err = server.stop()
    assert code == 0 and "interface: wsgi (given)" in err


def test_address_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "examples.wsgi.app:app", "-b", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_bad_flag_value() -> None:
    result = run_cli("serve", "examples.wsgi.app:app", "--threads", "zero")
    assert result.returncode == 2 and "--threads" in result.stderr


def test_help_lists_defaults() -> None:
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    assert "--limit-request-line SIZE" in result.stdout
    text = " ".join(result.stdout.split())  # argparse wraps lines
    assert "[default: 4094]" in text and "[default: 100m]" in text and "[default: 30s]" in text


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_run_scripts(kind: str) -> None:
    """examples/*/run.py start the server from Python (on their own port)."""
    port = 8000 if kind == "wsgi" else 8001
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        pytest.skip(f"port {port} is in use here")
    except OSError:
        pass
    proc = subprocess.Popen(
        [sys.executable, "run.py"], cwd=ROOT / "examples" / kind,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        assert r.text == "Hello, World!\n"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0


def test_demo_runs_briefly() -> None:
    port = free_port_pair()
    result = subprocess.run(
        [sys.executable, "examples/demo.py", "--port", str(port), "--seconds", "0.5"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "WSGI at" in result.stdout and "ASGI at" in result.stdout
    assert result.stdout.count("answered 200") == 2


def test_print_config() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "twincorn", "serve", "examples.wsgi.app:app", "--print-config",
         "-w", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=15,
        env={**os.environ, "TWINCORN_THREADS": "4"},
    )
    assert result.returncode == 0
    lines = dict(line.split(" = ", 1) for line in result.stdout.strip().splitlines())
    values = {k.strip(): v for k, v in lines.items()}
    assert values["workers"] == "3" and values["threads"] == "4"
    assert values["app"] == "'examples.wsgi.app:app'"
    assert values["limit_request_line"] == "4094"


def test_check_config(tmp_path: Path) -> None:
    ok = run_cli("serve", "examples.asgi.app:app", "--check-config")
    assert ok.returncode == 0 and "is an ASGI application" in ok.stdout
    (tmp_path / "bad.py").write_text("raise ImportError('nope')\n")
    bad = run_cli("serve", "bad:app", "--app-dir", str(tmp_path), "--check-config")
    assert bad.returncode == 1 and "importing 'bad' raised" in bad.stderr
