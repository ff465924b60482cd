"""The web UI of `twincorn load --web`: its API over HTTP (fast, with a fake
run), then the page in a real headless Chromium driving a real load run."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from load_web_fakes import FakeRun, ResettableRun
from load_web_support import ConsoleWatch, RunningUI, chromium, distinct_colours
from twincorn.load.plan import LoadPlan
from twincorn.load.web_control import TRANSITIONS, Broadcast, Phase, RunControl
from twincorn.server.embedded import EmbeddedServer

PLAN = LoadPlan(url="http://127.0.0.1:9/", users=4, spawn_rate=100.0)


def fake_factory(tick: float = 0.05) -> Callable[[LoadPlan, Any], FakeRun]:
    return lambda plan, scenario: FakeRun(plan, scenario, tick=tick)


@pytest.fixture
def ui() -> Iterator[RunningUI]:
    with RunningUI(PLAN, make_run=fake_factory()) as running:
        yield running


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def state(ui: RunningUI) -> dict[str, Any]:
    reply = httpx.get(f"{ui.url}/api/state", timeout=5)
    assert reply.status_code == 200
    data: dict[str, Any] = reply.json()
    return data


def aggregated_requests(view: dict[str, Any]) -> int:
    total = view["stats"]["rows"][-1]["cells"]
    assert total[1]["text"] == "Aggregated"
    return int(total[2]["text"])


# -- the phases and the order of views, without a server ---------------------------------


def test_broadcast_keeps_readers_in_place() -> None:
    hub = Broadcast(keep=3)
    assert hub.since(0) == []
    for n in range(1, 6):
        assert hub.publish("tick", {"n": n}) == {"n": n, "seq": n}
    assert hub.since(3) == [b'event: tick\ndata: {"n":4,"seq":4}\n\n',
                            b'event: tick\ndata: {"n":5,"seq":5}\n\n']
    assert hub.since(5) == []
    assert hub.since(1) is None  # frame 2 is gone: the reader starts again from a snapshot


def test_the_phase_table() -> None:
    assert set(TRANSITIONS) == set(Phase)
    assert all(phase not in TRANSITIONS[phase] for phase in Phase)  # no move stays put
    # Nothing but a reset of a finished run leads back to the form.
    assert [p for p in Phase if Phase.READY in TRANSITIONS[p]] == [Phase.STOPPED]
    # A phase a run may report is never behind one the control may set first.
    assert Phase.SPAWNING not in TRANSITIONS[Phase.RUNNING]
    assert Phase.RUNNING not in TRANSITIONS[Phase.STOPPING]


class LateStop(FakeRun):
    """A run that delivers one more row, still "running", after a stop."""

    def stop(self) -> None:
        asyncio.get_running_loop().call_soon(self.late_row)
        self._stop.set()

    def late_row(self) -> None:
        assert self.state == "running"
        for callback in self.callbacks:
            callback(self.stats.timeline[-1])


def drive(control: RunControl, steps: Callable[[RunControl], Any]) -> Any:
    async def main() -> Any:
        try:
            return await steps(control)
        finally:
            await control.close(timeout=5)

    return asyncio.run(main())


def test_start_moves_the_phase_before_it_returns() -> None:
    """The root of the start race: the view a start answers with, and any
    view made after it, is past READY, and newer (seq) than every view
    made before it."""
    control = RunControl(PLAN, None, fake_factory())

    async def steps(control: RunControl) -> list[dict[str, Any]]:
        before = control.current()
        started = control.start({"users": "2"})
        now = control.current()
        await asyncio.sleep(0.01)  # the run's first step: its users start
        return [before, started, now, control.current()]

    before, started, now, later = drive(control, steps)
    assert (before["state"], started["state"], now["state"]) == ("ready", "starting", "starting")
    assert later["state"] == "running"
    assert before["seq"] < started["seq"] == now["seq"] < later["seq"]
    assert before["epoch"] == started["epoch"] == later["epoch"]
    assert started["run"] == 1 and started["timeline"] == []


def test_the_phase_never_goes_back() -> None:
    control = RunControl(PLAN, None, lambda p, s: LateStop(p, s, tick=0.01))

    async def steps(control: RunControl) -> list[Any]:
        seen: list[Any] = []
        control.start({})
        await asyncio.sleep(0.05)
        seen.append(control.state)
        seq = control.stop()["seq"]
        seen.append(control.state)
        await asyncio.sleep(0)  # the late row: "running", not followed
        seen.append((control.state, control.hub.seq - seq))
        await asyncio.wait({control.task} if control.task else set(), timeout=5)
        seen.append(control.state)
        seen.append(control.reset()["state"])
        return seen

    assert drive(control, steps) == ["running", "stopping", ("stopping", 1), "stopped", "ready"]
    with pytest.raises(RuntimeError, match="no move from READY to RUNNING"):
        control._move(Phase.RUNNING)


def test_a_run_that_fails_at_once_ends_stopped() -> None:
    class Failing(FakeRun):
        async def run(self) -> dict[str, Any]:
            raise OSError("no route")

    control = RunControl(PLAN, None, lambda p, s: Failing(p, s))

    async def steps(control: RunControl) -> dict[str, Any]:
        control.start({})
        await asyncio.sleep(0.01)
        return control.current()

    view = drive(control, steps)
    assert (view["state"], view["error"]) == ("stopped", "the run failed: no route")


# -- the API over HTTP, with a fake run -----------------------------------------


def test_page_and_static_files(ui: RunningUI) -> None:
    with httpx.Client(base_url=ui.url, timeout=5) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert 'id="start-form"' in page.text and "/static/web.js" in page.text
        for path, kind in [("/static/web.js", "text/javascript"),
                           ("/static/charts.js", "text/javascript"),
                           ("/static/web.css", "text/css"),
                           ("/static/vendor/uplot/uPlot.iife.min.js", "text/javascript"),
                           ("/static/vendor/uplot/uPlot.min.css", "text/css")]:
            reply = client.get(path)
            assert reply.status_code == 200, path
            assert reply.headers["content-type"].startswith(kind), path
        assert client.get("/static/../web.py").status_code == 404
        assert client.get("/static/vendor/uplot/LICENSE").status_code == 404
        assert client.get("/nothing").status_code == 404
        refused = client.get("/api/start")
        assert refused.status_code == 405 and refused.headers["allow"] == "POST"


def test_start_stop_reset(ui: RunningUI) -> None:
    first = state(ui)
    assert first["state"] == "ready" and first["timeline"] == []
    assert first["form"]["users"] == 4
    with httpx.Client(base_url=ui.url, timeout=5) as client:
        started = client.post("/api/start", data={"users": "3", "spawn_rate": "100"})
        assert started.status_code == 200, started.text
        assert client.post("/api/start", data={}).status_code == 409
        wait_for(lambda: len(state(ui)["timeline"]) >= 3)
        running = state(ui)
        assert running["state"] in ("spawning", "running")
        assert running["header"]["users"] == 3
        assert aggregated_requests(running) > 0
        assert client.post("/api/stop").status_code == 200
        wait_for(lambda: state(ui)["state"] == "stopped")
        stopped = state(ui)
        assert stopped["header"]["users"] == 0
        assert len(stopped["timeline"]) >= 3  # the history stays after the stop
        assert client.post("/api/reset").json()["state"] == "ready"
        cleared = state(ui)
        assert cleared["state"] == "ready" and cleared["timeline"] == []
        assert aggregated_requests(cleared) == 0
        bad = client.post("/api/start", data={"users": "-1"})
        assert bad.status_code == 400 and "users" in bad.json()["error"]


def test_reset_while_running(ui: RunningUI) -> None:
    with httpx.Client(base_url=ui.url, timeout=5) as client:
        client.post("/api/start", data={})
        wait_for(lambda: len(state(ui)["timeline"]) >= 2)
        assert state(ui)["can_reset"] is False
        refused = client.post("/api/reset")
        assert refused.status_code == 409 and "stop it first" in refused.json()["error"]
        assert state(ui)["state"] in ("spawning", "running")  # a refusal changes nothing
        client.post("/api/stop")
    with RunningUI(PLAN, make_run=lambda p, s: ResettableRun(p, s, tick=0.05)) as other:
        with httpx.Client(base_url=other.url, timeout=5) as client:
            client.post("/api/start", data={})
            wait_for(lambda: len(state(other)["timeline"]) >= 5)
            assert state(other)["can_reset"] is True
            assert client.post("/api/reset").status_code == 200
            after = state(other)
            assert after["state"] in ("spawning", "running") and len(after["timeline"]) < 5


def read_events(lines: Iterator[str], count: int) -> list[tuple[str, dict[str, Any]]]:
    """The next `count` events of a Server-Sent Events stream."""
    events: list[tuple[str, dict[str, Any]]] = []
    name = ""
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
            if len(events) == count:
                break
    return events


def test_event_stream_sends_a_snapshot_then_ticks(ui: RunningUI) -> None:
    with httpx.Client(base_url=ui.url, timeout=5) as client:
        with client.stream("GET", "/api/events") as stream:
            assert stream.headers["content-type"] == "text/event-stream; charset=utf-8"
            lines = stream.iter_lines()
            [(kind, view)] = read_events(lines, 1)
            assert kind == "snapshot" and view["state"] == "ready"
            wait_for(lambda: ui.ui.app.streams == 1)
            client.post("/api/start", data={"users": "2"})
            events = read_events(lines, 4)
            assert events[0][0] == "snapshot" and events[0][1]["run"] == 1
            ticks = [view for kind, view in events if kind == "tick"]
            assert len(ticks) >= 2
            assert [v["row"]["t"] for v in ticks] == sorted(v["row"]["t"] for v in ticks)
            assert "timeline" not in ticks[0]  # a tick carries its row only
        # The client went: the server hears http.disconnect and ends the stream.
        wait_for(lambda: ui.ui.app.streams == 0)


def test_stopping_the_ui_ends_open_streams() -> None:
    running = RunningUI(PLAN, make_run=fake_factory()).start()
    client = httpx.Client(base_url=running.url, timeout=5)
    try:
        client.post("/api/start", data={})
        with client.stream("GET", "/api/events") as stream:
            lines = stream.iter_lines()
            read_events(lines, 2)
            started = time.monotonic()
            running.stop()
            assert time.monotonic() - started < 5
            assert running.exit_status == 0
            assert running.ui.control.state == "stopped"
    finally:
        client.close()


def test_downloads(ui: RunningUI) -> None:
    with httpx.Client(base_url=ui.url, timeout=5) as client:
        client.post("/api/start", data={"users": "2", "run_time": "0.2"})
        wait_for(lambda: state(ui)["state"] == "stopped")
        for name, kind in [("stats.csv", "text/csv"), ("stats_history.csv", "text/csv"),
                           ("failures.csv", "text/csv"), ("exceptions.csv", "text/csv"),
                           ("results.json", "application/json"),
                           ("report.html", "text/html")]:
            reply = client.get(f"/download/{name}")
            assert reply.status_code == 200, name
            assert reply.headers["content-type"].startswith(kind), name
            assert f'filename="twincorn_{name}"' in reply.headers["content-disposition"]
        results = client.get("/download/results.json").json()
        assert results["requests"] > 0 and results["timeline"]
        header = next(csv.reader(io.StringIO(client.get("/download/stats.csv").text)))
        assert header[:4] == ["Type", "Name", "Request Count", "Failure Count"]
        assert client.get("/download/other.txt").status_code == 404


def test_embedded_server_shares_its_loop() -> None:
    """EmbeddedServer serves on the running loop, beside other work."""
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"beside"})

    async def main() -> int:
        loop = asyncio.get_running_loop()
        server = EmbeddedServer(app, loop, lifespan="off")
        reply = loop.run_in_executor(None, lambda: httpx.get(server.url, timeout=5).text)

        async def client() -> None:
            seen.append(await reply)
            server.stop()

        task = loop.create_task(client())
        status = await server.serve()
        assert task.done()
        return status

    assert asyncio.run(main()) == 0
    assert seen == ["beside"]


def test_serve_ui_prints_its_url_and_stops_on_ctrl_c() -> None:
    code = ("from twincorn.load.plan import LoadPlan; from twincorn.load.web import serve_ui; "
            "raise SystemExit(serve_ui(LoadPlan(url='http://127.0.0.1:9/'), None, port=0))")
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                          text=True) as child:
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            url = re.search(r"http://127\.0\.0\.1:\d+", line)
            assert url is not None, line
            assert httpx.get(url.group(0), timeout=5).status_code == 200
            child.send_signal(signal.SIGINT)
            assert child.wait(10) == 0
        finally:
            child.kill()


def test_serve_ui_reports_a_busy_port(serve: Callable[..., Any]) -> None:
    taken = serve(hello, lifespan="off")
    code = ("from twincorn.load.plan import LoadPlan; from twincorn.load.web import serve_ui; "
            f"raise SystemExit(serve_ui(LoadPlan(url='http://127.0.0.1:9/'), None, "
            f"port={taken.port}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=20)
    assert done.returncode == 1
    assert "cannot listen on 127.0.0.1" in done.stderr


# -- the page in Chromium, driving a real run -------------------------------------


def header_number(page: Any, element: str) -> float:
    return float(page.inner_text(element).rstrip("%"))


# The Aggregated row's request count, once the table is there, is above n.
MORE_REQUESTS_THAN = """n => {
    const cell = document.querySelector('#stats-table tr.total td:nth-child(3)');
    return cell !== null && Number(cell.textContent) > n;
}"""


def page_requests(page: Any) -> int:
    return int(page.inner_text("#stats-table tr.total td:nth-child(3)"))


def test_web_ui_in_chromium(serve: Callable[..., Any], tmp_path: Path) -> None:
    target = serve(hello, lifespan="off")
    with chromium() as browser, RunningUI(PLAN) as ui:
        page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        console = ConsoleWatch(page)
        page.set_default_timeout(10_000)
        page.goto(ui.url)
        page.wait_for_selector("#start-panel:not([hidden])")
        page.fill("#users-input", "4")
        page.fill("#spawn-rate-input", "100")
        page.fill("#host-input", target.url + "/")
        page.fill("#run-time-input", "")
        page.click("#start-button")

        # The numbers move: requests/s above zero, the request count growing.
        page.wait_for_function(
            "document.getElementById('status').textContent === 'RUNNING'")
        page.wait_for_function("Number(document.getElementById('rps').textContent) > 0")
        first = page_requests(page)
        page.wait_for_function(MORE_REQUESTS_THAN, arg=first)
        assert header_number(page, "#users") == 4

        # A reload loses nothing: the history is on the server.
        rows_before = page.evaluate("document.querySelectorAll('#stats-table tbody tr').length")
        page.reload()
        page.wait_for_function(MORE_REQUESTS_THAN, arg=first)
        page.click("nav.tabs button[data-tab=charts]")
        page.wait_for_function("document.querySelectorAll('#chart-area canvas').length >= 3")
        seconds = ui.ui.control.results()["timeline"]
        assert len(seconds) >= 1
        assert page.evaluate("document.querySelectorAll('#stats-table tbody tr').length") \
            == rows_before
        shot = page.screenshot(full_page=True)
        (tmp_path / "web-ui.png").write_bytes(shot)
        assert distinct_colours(shot) > 50, "the screenshot looks blank"

        page.click("#stop-button")
        page.wait_for_function(
            "document.getElementById('status').textContent === 'STOPPED'")
        total = page_requests(page)
        assert total >= first

        page.click("nav.tabs button[data-tab=download]")
        with page.expect_download() as download:
            page.click("#download-stats")
        text = Path(download.value.path()).read_text(encoding="utf-8")
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0][:4] == ["Type", "Name", "Request Count", "Failure Count"]
        assert rows[-1][1] == "Aggregated" and int(rows[-1][2]) == total
        assert console.errors == []
