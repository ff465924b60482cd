"""`twincorn load` as a command: flags, files, exit statuses, Ctrl-C, and
the seed's experiment (slow WSGI and ASGI apps under `twincorn serve -w 4`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from master_support import Master
from support import RunningServer

Serve = Callable[..., RunningServer]
ROOT = Path(__file__).resolve().parent.parent


def twincorn_load(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twincorn", "load", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    status = 404 if scope["path"] == "/missing" else 200
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})


def test_a_short_run_writes_its_files(serve: Serve, tmp_path: Path) -> None:
    server = serve(hello)
    done = twincorn_load(server.url + "/", "-u", "2", "-t", "1s",
                         "--json", str(tmp_path / "out.json"), "--csv", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "Aggregated" in done.stdout and "stopped at --run-time" in done.stdout
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["requests"] > 0 and data["failures"] == 0
    assert 0.95 < data["duration_s"] < 1.3
    assert (tmp_path / "out_stats.csv").read_text().startswith("Type,Name,Request Count")


def test_failed_requests_exit_1_unless_thresholds_decide(serve: Serve) -> None:
    server = serve(hello)
    done = twincorn_load(server.url + "/missing", "--stop-after", "20", "-q")
    assert done.returncode == 1
    assert "20 of 20 requests failed" in done.stderr
    done = twincorn_load(server.url + "/missing", "--stop-after", "20", "-q",
                         "--fail-on", "error_rate>100%", "--fail-on", "rps<1")
    assert done.returncode == 0, done.stderr
    done = twincorn_load(server.url + "/", "--stop-after", "20", "-q",
                         "--fail-on", "p50>0ms", "--fail-on", "requests<20")
    assert done.returncode == 1
    assert "failed --fail-on 'p50>0ms'" in done.stderr
    assert "requests<20" not in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["http://127.0.0.1:1/", "-t", "3x"], "-t/--run-time: expected a duration"),
        (["http://127.0.0.1:1/", "--fail-on", "bogus"], "--fail-on"),
        (["http://127.0.0.1:1/", "-u", "0"], "at least 1 user"),
        (["-f", "missing.py"], "not found"),
        (["ftp://x/"], "not an http"),
        ([], "give a URL"),
    ],
)
def test_bad_flags_exit_2(args: list[str], message: str) -> None:
    done = twincorn_load(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr


def test_a_refused_port_fails_every_request_without_spinning(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = twincorn_load(f"http://127.0.0.1:{port}/", "-u", "5", "-t", "1.5s", "-q",
                         "--json", str(tmp_path / "out.json"))
    assert done.returncode == 1
    summary = json.loads((tmp_path / "out.json").read_text())
    assert summary["failures"] == summary["requests"] > 0
    assert summary["errors"][0]["kind"] == "refused"
    # Each user backs off (10 ms, doubling up to 1 s): a few dozen, not thousands.
    assert summary["requests"] < 200, summary["requests"]


def test_web_ui_on_a_busy_port_exits_1() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        done = twincorn_load("http://127.0.0.1:9/", "--web", "--web-port",
                             str(sock.getsockname()[1]))
    assert done.returncode == 1
    assert "Address already in use" in done.stderr


def test_help_lists_the_options() -> None:
    done = twincorn_load("--help")
    assert done.returncode == 0
    for flag in ("--users", "--spawn-rate", "--rate", "--max-in-flight", "--run-time",
                 "--stop-after", "--processes", "--json", "--csv", "--html", "--fail-on",
                 "--web", "--web-port"):
        assert flag in done.stdout


def test_ctrl_c_stops_with_the_results_so_far(serve: Serve, tmp_path: Path) -> None:
    server = serve(hello)
    out = tmp_path / "partial.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "twincorn", "load", server.url + "/", "-u", "2",
         "--json", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert "interrupted (Ctrl-C)" in stdout
    data = json.loads(out.read_text())
    assert data["requests"] > 0 and data["stopped_by"] == "interrupted"
    assert data["duration_s"] > 0.8


def test_ctrl_c_with_processes(serve: Serve, tmp_path: Path) -> None:
    server = serve(hello)
    out = tmp_path / "partial.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "twincorn", "load", server.url + "/", "-u", "2",
         "--processes", "2", "--json", str(out), "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        start_new_session=True,
    )
    time.sleep(2.0)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: the whole group
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    data = json.loads(out.read_text())
    assert data["requests"] == sum(p["requests"] for p in data["processes"]) > 0
    assert data["stopped_by"] == "interrupted"


def load_json(*args: str, timeout: float = 40) -> dict[str, Any]:
    done = twincorn_load(*args, "-q", "--json", "/dev/stdout", timeout=timeout)
    return dict(json.loads(done.stdout))


@pytest.mark.timeout(60)
def test_seed_experiment_blocking_wsgi(master_factory: type[Master]) -> None:
    """16 users without think time against time.sleep(1) on 4 workers: the
    workers serve 4 requests a second, so each request waits ~4 s.

    Each request goes on a new connection (Connection: close), as against
    the seed's gunicorn sync workers, which close every connection: waiting
    connections then queue in the listen backlog, first come first served.
    Over keep-alive, a blocking worker serves the connections it holds and
    the others wait in the backlog, unserved (see the note in docs/load.md).
    """
    master = master_factory("examples.wsgi.slow_app:app", "-w", "4", "--graceful-timeout", "1")
    data = load_json(f"http://127.0.0.1:{master.port}/", "-u", "16", "-t", "7s",
                     "--header", "Connection: close")
    assert 3.0 <= data["rps"] <= 4.6, data["rps"]
    # The first wave waits 1 to 4 s, the later ones 4 s.
    assert 4.0 <= data["latency_ms"]["max"] / 1000 <= 4.5, data["latency_ms"]
    late = [row["p50_ms"] for row in data["timeline"] if row["t"] > 4.5 and row["requests"]]
    assert late and all(3.8 <= p / 1000 <= 4.5 for p in late), late
    assert data["unfinished"]["requests"] == 16


@pytest.mark.timeout(60)
def test_seed_experiment_async_asgi(master_factory: type[Master]) -> None:
    """The same against asyncio.sleep(1): every user gets an answer a second."""
    master = master_factory("examples.asgi.slow_app:app", "-w", "4", "--graceful-timeout", "1")
    data = load_json(f"http://127.0.0.1:{master.port}/", "-u", "16", "-t", "5.5s")
    assert 13 <= data["rps"] <= 17, data["rps"]
    assert 0.99 <= data["latency_ms"]["p50"] / 1000 <= 1.15, data["latency_ms"]
    assert data["latency_ms"]["p99"] / 1000 <= 1.3, data["latency_ms"]
