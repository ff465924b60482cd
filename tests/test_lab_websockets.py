"""twincorn lab's WebSocket part: idle sockets held, broadcasts timed, and
their place in the report; then a reduced run against a real server."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from examples.asgi import chat

from twincorn.lab import analysis, charts, cpu, memory, report, ws_measure
from twincorn.lab.experiment import WS_LADDER, LabPlan, run_plan
from twincorn.lab.setups import websocket_setups
from twincorn.lab.ws_measure import Broadcast, Opening


def test_the_ladder_fits_the_open_files_limit() -> None:
    assert ws_measure.fit_ladder([100, 1000, 5000], 20_000) == ([100, 1000, 5000], None)
    ladder, note = ws_measure.fit_ladder([100, 1000, 5000], 1024)
    # 1,024 files, 100 kept for the rest and one for the sender: 923 sockets.
    assert ladder == [100, 923]
    assert note is not None and "5,000 sockets were asked for" in note and "1,024" in note
    assert "ulimit -Hn" in note
    assert ws_measure.fit_ladder([100, 1000], 150)[0] == [49]
    assert ws_measure.fit_ladder([100], 90)[0] == []  # no room at all


def test_broadcasts_per_rung_and_percentiles() -> None:
    # Enough messages per rung for the server's CPU (10 ms ticks), within 5 and 100.
    assert [ws_measure.broadcasts_for(n) for n in (10, 100, 1000, 5000)] == [100, 100, 10, 5]
    values = [float(v) for v in range(1, 101)]
    assert ws_measure.percentile(values, 0.5) == 50 and ws_measure.percentile(values, 0.99) == 99
    assert ws_measure.percentile([7.0], 0.99) == 7.0
    with pytest.raises(ValueError):
        ws_measure.percentile([], 0.5)
    quick, full = ws_measure.estimate((100, 1000)), ws_measure.estimate(WS_LADDER)
    assert 2 < quick < full < 20


def test_a_rungs_figures() -> None:
    before = memory.Memory(rss=50_000, uss=20_000, processes=2)
    with_them = memory.Memory(rss=62_000, uss=32_000, processes=2)
    broadcasts = [Broadcast([0.001, 0.002, 0.010], 4, 0.011, 0.0055),
                  Broadcast([0.001, 0.003, 0.004, 0.020], 4, 0.021, 0.0105)]
    # Over 0.5 s of broadcasts, the server used 0.2% of a core: 1 ms.
    shares = cpu.CpuShares(load_generator=0.4, server=0.002, machine=0.9, cores=2)
    step = ws_measure.step_figures(1000, 4, Opening(3, 1, "connection refused", 0.25),
                                   before, with_them, broadcasts, shares, 0.5)
    assert step["per_socket_kib"] == 3000.0  # (32,000 - 20,000) KiB over the 4 held
    assert step["memory_kib"] == 32_000 and step["rss_kib"] == 62_000
    assert (step["sockets"], step["opened"], step["failed"]) == (1000, 4, 1)
    assert step["error"] == "connection refused"
    assert (step["deliveries"], step["received"], step["broadcasts"]) == (8, 7, 2)
    assert step["p50_ms"] == 3.0 and step["p99_ms"] == 20.0 and step["max_ms"] == 20.0
    assert step["last_ms"] == 15.0  # the median of 10 ms and 20 ms
    # 1 ms of the server's CPU for 2 x 5 messages (the sender hears its own).
    assert step["server_us_per_message"] == 100.0
    assert step["client_cpu"] == 0.5
    # 1.8 cores busy: 1.4 of them neither the server's nor the lab's.
    assert step["others_cpu"] == 1.4 and step["machine_cpu"] == 0.9 and step["cores"] == 2
    unknown = ws_measure.step_figures(10, 0, Opening(), before, with_them, [],
                                      cpu.CpuShares(0.0), 0.0)
    assert unknown["per_socket_kib"] is None and unknown["p50_ms"] is None
    assert unknown["server_us_per_message"] is None and unknown["client_cpu"] is None
    assert unknown["others_cpu"] is None


def fake_proc(root: Path, pid: int, pgrp: int, rss: int, private: tuple[int, int] | None) -> None:
    (root / str(pid)).mkdir(parents=True)
    (root / str(pid) / "stat").write_text(f"{pid} (twincorn: worker) S 1 {pgrp} {pgrp} 0")
    (root / str(pid) / "status").write_text(f"Name:\tx\nVmPeak:\t 900 kB\nVmRSS:\t {rss} kB\n")
    if private is not None:
        (root / str(pid) / "smaps_rollup").write_text(
            f"00-ff ---p 0 00:00 0  [rollup]\nRss:  {rss} kB\nPss:  {rss - 5} kB\n"
            f"Private_Clean:  {private[0]} kB\nPrivate_Dirty:  {private[1]} kB\n")


def test_a_servers_memory_from_proc(tmp_path: Path) -> None:
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "stat").write_text("1 (x) S 0 1 1")
    fake_proc(tmp_path, 10, 10, 30_000, (100, 9_000))  # the master
    fake_proc(tmp_path, 11, 10, 60_000, (200, 40_000))  # its worker
    fake_proc(tmp_path, 12, 99, 1_000_000, (0, 1_000_000))  # another group
    found = memory.group_memory(10, tmp_path)
    assert found == memory.Memory(rss=90_000, uss=49_300, processes=2)
    assert found.best == 49_300 and found.kind == "USS"
    (tmp_path / "11" / "smaps_rollup").unlink()  # an older kernel: no rollup
    found = memory.group_memory(10, tmp_path)
    assert found is not None and found.uss is None and found.best == 90_000
    assert found.kind == "RSS"
    assert memory.group_memory(7, tmp_path) is None  # no such group
    assert memory.group_memory(10, tmp_path / "none") is None  # no /proc


def ws_step(sockets: int, per_socket: float, last: float, **extra: Any) -> dict[str, Any]:
    broadcasts = ws_measure.broadcasts_for(sockets)
    row = {"sockets": sockets, "opened": sockets, "failed": 0, "error": None, "open_s": 0.1,
           "memory_kib": 24_000 + int(per_socket * sockets), "rss_kib": 0,
           "per_socket_kib": per_socket, "broadcasts": broadcasts,
           "deliveries": broadcasts * sockets, "received": broadcasts * sockets,
           "p50_ms": last / 2, "p99_ms": last * 0.99, "max_ms": last * 1.1, "last_ms": last,
           "server_us_per_message": 17.0, "client_cpu": 0.5}
    row.update(extra)
    return row


def ws_configuration(key: str, title: str, steps: list[dict[str, Any]],
                     problem: str | None = None) -> dict[str, Any]:
    return {"key": key, "title": title, "server": key.split("-")[0], "software": "x 1",
            "command": f"{key} serve examples.asgi.chat:app", "peer": key != "twincorn-ws",
            "memory": "USS", "before_kib": 24_000, "rss_before_kib": 50_000,
            "steps": steps, "problem": problem}


def ws_part(**extra: Any) -> dict[str, Any]:
    part = {
        "asked": [100, 1000, 5000], "sockets": [100, 1000, 5000], "capped": None,
        "app": "examples.asgi.chat:app", "message_bytes": 64, "broadcast_timeout_s": 10.0,
        "configurations": [
            ws_configuration("twincorn-ws", "twincorn -w 1", [
                ws_step(100, 10.0, 4.0), ws_step(1000, 12.5, 20.0),
                ws_step(5000, 12.8, 88.0, client_cpu=0.96)]),
            ws_configuration("uvicorn-ws", "uvicorn (--ws websockets-sansio)", [
                ws_step(100, 15.9, 4.0), ws_step(1000, 19.2, 27.0),
                ws_step(5000, 19.8, 168.0, server_us_per_message=18.0)]),
        ],
    }
    part.update(extra)
    return part


def fake_results(part: dict[str, Any] | None) -> dict[str, Any]:
    results: dict[str, Any] = {
        "version": 1, "quick": False, "started": "2026-12-03T12:00:00+00:00",
        "duration_s": 30.0, "service_time_s": 1.0, "machine": {"cpus": 2},
        "configurations": [], "hello": []}
    if part is not None:
        results["websockets"] = part
    return results


def test_the_sentences_say_what_the_sockets_cost() -> None:
    text = "\n".join(analysis.websockets_markdown(ws_part()))
    assert text.startswith("## Holding WebSockets")
    assert "The lab opened 100, 1,000 and 5,000 idle WebSockets" in text
    assert "`examples/asgi/chat.py`" in text and "64-byte messages" in text
    assert ("- **twincorn -w 1** (`twincorn-ws serve examples.asgi.chat:app`): 5,000 idle "
            "sockets took 62.5 MiB more, 12.8 KiB each (1,000: 12.5 KiB; 100: 10.0 KiB).") in text
    assert ("A broadcast reached all 5,000 in 88.0 ms (over 5 broadcasts: p50 44.0 ms, p99 "
            "87.1 ms, max 96.8 ms; 100 sockets: 4.0 ms), 17.0 µs of the server's CPU per "
            "socket written.") in text
    assert "other programs" not in text
    # The client was busy the whole broadcast: said, for twincorn only.
    assert text.count("The lab's client, one process, was busy 96%") == 1
    # What it teaches, in the figures of the first server.
    assert ("One process held 5,000 idle sockets for 12.8 KiB each (twincorn -w 1) because an "
            "idle WebSocket is a file descriptor and a coroutine waiting in `receive()`, not a "
            "thread") in text
    assert ("A broadcast costs one write per socket, so its latency grows with the sockets: 50 "
            "times the sockets took 22 times as long (4.0 ms for 100, 88.0 ms for 5,000).") in text
    # After the lesson of the ramps, in summary.md too.
    summary = analysis.summary_markdown(fake_results(ws_part()))
    assert "## Holding WebSockets" in summary
    assert "## The lesson" not in summary  # no ramp ran: nothing to say about them
    assert "Each request of the slow apps" not in summary


def test_the_sentences_say_what_went_wrong() -> None:
    part = ws_part(capped="5,000 sockets were asked for, but this process may open 1,024 files")
    twincorn = part["configurations"][0]
    twincorn["steps"][-1].update(received=24_990, opened=4_990, failed=10)
    twincorn["problem"] = "10 of 4,000 sockets did not open (connection refused)"
    twincorn["steps"][1].update(others_cpu=0.8, cores=2)
    part["configurations"][1].update(steps=[], problem="the server ended")
    text = "\n".join(analysis.websockets_markdown(part))
    assert "The ladder was cut short: 5,000 sockets were asked for" in text
    assert "A broadcast reached the sockets that heard it in 88.0 ms" in text
    assert "10 of 45,000 deliveries did not arrive within 10 s." in text
    assert ("While it broadcast, other programs kept up to 0.8 of the machine's 2 cores busy: "
            "on a quieter machine these times are shorter.") in text
    assert "It stopped early: 10 of 4,000 sockets did not open (connection refused)." in text
    assert ("- **uvicorn (--ws websockets-sansio)** (`uvicorn-ws serve examples.asgi.chat:app`): "
            "no measurement (the server ended).") in text
    assert analysis.websockets_markdown(None) == []


def test_the_table_cells() -> None:
    rows = report.websockets_rows(ws_part())
    assert len(rows) == 6
    assert rows[0] == ("twincorn -w 1", "100", "24.4", "10.0", "100", "2.0 ms", "4.0 ms",
                       "4.4 ms", "4.0 ms", "17.0 µs", "10,000 of 10,000")
    assert rows[5][0] == "uvicorn (--ws websockets-sansio)" and rows[5][1] == "5,000"
    assert rows[5][9] == "18.0 µs" and rows[5][8] == "168.0 ms"
    html = report.websockets_table(ws_part())
    assert "<h3>Holding WebSockets</h3>" in html and "<th>memory, USS (MiB)</th>" in html
    assert report.websockets_table(None) == ""


def test_the_broadcast_chart() -> None:
    [spec] = charts.chart_specs(fake_results(ws_part()))["websockets"]
    assert spec["id"] == "websockets" and spec["x"]["log"] == 2 and spec["y"]["log"] == 2
    assert spec["x"]["ticks"] == [100, 1000, 5000]
    measured = [s for s in spec["series"] if s["role"] == "measured"]
    model = [s for s in spec["series"] if s["role"] == "model"]
    assert [s["end_label"] for s in measured] == ["twincorn -w 1",
                                                  "uvicorn (--ws websockets-sansio)"]
    assert [p[1] for p in measured[0]["points"]] == [4.0, 20.0, 88.0]
    # Nudged apart sideways, at the same rungs.
    assert measured[0]["points"][0][0] < 100 < measured[1]["points"][0][0]
    # The model: one write per socket at the server's measured cost, a diagonal.
    assert [p[1] for p in model[0]["points"]] == pytest.approx([1.7, 17.0, 85.0])
    # Drawn at the same (nudged) x as the measured points.
    assert [p[0] for p in model[0]["points"]] == [p[0] for p in measured[0]["points"]]
    assert model[1]["points"][-1][1] == pytest.approx(5000 * 0.018, rel=0.01)
    assert "17.0 µs for twincorn -w 1" in spec["notes"][0]
    assert spec["y"]["min"] < 2 and spec["y"]["max"] > 168
    # No part, or nothing measured: no chart.
    assert charts.chart_specs(fake_results(None))["websockets"] == []
    empty = ws_part()
    for c in empty["configurations"]:
        c["steps"] = []
    assert charts.websocket_charts(empty) == []


def test_the_report_holds_the_part(tmp_path: Path) -> None:
    written = report.write_report(fake_results(ws_part()), tmp_path)
    page = (tmp_path / "index.html").read_text()
    assert 'id="chart-websockets"' in page and "<h2>Holding WebSockets</h2>" in page
    assert "WebSockets held by 2 servers" in page
    assert 'id="chart-throughput"' not in page  # no ramp ran
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["websockets"] == ws_part()
    assert "## Holding WebSockets" in (tmp_path / "summary.md").read_text()
    if importlib.util.find_spec("matplotlib") is not None:
        assert "websockets.png" in {p.name for p in written}
    # A results.json from before the part: no trace of it.
    older = tmp_path / "older"
    report.write_report(fake_results(None), older)
    assert "Holding WebSockets" not in (older / "index.html").read_text()


def test_the_plans() -> None:
    assert LabPlan.quick_plan().ws_sockets == () and LabPlan.quick_plan().ws_setups == []
    asked = LabPlan.quick_plan(websockets=True)
    assert asked.ws_sockets == (100, 1000) and [s.key for s in asked.ws_setups] == ["twincorn-ws"]
    assert LabPlan.quick_plan().estimate() < 120  # make demo stays under two minutes
    full = LabPlan.full_plan()
    assert full.ws_sockets == WS_LADDER == (100, 1000, 5000)
    [twincorn] = full.ws_setups
    assert twincorn.shown_command("chat") == (
        "twincorn serve examples.asgi.chat:app -w 1 --worker-connections 5100")
    assert twincorn.command("examples.asgi.chat:app", 8000)[-2:] == ["--worker-connections",
                                                                     "5100"]
    assert LabPlan.full_plan(websockets=False).ws_sockets == ()
    assert full.estimate() > LabPlan.full_plan(websockets=False).estimate()
    if importlib.util.find_spec("uvicorn") is not None:
        peers = websocket_setups(1100, peers=True)
        assert [s.key for s in peers] == ["twincorn-ws", "uvicorn-ws"]
        assert peers[1].title.startswith("uvicorn (--ws ")


def test_only_knows_the_websocket_servers(capsys: pytest.CaptureFixture[str]) -> None:
    from twincorn.cli import main

    assert main(["lab", "--quick", "--only", "twincorn-ws"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("twincorn lab: error: --only twincorn-ws: the WebSocket part is not "
                          "in this run; add --websockets (--quick leaves it out)"), err
    assert main(["lab", "--only", "nope"]) == 2
    assert "known: twincorn-asgi, twincorn-ws, twincorn-wsgi" in capsys.readouterr().err
    assert main(["lab", "--no-websockets", "--only", "twincorn-ws"]) == 2
    assert "the WebSocket part is not in this run" in capsys.readouterr().err


class FakeSend:
    """An ASGI send that keeps what it was given, or raises once closed."""

    def __init__(self, closed: bool = False) -> None:
        self.closed = closed
        self.sent: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        if self.closed:
            raise OSError("the WebSocket is closed")
        self.sent.append(message)


def test_the_chat_room_broadcasts_and_forgets_who_left(monkeypatch: pytest.MonkeyPatch) -> None:
    here, gone, there = FakeSend(), FakeSend(closed=True), FakeSend()
    monkeypatch.setattr(chat, "ROOM", {0: here, 1: gone, 2: there})
    asyncio.run(chat.broadcast({"type": "websocket.receive", "text": "hi", "bytes": None}))
    asyncio.run(chat.broadcast({"type": "websocket.receive", "text": None, "bytes": b"\x01"}))
    assert here.sent == there.sent == [{"type": "websocket.send", "text": "hi"},
                                       {"type": "websocket.send", "bytes": b"\x01"}]
    assert list(chat.ROOM) == [0, 2]


@pytest.fixture(scope="module")
def reduced_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """The WebSocket part alone, on twincorn, with 10 and then 50 idle sockets."""
    lines: list[str] = []
    plan = LabPlan([], hello_users=(), quick=True, say=lines.append)
    plan.ws_sockets, plan.ws_setups = (10, 50), websocket_setups(150)
    results = run_plan(plan)
    assert any("WebSockets · 50 idle sockets" in line for line in lines), lines
    out = tmp_path_factory.mktemp("lab-ws")
    report.write_report(results, out)
    return results, out


@pytest.mark.timeout(90)
def test_reduced_websocket_part(reduced_run: tuple[dict[str, Any], Path]) -> None:
    results, out = reduced_run
    part = results["websockets"]
    assert part["sockets"] == [10, 50] and part["capped"] is None
    [twincorn] = part["configurations"]
    assert twincorn["problem"] is None, twincorn["problem"]
    assert twincorn["memory"] in ("USS", "RSS") and twincorn["before_kib"] > 1000
    assert [s["opened"] for s in twincorn["steps"]] == [10, 50]
    top = twincorn["steps"][-1]
    # Each idle socket costs the server something, and not a thread's worth.
    assert 0 < top["per_socket_kib"] < 200, top
    # Every listener heard every broadcast, soon enough.
    for step in twincorn["steps"]:
        assert step["received"] == step["deliveries"] == step["broadcasts"] * step["opened"]
        assert 0 < step["p50_ms"] <= step["p99_ms"] <= step["max_ms"] < 2000, step
    assert top["broadcasts"] == 100 and top["failed"] == 0
    assert top["server_us_per_message"] is None or 0 < top["server_us_per_message"] < 5000
    saved = json.loads((out / "results.json").read_text())
    assert saved["websockets"] == part
    assert "## Holding WebSockets" in (out / "summary.md").read_text()


@pytest.mark.timeout(90)
def test_websocket_part_in_chromium(reduced_run: tuple[dict[str, Any], Path]) -> None:
    from load_web_support import ConsoleWatch, chromium, distinct_colours

    _, out = reduced_run
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        console = ConsoleWatch(page)
        page.goto((out / "index.html").as_uri())
        page.wait_for_selector("#chart-websockets canvas")
        width = page.eval_on_selector("#chart-websockets canvas", "c => c.width")
        rows = page.locator("table.lab tr").count()
        shot = page.screenshot(full_page=True)
        page.close()
    assert console.errors == []
    assert width > 300 and rows == 3  # the head, and a row per rung
    assert distinct_colours(shot) > 50, "the screenshot looks blank"
