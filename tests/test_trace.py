"""serve --trace: the callable's arguments and answers, logged per request."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time

import pytest

from master_support import ROOT, get
from test_cli import free_port
from twincorn import trace


def test_show_abridges_long_values() -> None:
    assert trace.show(b"abc") == "b'abc'"
    long = trace.show(b"x" * 1000)
    assert long.endswith("... (1000 bytes)") and len(long) < 100
    headers = [(b"h%d" % i, b"v") for i in range(30)]
    assert "... (30 items)" in trace.show(headers)
    assert trace.show({"a": (1,)}) == "{'a': (1,)}"
    assert trace.show("\x1b[31m") == "'\\x1b[31m'"  # no terminal escapes


def test_wsgi_wrapper_passes_everything_through(caplog: pytest.LogCaptureFixture) -> None:
    closed = []

    class Body:
        def __iter__(self):  # type: ignore[no-untyped-def]
            yield b"one"
            yield b"two"

        def close(self) -> None:
            closed.append(True)

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        write = start_response("201 Created", [("X-A", "1")])
        write(b"early")
        return Body()

    sent: list[object] = []

    def start_response(status, headers, exc_info=None):  # type: ignore[no-untyped-def]
        sent.append((status, headers))
        return sent.append

    with caplog.at_level(logging.INFO, "twincorn.error"):
        body = trace.wrap(app, "wsgi")({"REQUEST_METHOD": "GET", "HTTP_HOST": "h"},
                                       start_response)
        assert list(body) == [b"one", b"two"]
        body.close()
    assert sent == [("201 Created", [("X-A", "1")]), b"early"]
    assert closed == [True]
    text = caplog.text
    assert "WSGI: app(environ, start_response)" in text
    assert "'REQUEST_METHOD': 'GET'" in text and "'HTTP_HOST': 'h'" in text
    assert "start_response('201 Created', [('X-A', '1')])" in text
    assert "write(b'early')" in text
    assert "body chunk 2: b'two'" in text
    assert "done: 2 chunks, 6 bytes" in text


def test_asgi_wrapper_passes_everything_through(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        message = await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": message["body"]})
        raise RuntimeError("after the response")

    got: list[object] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"ping", "more_body": False}

    async def send(message: object) -> None:
        got.append(message)

    with caplog.at_level(logging.INFO, "twincorn.error"), pytest.raises(RuntimeError):
        asyncio.run(trace.wrap(app, "asgi")({"type": "http", "path": "/p"}, receive, send))
    assert got[1] == {"type": "http.response.body", "body": b"ping"}
    text = caplog.text
    assert "scope = {'type': 'http', 'path': '/p'}" in text
    assert "await receive() -> {'type': 'http.request', 'body': b'ping'" in text
    assert "await send({'type': 'http.response.start', 'status': 200" in text
    assert "app raised RuntimeError: after the response" in text


@pytest.mark.parametrize("app", ["examples.wsgi.app:app", "examples.asgi.app:app"])
def test_trace_from_the_command_line(app: str) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "twincorn", "serve", app, "-b", f"127.0.0.1:{port}", "--trace",
         "--no-access-log"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while get(port, "/traced?q=1", timeout=1)[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=20)
    if "wsgi" in app:
        assert "'PATH_INFO': '/traced'" in output and "'QUERY_STRING': 'q=1'" in output
        assert "start_response('200 OK'" in output
    else:
        assert "'path': '/traced'" in output and "'query_string': b'q=1'" in output
        assert "await send({'type': 'http.response.start', 'status': 200" in output
