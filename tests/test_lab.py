"""twincorn lab: the model, the analysis, the report, and a reduced run."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from master_support import ROOT
from twincorn.lab import analysis, report
from twincorn.lab.experiment import LabPlan, run_plan
from twincorn.lab.setups import Setup, twincorn_setups


def step(users: int, rps: float, p50: float = 1000.0, **extra: Any) -> dict[str, Any]:
    row = {"users": users, "rps": rps, "p50_ms": p50, "p95_ms": p50, "p99_ms": p50,
           "errors": 0, "requests": int(rps * 3), "in_flight": min(users, 4),
           "predicted_rps": min(users, 4), "predicted_latency_ms": max(1000, users * 250)}
    row.update(extra)
    return row


def test_the_model() -> None:
    blocking, threaded, async_ = twincorn_setups()
    assert blocking.predicted_rps(16, 1.0) == 4 and blocking.ceiling(1.0) == 4
    assert blocking.predicted_latency(16, 1.0) == 4.0  # Little's law
    assert blocking.predicted_latency(2, 1.0) == 1.0
    assert threaded.ceiling(0.5) == 64
    assert async_.ceiling(1.0) is None and async_.predicted_rps(500, 1.0) == 500
    assert blocking.shown_command("slow") == "twincorn serve examples.wsgi.slow_app:app -w 4"


def test_knee() -> None:
    steps = [step(1, 1.0), step(2, 2.0), step(4, 3.9), step(8, 4.0), step(16, 3.95)]
    assert analysis.knee(steps) == {"users": 4, "rps": 3.9, "ceiling_rps": 3.95}
    growing = [step(1, 1.0), step(4, 3.9), step(16, 15.5), step(64, 61.0)]
    assert analysis.knee(growing) is None


def test_plan_ladders() -> None:
    plan = LabPlan.quick_plan()
    blocking, threaded, async_ = plan.setups
    assert plan.users(blocking) == [1, 4, 8, 16]  # stops at 4x its 4 slots
    assert plan.users(threaded) == [1, 4, 8, 16, 32, 64]  # its 32 slots included
    assert plan.users(async_) == [1, 4, 8, 16, 32, 64]  # the same points
    assert plan.rates(blocking) == [6.0] and plan.rates(async_) == [64.0]
    assert plan.estimate() < 120


def configuration(setup: Setup, steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {"key": setup.key, "title": setup.title, "command": setup.shown_command("slow"),
            "workers": setup.workers, "threads": setup.threads,
            "model_ceiling_rps": setup.ceiling(1.0), "knee": analysis.knee(steps),
            "steps": steps, "open": [{"rate": 6.0, "rps": 4.0, "p50_ms": 2500.0,
                                      "p99_ms": 4000.0, "kept_up": False, "unfinished": 0,
                                      "model_ceiling_rps": setup.ceiling(1.0)}]}


def fake_results() -> dict[str, Any]:
    blocking, _, async_ = twincorn_setups()
    wsgi = [step(1, 1.0, 1000), step(4, 3.9, 1020), step(16, 3.95, 4050)]
    asgi = [step(1, 1.0), step(4, 3.98), step(16, 15.8), step(64, 62.0, 1010,
                                                                  predicted_rps=64)]
    return {"version": 1, "quick": True, "started": "2026-11-27T12:00:00+00:00",
            "duration_s": 95.0, "service_time_s": 1.0, "machine": {},
            "configurations": [configuration(blocking, wsgi), configuration(async_, asgi)],
            "hello": [{"key": "k", "title": "twincorn -w 1 (ASGI, async)", "app": "a",
                       "command": "c", "steps": [step(16, 25000.0, 0.6)]}]}


def test_summary_speaks_from_the_numbers() -> None:
    text = analysis.summary_markdown(fake_results())
    assert "levelled off at 3.9 req/s from 4 users on; the model says 4.0" in text
    assert "p50 1.00 s at 1 user, 4.05 s at 16 users (model: 4.00 s)" in text
    assert "throughput kept growing with the users" in text
    assert "62.0 req/s at 64 users (model: 64)" in text
    assert ("At a fixed 6 requests/s (the model's ceiling: 4), twincorn -w 4 (WSGI, blocking) "
            "fell behind: the queue grew while the requests kept coming, p50 2.50 s, "
            "p99 4.00 s") in text
    assert "up to 25,000 req/s" in text


def test_failed_requests_are_counted_in_words() -> None:
    blocking, _, _ = twincorn_setups()
    for errors, words in ((1, "1 request failed along"), (2, "2 requests failed along"),
                          (1500, "1,500 requests failed along")):
        steps = [step(1, 1.0), step(4, 3.9, errors=errors)]
        assert words in analysis.describe(configuration(blocking, steps), 1.0)
    assert "failed" not in analysis.describe(configuration(blocking, [step(1, 1.0)]), 1.0)


def test_report_files(tmp_path: Path) -> None:
    written = report.write_report(fake_results(), tmp_path)
    names = {p.name for p in written}
    assert {"index.html", "results.json", "summary.md"} <= names
    page = (tmp_path / "index.html").read_text()
    assert "uPlot" in page and "<script src" not in page  # self-contained
    assert json.loads((tmp_path / "results.json").read_text())["service_time_s"] == 1.0
    data = report.chart_series(fake_results(), "rps", "predicted_rps")
    assert data["users"] == [1, 4, 16, 64]
    assert data["series"][0]["values"] == [1.0, 3.9, 3.95, None]
    assert data["series"][1]["dash"] is True


def test_markdown_is_escaped() -> None:
    html = report.markdown_to_html("**<b>** `x<y`\n\n- one\n- two\n\n## Head")
    assert html == ("<p><strong>&lt;b&gt;</strong> <code>x&lt;y</code></p>\n"
                    "<ul><li>one</li><li>two</li></ul>\n<h2>Head</h2>")


@pytest.fixture(scope="module")
def reduced_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """The lab on a reduced matrix: 2 blocking workers and 1 async worker,
    requests waiting 0.25 s, steps of 1 s up to 8 users."""
    blocking = next(s for s in twincorn_setups(workers=2) if s.key == "twincorn-wsgi")
    async_ = twincorn_setups()[2]
    lines: list[str] = []
    plan = LabPlan([blocking, async_], max_users=8, step_seconds=1.0, service_time=0.25,
                   rate_factors=(2.0,), async_rates=(16.0,), rate_seconds=1.0,
                   hello_users=(4,), hello_seconds=1.0, quick=True, say=lines.append)
    results = run_plan(plan)
    assert any("~" in line and "left" in line for line in lines)
    out = tmp_path_factory.mktemp("lab")
    report.write_report(results, out)
    return results, out


@pytest.mark.timeout(120)
def test_reduced_lab_shows_the_lesson(reduced_run: tuple[dict[str, Any], Path]) -> None:
    results, out = reduced_run
    blocking, async_ = results["configurations"]
    assert [s["users"] for s in blocking["steps"]] == [1, 2, 4, 8]
    assert [s["users"] for s in async_["steps"]] == [1, 2, 4, 8]
    for c in (blocking, async_):
        for s in c["steps"]:
            assert s["requests"] > 0 and s["errors"] == 0
            assert {"rps", "p50_ms", "p95_ms", "p99_ms", "in_flight", "predicted_rps"} <= set(s)
    # The blocking configuration's ceiling: 2 workers / 0.25 s = 8 req/s.
    assert blocking["model_ceiling_rps"] == 8.0
    measured = max(s["rps"] for s in blocking["steps"][-2:])
    assert abs(measured - 8.0) <= 0.2 * 8.0, blocking["steps"]
    # The async one grows with the users.
    rates = [s["rps"] for s in async_["steps"]]
    assert rates == sorted(rates) and rates[-1] > 24, rates  # the model: 8 / 0.25 s = 32
    assert len(blocking["open"]) == 1 and len(results["hello"]) == 2
    for name in ("index.html", "results.json", "summary.md"):
        assert (out / name).stat().st_size > 500
    saved = json.loads((out / "results.json").read_text())
    assert saved["configurations"][0]["steps"] == blocking["steps"]
    if importlib.util.find_spec("matplotlib") is not None:
        for name in ("throughput.png", "latency.png"):
            assert (out / name).read_bytes().startswith(b"\x89PNG")


@pytest.mark.timeout(120)
def test_lab_report_in_chromium(reduced_run: tuple[dict[str, Any], Path]) -> None:
    from load_web_support import ConsoleWatch, chromium, distinct_colours

    _, out = reduced_run
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        console = ConsoleWatch(page)
        page.goto((out / "index.html").as_uri())
        page.wait_for_selector("#throughput canvas")
        page.wait_for_selector("#latency canvas")
        shot = page.screenshot(full_page=True)
        page.close()
    assert console.errors == []
    assert distinct_colours(shot) > 50, "the screenshot looks blank"


def test_peer_commands_serve() -> None:
    """The seed's own commands (--peers) start and answer, where installed."""
    from twincorn.lab.servers import running
    from twincorn.lab.setups import peer_setups

    setups = peer_setups(workers=1)
    if not setups:
        pytest.skip("gunicorn and uvicorn are not installed (pip install twincorn[peers])")
    for setup in setups:
        with running(setup, "hello", 0.1) as server:
            with urllib.request.urlopen(server.url, timeout=10) as answer:
                assert answer.status == 200 and b"Hello" in answer.read()
        assert server.process.poll() is not None


def test_ctrl_c_stops_the_lab_and_its_servers(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "twincorn", "lab", "--only", "twincorn-asgi", "--max-users", "4",
         "--out", str(tmp_path / "report")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("[2/"):  # a server is up and under load
            break
    time.sleep(0.5)
    servers = [pid for pid in children_of(proc.pid)]
    assert servers, "no server was running"
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=30)[0]
    assert proc.returncode == 130, output
    assert "interrupted; the servers are stopped" in output
    time.sleep(0.5)
    assert not [pid for pid in servers if Path(f"/proc/{pid}").exists()
                and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]]
    assert not (tmp_path / "report").exists()


def children_of(pid: int) -> list[int]:
    from master_support import children

    return sorted(children(pid))
