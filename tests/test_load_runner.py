"""Runs against a real twincorn server: accuracy, the two load models,
coordinated omission, stopping, and --processes."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from load_support import run_loop
from support import RunningServer
from twincorn.load import LoadPlan, LoadRun, User, constant, task
from twincorn.load.results import Results
from twincorn.load.scenario import from_classes

Serve = Callable[..., RunningServer]


def hello_app() -> tuple[Callable[..., Any], itertools.count[int]]:
    served = itertools.count()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        next(served)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    return app, served


# A server that answers every request 50 ms after it came, as exactly as
# the machine allows: its own process (no shared GIL), a thread per
# connection, and time.sleep (an event loop's timers have millisecond grain).
FIXED_DELAY_SERVER = """
import socket, sys, threading, time
def serve(sock):
    with sock:
        data = b""
        while True:
            while b"\\r\\n\\r\\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                data += chunk
            data = data.partition(b"\\r\\n\\r\\n")[2]
            time.sleep(float(sys.argv[1]))
            sock.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok")
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
while True:
    sock, _ = listener.accept()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=serve, args=(sock,), daemon=True).start()
"""


@pytest.fixture
def fixed_delay_server() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-c", FIXED_DELAY_SERVER, "0.05"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield f"http://127.0.0.1:{int(proc.stdout.readline())}/"
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def stall_once_app(after: float, stall: float) -> Callable[..., Any]:
    """Answers at once, except that `after` seconds into the run it blocks
    its whole event loop for `stall` seconds, once."""
    state = {"first": 0.0, "stalled": False}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        now = time.monotonic()
        state["first"] = state["first"] or now
        if not state["stalled"] and now - state["first"] >= after:
            state["stalled"] = True
            time.sleep(stall)  # the server's loop is stuck: every connection waits
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def run(plan: LoadPlan, scenario: Any = None, rows: list[dict[str, Any]] | None = None
        ) -> Results:
    async def main() -> Results:
        load = LoadRun(plan, scenario)
        if rows is not None:
            load.subscribe(rows.append)
        return await load.run()

    return run_loop(main())


class Quick(User):
    wait_time = constant(0.01)

    @task
    async def index(self) -> None:
        await self.client.get("/")


class Busy(User):
    @task
    async def index(self) -> None:
        await self.client.get("/")


def test_latency_accuracy_against_a_fixed_50ms_server(fixed_delay_server: str) -> None:
    # Nothing is measured below the server's own 50 ms, and the bulk sits
    # on it. The tail is the machine's: on this shared machine a neighbour's
    # burst delays a few responses (wrk run beside it sees the same; with
    # four test suites and a benchmark beside it, p99 reached 64 ms while
    # p50 stayed at 50.3), so the tail is held to p90, and a run that is
    # off is tried again, up to 5 runs.
    seen = []
    for _ in range(5):
        results = run(LoadPlan(url=fixed_delay_server, users=5, run_time=2))
        latency = results.to_dict()["latency_ms"]
        assert results.requests > 150 and results.failures == 0
        assert latency["min"] >= 50.0, latency  # never less than the real wait
        seen.append(latency)
        if abs(latency["p50"] - 50) <= 1.5 and latency["p90"] - 50 <= 5:
            break
    else:
        pytest.fail(f"p50 more than 1.5 ms or p90 more than 5 ms from 50 ms in 5 runs: {seen}")


def test_open_model_shows_a_stall_that_the_uncorrected_figure_hides(serve: Serve) -> None:
    server = serve(stall_once_app(after=1.0, stall=1.0))
    plan = LoadPlan(url=server.url + "/", rate=200, max_in_flight=2, run_time=3)
    results = run(plan)
    data = results.to_dict()
    corrected, uncorrected = data["latency_ms"], data["latency_uncorrected_ms"]
    assert results.failures == 0 and results.dropped == 0
    assert 530 <= results.requests <= 620
    # About 200 arrivals were due during the stall: they waited in line, and
    # their latency from the scheduled time shows it...
    assert corrected["p99"] > 800, corrected
    # ...but only the 2 requests in flight saw it from their actual send.
    assert uncorrected["p99"] < 300, uncorrected
    assert uncorrected["max"] > 900, uncorrected
    assert "p99_uncorrected_ms" in data["timeline"][0]


def test_open_model_with_user_classes(serve: Serve) -> None:
    app, served = hello_app()
    server = serve(app)
    plan = LoadPlan(host=server.url, rate=200, run_time=1.5)
    results = run(plan, from_classes([Busy]))
    assert 270 <= results.requests <= 310, results.requests
    assert results.to_dict()["latency_uncorrected_ms"]["p50"] > 0
    assert next(served) == results.requests


def test_open_model_drops_arrivals_beyond_the_queue(serve: Serve) -> None:
    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await asyncio.sleep(0.3)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    server = serve(slow)
    plan = LoadPlan(url=server.url + "/", rate=50, max_in_flight=2, max_queue=3, run_time=1.2)
    results = run(plan)
    assert results.dropped > 30
    messages = [e.message for e in results.errors]
    assert any(m.startswith("dropped: 2 requests in flight") for m in messages), messages


@pytest.mark.parametrize("scenario", [None, from_classes([Quick])], ids=["url", "users"])
def test_closed_model_ramps_and_keeps_exactly_n_users(serve: Serve, scenario: Any) -> None:
    app, _ = hello_app()
    server = serve(app)
    rows: list[dict[str, Any]] = []
    plan = LoadPlan(url=server.url + "/", users=5, spawn_rate=2.5, run_time=2.5)
    results = run(plan, scenario, rows)
    users = [row["users"] for row in rows]
    # Users start at 0, 0.4, 0.8, 1.2 and 1.6 s: 3 by the first second, then all 5.
    assert users[:3] == [3, 5, 5], users
    assert max(users) == 5
    assert all(row["in_flight"] <= 5 for row in rows)
    assert results.to_dict()["timeline"] == rows
    assert results.failures == 0


@pytest.mark.parametrize("scenario", [None, from_classes([Busy])], ids=["url", "users"])
def test_stop_after_measures_exactly_n_requests(serve: Serve, scenario: Any) -> None:
    app, served = hello_app()
    server = serve(app)
    plan = LoadPlan(url=server.url + "/", users=8, stop_after=1000, run_time=30)
    results = run(plan, scenario)
    assert results.requests == 1000
    assert results.stopped_by == "stop-after"
    assert next(served) == 1000
    assert results.duration_s < 20


def test_run_time(serve: Serve) -> None:
    app, _ = hello_app()
    server = serve(app)
    rows: list[dict[str, Any]] = []
    results = run(LoadPlan(url=server.url + "/", users=2, run_time=1.5), rows=rows)
    assert results.stopped_by == "run-time"
    assert 1.45 <= results.duration_s <= 1.7
    # A whole second, then the last half.
    assert [row["t"] for row in rows] == pytest.approx([1.0, 1.5], abs=0.05)
    assert sum(int(row["requests"]) for row in rows) == results.requests


def test_warmup_is_not_counted(serve: Serve) -> None:
    app, served = hello_app()
    server = serve(app)
    rows: list[dict[str, Any]] = []
    results = run(LoadPlan(url=server.url + "/", users=2, warmup=0.3, run_time=1.3), rows=rows)
    assert 0.95 <= results.duration_s <= 1.15
    assert [row["t"] for row in rows] == pytest.approx([1.0], abs=0.1)
    assert 0 < results.requests < next(served)  # the warm-up's requests were served, not counted
    results = run(LoadPlan(url=server.url + "/", users=2, warmup=0.3, stop_after=100,
                           run_time=20))
    assert results.requests == 100


def test_stop_from_another_thread(serve: Serve) -> None:
    app, _ = hello_app()
    server = serve(app)
    load = LoadRun(LoadPlan(url=server.url + "/", users=2))

    async def main() -> Results:
        asyncio.get_running_loop().call_later(0.5, lambda: load.stop())
        return await load.run()

    results = run_loop(main())
    assert load.state == "stopped" and results.stopped_by == "stop()"
    assert 0.4 < results.duration_s < 1.0
    snapshot = load.snapshot()
    assert snapshot["state"] == "stopped" and snapshot["requests"] == results.requests


def test_reset_stats_while_running(serve: Serve) -> None:
    app, _ = hello_app()
    server = serve(app)
    load = LoadRun(LoadPlan(url=server.url + "/", users=2, run_time=2.6))
    before: list[int] = []

    def reset() -> None:
        before.append(load.snapshot()["requests"])
        load.reset_stats()

    async def main() -> Results:
        asyncio.get_running_loop().call_later(1.5, reset)
        return await load.run()

    results = run_loop(main())
    assert before[0] > 0
    # The totals count from the reset (the second after 1.5 s: windows are
    # whole seconds), the timeline covers the whole run.
    assert 0.5 < results.duration_s < 1.7, results.duration_s
    whole = sum(int(row["requests"]) for row in results.timeline)
    assert 0 < results.requests < whole
    assert len(results.timeline) >= 2


def test_processes_merge_exactly(serve: Serve) -> None:
    app, served = hello_app()
    server = serve(app)
    plan = LoadPlan(url=server.url + "/", users=4, processes=2, stop_after=3000, run_time=30)
    rows: list[dict[str, Any]] = []
    results = run(plan, rows=rows)
    assert results.requests == 3000
    assert sum(p["requests"] for p in results.processes) == 3000
    assert len(results.processes) == 2
    assert len({p["pid"] for p in results.processes}) == 2
    assert next(served) == 3000
    assert sum(int(row["requests"]) for row in rows) == 3000
    assert results.total.hist.count == 3000


def test_processes_with_user_classes_and_run_time(serve: Serve) -> None:
    app, _ = hello_app()
    server = serve(app)
    plan = LoadPlan(host=server.url, users=4, processes=2, run_time=2)
    rows: list[dict[str, Any]] = []
    results = run(plan, from_classes([Quick]), rows)
    assert [row["users"] for row in rows][:2] == [4, 4]
    assert results.requests == sum(p["requests"] for p in results.processes) > 100
    assert results.stopped_by == "run-time"
    assert sum(int(row["requests"]) for row in rows) == results.requests


def test_a_scenario_needs_a_host() -> None:
    from twincorn.load.plan import PlanError

    class NoHost(User):
        @task
        async def t(self) -> None: ...

    with pytest.raises(PlanError, match="host"):
        LoadRun(LoadPlan(), from_classes([NoHost]))
