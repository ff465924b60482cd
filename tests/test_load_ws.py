"""`twincorn load` over WebSocket, against real servers on 127.0.0.1 that
are not twincorn: websockets' own asyncio server (tests/ws_servers.py) and
uvicorn serving a tiny ASGI echo app (tests/ws_asgi_app.py). The scenario
API, round-trip timings, each failure kind, the URL mode in both models,
fragments, pings, and the close at the end of a run and on Ctrl-C."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from twincorn import load
from twincorn.load import StopUser, User, WebSocketError, constant, task
from twincorn.load.results import Results
from twincorn.load.ws_connection import SWEEP_SECONDS, SWEPT_TIMEOUT
from ws_servers import WsServer, free_port, uvicorn_server

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def server() -> Iterator[WsServer]:
    with WsServer() as running:
        yield running


def http(url: str) -> str:
    return url.replace("ws://", "http://")


def rows(results: Results) -> dict[str, tuple[int, int]]:
    """(requests, failures) of each WS row, by name."""
    return {t.name: (t.requests, t.failures) for t in results.tallies if t.method == "WS"}


def errors(results: Results) -> set[tuple[str, str, str]]:
    return {(e.name, e.kind, e.message) for e in results.errors}


def twincorn_load(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twincorn", "load", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )


# -- the scenario API -----------------------------------------------------------------


def test_the_scenario_api(server: WsServer) -> None:
    seen: dict[str, Any] = {}

    class Chat(User):
        host = http(server.url)

        @task
        async def talk(self) -> None:
            async with self.client.websocket("/echo", subprotocols=["chat"],
                                             name="/chat") as ws:
                seen["subprotocol"] = ws.subprotocol
                await ws.send("hello")
                seen["text"] = await ws.receive()
                await ws.send(b"\x00\x01\xff")
                seen["bytes"] = await ws.receive()
                await ws.send("j", name="join")
                seen["join"] = await ws.receive()
                await ws.send("tick", reply=False)
                seen["pushed"] = await ws.receive()  # the echo, read as a push
            async with self.client.websocket("/headers", headers={"X-Test": "yes"}) as ws:
                await ws.send("which?")
                seen["headers"] = json.loads(await ws.receive())
            raise StopUser

    results = load.run(user_classes=[Chat], users=1, run_time="1s")
    assert seen["subprotocol"] == "chat"
    assert (seen["text"], seen["bytes"], seen["join"], seen["pushed"]) == (
        "hello", b"\x00\x01\xff", "j", "tick")
    assert seen["headers"]["X-Test"] == "yes"
    assert seen["headers"]["User-Agent"].startswith("twincorn-load/")
    assert rows(results) == {
        "connect /chat": (1, 0), "/chat": (2, 0), "join": (1, 0), "send /chat": (1, 0),
        "recv /chat": (1, 0), "close /chat": (1, 0),
        "connect /headers": (1, 0), "/headers": (1, 0), "close /headers": (1, 0),
    }
    assert results.failures == 0 and not results.exceptions
    server.wait_closes(2)
    assert sorted(server.closes) == [("/echo", 1000, ""), ("/headers", 1000, "")]


def test_round_trips_are_timed_to_the_reply(server: WsServer) -> None:
    """A server that echoes 50 ms after each message: round trips of 50 ms
    and a little more; the handshake is not in them."""
    results = load.run(server.url + "/delay/50", users=2, run_time="1.5s")
    by_name = results.to_dict()["by_name"]
    trips = by_name["/delay/50"]
    assert trips["requests"] >= 20 and trips["failures"] == 0
    assert 50 <= trips["latency_ms"]["p50"] <= 80
    assert 50 <= trips["latency_ms"]["min"]
    assert by_name["connect /delay/50"]["latency_ms"]["max"] < 50


# -- failures, by kind ------------------------------------------------------------------


def failing_user(base: str, path: str) -> type[User]:
    class Once(User):
        host = base
        wait_time = constant(0.2)

        @task
        async def go(self) -> None:
            async with self.client.websocket(path) as ws:
                await ws.send("hi")
                await ws.receive(timeout=0.3)

    return Once


@pytest.mark.parametrize(("path", "row", "kind", "message"), [
    ("/forbidden", "connect /forbidden", "handshake refused",
     "handshake refused: HTTP 403 Forbidden"),
    ("/policy", "/policy", "closed by the server",
     "closed by the server: 1008 (policy violation) too many"),
    ("/silent", "/silent", "timeout", "receive timeout: no message within 0.3s"),
    ("/reset", "/reset", "reset", "connection reset by peer"),
])
def test_each_failure_kind(server: WsServer, path: str, row: str, kind: str,
                           message: str) -> None:
    results = load.run(user_classes=[failing_user(http(server.url), path)], users=1,
                       run_time="1s")
    assert (row, kind, message) in errors(results)
    assert rows(results)[row][1] >= 1
    assert not results.exceptions  # WebSocketError is counted once, as the failure


def test_a_refused_connection() -> None:
    port = free_port()  # nothing listens there
    results = load.run(user_classes=[failing_user(f"http://127.0.0.1:{port}", "/ws")], users=1,
                       run_time="0.5s")
    assert errors(results) == {("connect /ws", "refused", "connection refused")}


def test_websocket_error_can_be_caught(server: WsServer) -> None:
    caught: list[str] = []

    class Careful(User):
        host = http(server.url)

        @task
        async def go(self) -> None:
            async with self.client.websocket("/silent") as ws:
                await ws.send("hi")
                try:
                    await ws.receive(timeout=0.1)
                except WebSocketError as exc:
                    caught.append(exc.kind)
            raise StopUser

    results = load.run(user_classes=[Careful], users=1, run_time="0.6s")
    assert caught == ["timeout"]
    assert rows(results)["/silent"] == (1, 1)
    assert rows(results)["close /silent"] == (1, 0)


def test_a_long_receive_timeout_is_swept(server: WsServer) -> None:
    """Timeouts of a second or more have no timer each: the loop's sweep
    ends them, at most SWEEP_SECONDS late."""
    waited: list[float] = []

    class Patient(User):
        host = http(server.url)

        @task
        async def go(self) -> None:
            async with self.client.websocket("/silent") as ws:
                await ws.send("hi")
                started = time.perf_counter()
                try:
                    await ws.receive(timeout=SWEPT_TIMEOUT)
                except WebSocketError as exc:
                    assert exc.kind == "timeout"
                    waited.append(time.perf_counter() - started)
            raise StopUser

    results = load.run(user_classes=[Patient], users=1, run_time="2s")
    assert len(waited) == 1
    assert SWEPT_TIMEOUT <= waited[0] <= SWEPT_TIMEOUT + SWEEP_SECONDS + 0.2
    assert rows(results)["/silent"] == (1, 1)


def test_a_block_cut_by_the_end_of_the_run_closes_with_1000(server: WsServer) -> None:
    """The run ends while each user waits inside `async with` for a reply
    that never comes: the block's exit sends 1000, nothing is counted failed,
    and the waiting round trips are reported unfinished."""

    class Waiting(User):
        host = http(server.url)

        @task
        async def go(self) -> None:
            async with self.client.websocket("/silent") as ws:
                await ws.send("hello?")
                await ws.receive()

    results = load.run(user_classes=[Waiting], users=2, run_time="0.5s")
    assert results.failures == 0 and results.unfinished == 2
    assert "close /silent" not in rows(results)
    server.wait_closes(2)
    assert server.closes == [("/silent", 1000, "")] * 2


# -- the URL mode ------------------------------------------------------------------------


def test_url_mode_closed_model(server: WsServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = twincorn_load(server.url + "/echo", "--message-size", "16KiB", "-u", "4", "-t", "1s",
                         "--json", str(tmp_path / "out.json"), "--csv", str(out))
    assert done.returncode == 0, done.stderr
    assert any(line.split()[:2] == ["WS", "/echo"] for line in done.stdout.splitlines())
    assert any(line.split()[:3] == ["WS", "connect", "/echo"]
               for line in done.stdout.splitlines())
    data = json.loads((tmp_path / "out.json").read_text())
    echo, connect = data["by_name"]["/echo"], data["by_name"]["connect /echo"]
    assert (connect["requests"], connect["failures"]) == (4, 0)
    assert echo["requests"] > 50 and echo["failures"] == 0 and echo["method"] == "WS"
    assert echo["avg_size"] == 16384
    table = list(csv.DictReader(io.StringIO((tmp_path / "out_stats.csv").read_text())))
    assert [(r["Type"], r["Name"]) for r in table] == [
        ("WS", "/echo"), ("WS", "connect /echo"), ("", "Aggregated")]
    server.wait_closes(4)
    assert [code for _, code, _ in server.closes] == [1000] * 4


def test_url_mode_open_model(server: WsServer) -> None:
    results = load.run(server.url + "/echo", rate=200, run_time="1s", max_in_flight=20)
    data = results.to_dict()
    echo = data["by_name"]["/echo"]
    assert 170 <= echo["requests"] <= 205 and echo["failures"] == 0
    assert "latency_uncorrected_ms" in echo
    assert 1 <= data["by_name"]["connect /echo"]["requests"] <= 20


def test_open_model_counts_from_the_intended_time(server: WsServer) -> None:
    """40 round trips a second on one socket whose echo takes 50 ms: they
    queue, and the corrected latency grows, while each one's own is ~50 ms."""
    results = load.run(server.url + "/delay/50", rate=40, run_time="1.5s", max_in_flight=1)
    echo = results.to_dict()["by_name"]["/delay/50"]
    assert 50 <= echo["latency_uncorrected_ms"]["p50"] <= 80
    assert echo["latency_ms"]["max"] > 300


def test_a_round_trip_left_open_at_close_is_a_failure(server: WsServer) -> None:
    class Forgetful(User):
        host = http(server.url)

        @task
        async def go(self) -> None:
            async with self.client.websocket("/silent") as ws:
                await ws.send("anyone?")
            raise StopUser

    results = load.run(user_classes=[Forgetful], users=1, run_time="0.5s")
    assert errors(results) == {("/silent", "no reply", "no reply: closed before it came")}
    assert rows(results)["close /silent"] == (1, 0)


def test_url_mode_text_messages_and_fragments(server: WsServer) -> None:
    results = load.run(server.url + "/fragments", message_text="héllo wörld, en trois",
                       users=2, run_time="0.5s")
    assert results.failures == 0 and rows(results)["/fragments"][0] > 10
    results = load.run(server.url + "/fragments", message_size=3000, users=2, run_time="0.5s")
    assert results.failures == 0 and rows(results)["/fragments"][0] > 10


def test_an_echo_that_differs_fails_the_run(server: WsServer) -> None:
    done = twincorn_load(server.url + "/truncate", "--stop-after", "20", "-q")
    assert done.returncode == 1
    assert "failed" in done.stderr
    results = load.run(server.url + "/truncate", stop_after=20)
    assert errors(results) == {("/truncate", "echo mismatch",
                                "echo mismatch: 64 bytes sent, 63 back")}


@pytest.mark.parametrize(("path", "row", "kind", "message"), [
    ("/forbidden", "connect /forbidden", "handshake refused",
     "handshake refused: HTTP 403 Forbidden"),
    ("/policy", "/policy", "closed by the server",
     "closed by the server: 1008 (policy violation) too many"),
    ("/silent", "/silent", "timeout", "receive timeout: no message within 0.5s"),
    ("/reset", "/reset", "reset", "connection reset by peer"),
])
def test_url_mode_failures_by_kind(server: WsServer, path: str, row: str, kind: str,
                                   message: str) -> None:
    """The lean echo (ws_fastpath.py) sorts failures as a scenario's socket
    does, and opens a new socket after each (a failed connect after a pause)."""
    results = load.run(server.url + path, users=1, run_time="1.2s", timeout="0.5s")
    assert (row, kind, message) in errors(results)
    requests, failures = rows(results)[row]
    assert failures >= 1 and requests == failures
    if path == "/forbidden":  # 10 ms, 20, 40... between attempts: not a spin
        assert 3 <= requests <= 8, requests
    elif path != "/silent":  # a new socket after each failure
        assert rows(results)["connect " + path][0] >= 2


def test_a_refused_port_in_url_mode() -> None:
    port = free_port()  # nothing listens there
    results = load.run(f"ws://127.0.0.1:{port}/echo", users=2, run_time="0.5s")
    assert errors(results) == {("connect /echo", "refused", "connection refused")}
    assert "/echo" not in rows(results) or rows(results)["/echo"] == (0, 0)


def test_url_mode_ends_each_socket_with_1000(server: WsServer) -> None:
    results = load.run(server.url + "/echo", users=3, run_time="0.5s")
    assert results.failures == 0  # (the 3 round trips in flight: unfinished)
    server.wait_closes(3)
    assert server.closes == [("/echo", 1000, "")] * 3


def test_a_ping_from_the_server_is_answered(server: WsServer) -> None:
    results = load.run(server.url + "/ping", users=2, run_time="0.5s")
    assert results.failures == 0 and rows(results)["/ping"][0] > 0
    assert server.pongs == 2


def test_url_mode_with_processes(server: WsServer) -> None:
    done = twincorn_load(server.url + "/echo", "-u", "2", "--processes", "2", "-t", "1s", "-q",
                         "--json", "/dev/stdout", timeout=60)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["by_name"]["connect /echo"]["requests"] == 2
    assert data["failures"] == 0 and len(data["processes"]) == 2


def test_ctrl_c_closes_every_socket_with_1000(server: WsServer, tmp_path: Path) -> None:
    out = tmp_path / "partial.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "twincorn", "load", server.url + "/echo", "-u", "3",
         "--json", str(out), "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    deadline = time.monotonic() + 15
    while server.connections < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert json.loads(out.read_text())["stopped_by"] == "interrupted"
    server.wait_closes(3)
    assert [code for _, code, _ in server.closes] == [1000] * 3


# -- uvicorn -----------------------------------------------------------------------------

needs_uvicorn = pytest.mark.skipif(
    importlib.util.find_spec("uvicorn") is None,
    reason="uvicorn is not installed (pip install -e '.[test]')",
)


@needs_uvicorn
@pytest.mark.timeout(60)
def test_against_uvicorn() -> None:
    with uvicorn_server() as base:
        results = load.run(base + "/echo", users=4, run_time="1s")
        assert results.failures == 0 and rows(results)["/echo"][0] > 50
        results = load.run(base + "/delay/50", users=2, run_time="1.2s")
        p50 = results.to_dict()["by_name"]["/delay/50"]["latency_ms"]["p50"]
        assert 50 <= p50 <= 80
        results = load.run(base + "/close/1011", users=1, stop_after=3)
        assert ("/close/1011", "closed by the server",
                "closed by the server: 1011 (internal error) as asked") in errors(results)
