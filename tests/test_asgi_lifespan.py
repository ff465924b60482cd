"""The ASGI lifespan protocol: auto, on and off; startup, state, shutdown.

In a worker thread (RunningServer) and, for the exit status and message of
a failed startup, as `python -m twincorn serve` in a subprocess.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from asgi_types import Message, Receive, Scope, Send, ServeFn
from support import RunningServer

ROOT = Path(__file__).resolve().parent.parent


async def respond(send: Send, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


class LifespanApp:
    """Supports lifespan; records every event in `log` (shared with the test)."""

    def __init__(self, startup: Message | None = None, shutdown: Message | None = None) -> None:
        self.log: list[str] = []
        self.startup_answer = startup or {"type": "lifespan.startup.complete"}
        self.shutdown_answer = shutdown or {"type": "lifespan.shutdown.complete"}
        self.request_states: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            assert scope["asgi"]["version"] == "3.0"
            while True:
                try:
                    message = await receive()
                except asyncio.CancelledError:
                    self.log.append("cancelled")
                    raise
                if message["type"] == "lifespan.startup":
                    self.log.append("startup")
                    scope["state"]["db"] = {"connections": 1}
                    scope["state"]["name"] = "shared"
                    await send(self.startup_answer)
                elif message["type"] == "lifespan.shutdown":
                    self.log.append("shutdown")
                    await send(self.shutdown_answer)
                    return
        else:
            self.log.append("request")
            state = scope["state"]
            self.request_states.append(dict(state))
            state["name"] = "changed by a request"  # must not leak to the next
            state["db"]["connections"] += 1  # a shallow copy: shared objects
            await respond(send, b"ok")


def wait_stopped(server: RunningServer) -> None:
    """Join the worker thread (a worker whose startup failed ends by itself)."""
    server.stop(timeout=5)
    assert server.exit_status is not None


# -- auto ------------------------------------------------------------------------


def test_auto_with_an_app_that_raises_on_lifespan_still_serves(
    serve: ServeFn, caplog: pytest.LogCaptureFixture
) -> None:
    scopes: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope["type"])
        if scope["type"] != "http":
            raise ValueError(f"unsupported scope {scope['type']}")
        await respond(send, b"served")

    with caplog.at_level(logging.INFO, logger="twincorn.error"):
        server = serve(app, lifespan="auto")
        assert httpx.get(server.url).text == "served"
        server.stop()
    assert server.exit_status == 0
    assert scopes == ["lifespan", "http"]
    assert any("lifespan" in r.getMessage() and "did not answer startup" in r.getMessage()
               for r in caplog.records)
    # An app that does not speak lifespan is not an error in auto mode.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_auto_with_an_app_that_returns_on_lifespan_still_serves(serve: ServeFn) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await respond(send, b"served")

    server = serve(app, lifespan="auto")
    assert httpx.get(server.url).text == "served"
    server.stop()
    assert server.exit_status == 0


def test_auto_with_an_app_that_supports_it(serve: ServeFn) -> None:
    app = LifespanApp()
    server = serve(app, lifespan="auto")
    assert app.log == ["startup"]
    assert httpx.get(server.url).text == "ok"
    server.stop()
    assert app.log == ["startup", "request", "shutdown"]
    assert server.exit_status == 0


# -- on --------------------------------------------------------------------------


def test_on_startup_state_and_shutdown(serve: ServeFn) -> None:
    app = LifespanApp()
    server = serve(app, lifespan="on")
    assert app.log == ["startup"]  # before any request, before serving
    with httpx.Client(base_url=server.url) as client:
        for _ in range(3):
            assert client.get("/").text == "ok"
    # Each request gets a copy of the state: a key changed by one request is
    # not seen by the next, while the objects in it are shared (shallow copy).
    names = [state["name"] for state in app.request_states]
    assert names == ["shared", "shared", "shared"]
    assert app.request_states[-1]["db"]["connections"] == 4
    assert app.log == ["startup", "request", "request", "request"]
    server.stop()
    assert app.log[-1] == "shutdown"
    assert server.exit_status == 0


def test_on_with_an_app_that_does_not_support_it_exits_3(
    serve: ServeFn, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise RuntimeError("lifespan? never heard of it")
        await respond(send, b"never served")

    with caplog.at_level(logging.INFO, logger="twincorn.error"):
        server = serve(app, lifespan="on")
        wait_stopped(server)
    assert server.exit_status == 3
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "never heard of it" in messages
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


@pytest.mark.parametrize("mode", ["on", "auto"])
def test_startup_failed_stops_the_worker_with_the_message(
    serve: ServeFn, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    app = LifespanApp(startup={"type": "lifespan.startup.failed", "message": "no database"})
    with caplog.at_level(logging.INFO, logger="twincorn.error"):
        server = serve(app, lifespan=mode)
        wait_stopped(server)
    assert server.exit_status == 3
    # The lifespan call, still waiting for events, was ended rather than
    # left pending when the loop closed.
    assert app.log == ["startup", "cancelled"]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("no database" in m for m in errors)
    assert not any("listening on" in r.getMessage() for r in caplog.records)


def test_shutdown_failed_is_logged_and_the_exit_is_clean(
    serve: ServeFn, caplog: pytest.LogCaptureFixture
) -> None:
    app = LifespanApp(shutdown={"type": "lifespan.shutdown.failed", "message": "flush failed"})
    server = serve(app, lifespan="on")
    with caplog.at_level(logging.INFO, logger="twincorn.error"):
        server.stop()
    assert server.exit_status == 0
    assert app.log == ["startup", "shutdown"]
    assert any("flush failed" in r.getMessage() for r in caplog.records
               if r.levelno >= logging.ERROR)


def test_shutdown_waits_for_in_flight_requests(serve: ServeFn) -> None:
    log: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                log.append(kind)
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        await asyncio.sleep(0.3)
        log.append("response")
        await respond(send, b"late")

    server = serve(app, lifespan="on", graceful_timeout=3)
    results: list[str] = []
    client = threading.Thread(target=lambda: results.append(httpx.get(server.url).text))
    client.start()
    time.sleep(0.1)
    server.stop()
    client.join(3)
    assert results == ["late"]
    assert log == ["startup", "response", "shutdown"]


# -- off ---------------------------------------------------------------------------


def test_off_never_calls_the_app_with_lifespan(serve: ServeFn) -> None:
    scopes: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope["type"])
        await respond(send, b"ok")

    server = serve(app, lifespan="off")
    assert httpx.get(server.url).text == "ok"
    server.stop()
    assert scopes == ["http"]
    assert server.exit_status == 0


def test_state_is_an_empty_dict_per_request_without_lifespan(serve: ServeFn) -> None:
    states: list[dict[str, Any]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        states.append(scope["state"])
        scope["state"]["mine"] = len(states)
        await respond(send, b"ok")

    server = serve(app, lifespan="off")
    with httpx.Client(base_url=server.url) as client:
        client.get("/")
        client.get("/")
    assert [dict(s) for s in states] == [{"mine": 1}, {"mine": 2}]
    assert states[0] is not states[1]


# -- twincorn serve in a subprocess ------------------------------------------------

LIFESPAN_APP = '''
import sys

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if MODE == "fail":
                    await send({"type": "lifespan.startup.failed",
                                "message": "cannot reach the database at db:5432"})
                    return
                print("app: startup", file=sys.stderr, flush=True)
                await send({"type": "lifespan.startup.complete"})
            else:
                print("app: shutdown", file=sys.stderr, flush=True)
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello from the subprocess"})
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_command(tmp_path: Path, mode: str, port: int) -> list[str]:
    (tmp_path / "lifeapp.py").write_text(f"MODE = {mode!r}\n" + textwrap.dedent(LIFESPAN_APP))
    return [
        sys.executable, "-m", "twincorn", "serve", "lifeapp:app",
        "--app-dir", str(tmp_path), "--bind", f"127.0.0.1:{port}",
        "--lifespan", "on", "--no-access-log",
    ]


def subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWINCORN_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    return env


def test_serve_exits_non_zero_with_the_startup_failure_message(tmp_path: Path) -> None:
    result = subprocess.run(
        serve_command(tmp_path, "fail", free_port()),
        capture_output=True, text=True, timeout=5, env=subprocess_env(),
    )
    assert result.returncode == 3, result.stderr
    assert "cannot reach the database at db:5432" in result.stderr
    assert "listening on" not in result.stderr


def test_serve_runs_startup_and_shutdown_around_serving(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        serve_command(tmp_path, "ok", port),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=subprocess_env(),
    )
    try:
        deadline = time.monotonic() + 4
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        assert response.text == "hello from the subprocess"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=5)
    assert proc.returncode == 0, stderr
    assert stderr.index("app: startup") < stderr.index("listening on")
    assert "app: shutdown" in stderr
