"""When the client goes, and when it only seems to: over real sockets.

- A client that closes its socket while an ASGI application waits in
  receive() (an SSE stream, a long poll) is reported at once
  (http.disconnect), not when the application's own timeout runs out; so a
  worker stops promptly after TERM.
- A keep-alive client whose next request waits unread behind a blocking
  WSGI call is served, not reset by its idle deadline (issue 9: the
  tutorial's own step ended with "connection reset by peer").
"""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from master_support import Master
from support import RunningServer, connect, parse_responses
from wire_client import Client, final, get

SSE_APP = '''
import asyncio

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await receive()  # the (empty) body
    if scope["path"] != "/events":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"up"})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream")]})
    await send({"type": "http.response.body", "body": b"data: hello\\n\\n", "more_body": True})
    # Waits to hear the client left; its own timeout is a minute.
    try:
        await asyncio.wait_for(receive(), 60)
    except asyncio.TimeoutError:
        pass
    await send({"type": "http.response.body", "body": b""})
'''


def sse_app(heard: list[tuple[str, float]]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data: hello\n\n",
                    "more_body": True})
        message = await asyncio.wait_for(receive(), 30)
        heard.append((message["type"], time.monotonic()))

    return app


@pytest.mark.parametrize("how", ["close", "shutdown"])
def test_a_client_that_closes_is_heard_at_once(how: str) -> None:
    heard: list[tuple[str, float]] = []
    with RunningServer(sse_app(heard), interface="asgi") as server:
        sock = connect(server.port)
        sock.sendall(get("/events"))
        assert b"data: hello" in sock.recv(65536)
        gone_at = time.monotonic()
        if how == "close":
            sock.close()
        else:
            sock.shutdown(socket.SHUT_WR)  # the same FIN, seen from the server
        deadline = time.monotonic() + 5
        while not heard and time.monotonic() < deadline:
            time.sleep(0.01)
        if how == "shutdown":
            sock.close()
    assert [kind for kind, _ in heard] == ["http.disconnect"]
    assert heard[0][1] - gone_at < 0.5


@pytest.mark.timeout(30)
def test_term_after_clients_left_an_event_stream_is_quick(
    master_factory: type[Master], tmp_path: Path
) -> None:
    (tmp_path / "sse.py").write_text(SSE_APP)
    master = master_factory("sse:app", "--app-dir", str(tmp_path), "-w", "2")
    for _ in range(4):
        with socket.create_connection(("127.0.0.1", master.port), timeout=5) as sock:
            sock.sendall(get("/events"))
            assert b"data: hello" in sock.recv(65536)
    time.sleep(0.2)
    started = time.monotonic()
    master.signal(signal.SIGTERM)
    master.proc.wait(20)
    # The streams ended when their clients closed: nothing to wait for
    # (gunicorn takes about 2 s here; before, twincorn waited on its apps).
    assert time.monotonic() - started < 3.0, master.output()
    assert master.proc.returncode == 0


@pytest.mark.timeout(30)
def test_a_request_waiting_unread_behind_a_blocking_call_is_served() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/block":
            time.sleep(3.5)  # far past the keep-alive deadline, loop blocked
        start_response("200 OK", [])
        return [b"ok"]

    with RunningServer(app, interface="wsgi", timeout_keep_alive=1) as server:
        with Client(server.port) as keeper:
            keeper.send(get("/one"))
            assert len(final(keeper.responses(1))) == 1
            blocker = threading.Thread(target=blocked_request, args=(server.port,))
            blocker.start()
            time.sleep(0.3)  # the worker is now inside the blocking call
            keeper.send(get("/two"))  # reaches the kernel; the loop cannot read it
            responses = final(keeper.responses(2, timeout=10))
            blocker.join(10)
    assert [r.status for r in responses] == [200, 200]


def blocked_request(port: int) -> None:
    with connect(port, timeout=10) as sock:
        sock.sendall(get("/block", "Connection: close"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert parse_responses(data)[0].status == 200
