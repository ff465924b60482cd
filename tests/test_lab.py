"""twincorn lab: the model, the analysis, the report, and a reduced run."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from master_support import ROOT
from twincorn.lab import analysis, charts, cpu, report
from twincorn.lab.experiment import LabPlan, run_plan
from twincorn.lab.measure import BySend
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
    # The async setup runs at each blocking setup's rate, for the charts
    # that set them side by side.
    assert plan.rates(blocking) == [6.0] and plan.rates(threaded) == [48.0]
    assert plan.rates(async_) == [6.0, 48.0]
    assert plan.estimate() < 120
    alone = LabPlan.full_plan()
    alone.setups = [alone.setups[2]]
    assert alone.rates(alone.setups[0]) == [16.0, 64.0, 256.0]


def by_send(latencies_s: list[float]) -> list[dict[str, Any]]:
    """An open run's buckets, a second apart, with these latencies."""
    return [{"t": i + 0.05, "requests": 1, "mean_ms": lat * 1000, "max_ms": lat * 1000}
            for i, lat in enumerate(latencies_s)]


def configuration(setup: Setup, steps: list[dict[str, Any]]) -> dict[str, Any]:
    climbing = setup.slots is not None
    latencies = [1.0, 1.5, 2.0, 2.5] if climbing else [1.0, 1.0, 1.0, 1.0]
    return {"key": setup.key, "title": setup.title, "command": setup.shown_command("slow"),
            "workers": setup.workers, "threads": setup.threads, "concurrency": setup.slots,
            "model_ceiling_rps": setup.ceiling(1.0), "knee": analysis.knee(steps),
            "steps": steps, "open": [{"rate": 6.0, "rps": 4.0, "requests": 24, "p50_ms": 2500.0,
                                      "p99_ms": 4000.0 if climbing else 1010.0,
                                      "kept_up": not climbing, "unfinished": 0,
                                      "rate_seconds": 4.0, "by_send": by_send(latencies),
                                      "model_ceiling_rps": setup.ceiling(1.0)}]}


def fake_results() -> dict[str, Any]:
    blocking, _, async_ = twincorn_setups()
    wsgi = [step(1, 1.0, 1000), step(4, 3.9, 1020), step(16, 3.95, 4050)]
    asgi = [step(1, 1.0), step(4, 3.98), step(16, 15.8), step(64, 62.0, 1010,
                                                                  predicted_rps=64)]
    return {"version": 1, "quick": True, "started": "2026-11-27T12:00:00+01:00",
            "duration_s": 95.0, "service_time_s": 1.0, "machine": {"cpus": 2},
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


def test_the_run_time_reads_as_words() -> None:
    assert analysis.run_when("2026-12-03T08:40:05+01:00", 92.4) == (
        "3 December 2026, 07:40 UTC, 1 min 32 s")
    assert analysis.duration_words(42) == "42 s" and analysis.duration_words(120) == "2 min"
    assert analysis.duration_words(3725) == "1 h 2 min"
    assert analysis.run_when("not a date", 5) == "not a date, 5 s"
    text = analysis.summary_markdown(fake_results())
    assert "Run of 27 November 2026, 11:00 UTC, 1 min 35 s (--quick), on 2 cores." in text


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
    assert "27 November 2026, 11:00 UTC, 1 min 35 s" in page
    assert "2026-11-27T" not in page.split('id="chart-data"')[0]  # no raw ISO shown
    for chart in ("throughput", "latency", "rate-6"):
        assert f'id="chart-{chart}"' in page
    assert json.loads((tmp_path / "results.json").read_text())["service_time_s"] == 1.0
    if importlib.util.find_spec("matplotlib") is not None:
        assert {"throughput.png", "latency.png", "fixed-rate.png"} <= names


def series(spec: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [s for s in spec["series"] if s["role"] == role]


def test_ramp_charts_show_proportional_growth_as_a_straight_line() -> None:
    throughput, latency = charts.chart_specs(fake_results())["ramps"]
    for spec in (throughput, latency):
        # Log on both axes (base 2, as the ramp doubles): y = x is a diagonal.
        assert spec["x"]["log"] == 2 and spec["y"]["log"] == 2
        assert spec["x"]["ticks"] == [1, 4, 16, 64]
    assert throughput["y"]["ticks"] == [1, 2, 4, 8, 16, 32, 64]
    # The async model, y = x, within the axis: its slope is 1 in log-log.
    model = series(throughput, "model")[1]["points"]
    assert [round(y / x, 6) for x, y in model] == [round(model[0][1] / model[0][0], 6)] * 4
    assert throughput["y"]["min"] <= 1 and throughput["y"]["max"] >= 64


def test_configurations_do_not_hide_each_other() -> None:
    throughput, latency = charts.chart_specs(fake_results())["ramps"]
    for spec in (throughput, latency):
        measured, model = series(spec, "measured"), series(spec, "model")
        assert len({s["colour"] for s in measured}) == len(measured) == 2
        assert len({s["marker"] for s in measured}) == 2 and None not in {
            s["marker"] for s in measured}
        assert len({tuple(s["dash"]) for s in model}) == 2
        # Nudged sideways: at 1 user the two configurations stand apart.
        assert measured[0]["points"][0][0] < 1 < measured[1]["points"][0][0]
        # Named at the end of their lines, by shorter names.
        assert [s["end_label"] for s in measured] == ["-w 4 (WSGI, blocking)",
                                                      "-w 1 (ASGI, async)"]
        # Models drawn over the measured lines.
        assert [s["role"] for s in spec["series"]] == ["measured"] * 2 + ["model"] * 2
    with_peer = fake_results()
    with_peer["configurations"][1]["title"] = "uvicorn (ASGI, one process)"
    names = charts.short_titles(with_peer["configurations"])
    assert names == ["twincorn -w 4 (WSGI, blocking)", "uvicorn (ASGI, one process)"]


def test_measured_and_model_are_told_apart() -> None:
    for spec in charts.chart_specs(fake_results())["ramps"]:
        for s in series(spec, "measured"):
            assert s["dash"] == [] and s["marker"] and s["width"] > charts.MODEL_WIDTH
        for s in series(spec, "model"):
            assert s["dash"] and s["marker"] is None and s["end_label"] is None
    html = report.legend([("twincorn -w 4 (WSGI, blocking)", 0), ("twincorn -w 1", 2)])
    assert "measured" in html and "the model" in html
    blocking = html.split('data-config="0"')[1].split("</span>")[0]
    # Its two swatches: solid with its marker (a circle), dashed in its pattern.
    assert "<circle" in blocking and 'stroke-dasharray="8,4"' in blocking
    assert "twincorn -w 4 (WSGI, blocking)" in blocking
    assert '<polygon points="18,2' in html.split('data-config="2"')[1]  # a triangle


def test_the_latency_chart_says_why_a_blocking_ramp_stops() -> None:
    latency = charts.chart_specs(fake_results())["ramps"][1]
    note = " ".join(latency["notes"])
    assert "twincorn -w 4 (WSGI, blocking) was measured up to 16 users, 4 times its 4 slots" in note
    assert "16 s at 64 users" in note  # the model's last value, said rather than drawn flat
    [mark] = latency["annotations"]
    assert mark["text"] == "measured up to 16 users (4 x 4 slots)"
    assert mark["y"] == pytest.approx(4.05)
    # The log axis keeps 1 s and the model's 16 s both readable.
    assert latency["y"]["ticks"] == [1, 2, 4, 8, 16]
    assert charts.chart_specs(fake_results())["ramps"][0]["notes"] == []


def test_fixed_rate_chart_sets_blocking_beside_async_over_time() -> None:
    [spec] = charts.chart_specs(fake_results())["fixed_rate"]
    assert spec["id"] == "rate-6" and spec["x"]["log"] is None and spec["y"]["log"] is None
    blocking, async_ = series(spec, "measured")
    # Each request's latency against when it was sent.
    assert [p[0] for p in blocking["points"]] == [0.05, 1.05, 2.05, 3.05]
    assert [p[1] for p in blocking["points"]] == [1.0, 1.5, 2.0, 2.5]
    assert {p[1] for p in async_["points"]} == {1.0}
    blocking_model, async_model = series(spec, "model")
    assert blocking_model["points"] == [[0.0, 1.0], [4.0, 3.0]]  # the queue's ramp
    assert async_model["points"] == [[0.0, 1.0], [4.0, 1.0]]
    assert spec["x"]["ticks"] == [0, 1, 2, 3, 4] and spec["x"]["min"] == 0
    assert spec["y"]["min"] == 0 and spec["y"]["max"] >= 3.0
    assert "with 6 arriving each second, its queue grows by 2 a second" in spec["notes"][0]
    columns = charts.aligned(spec)
    xs = [x for x in columns[0] if x is not None]
    assert len(columns) == 1 + len(spec["series"]) and xs == sorted(xs) == columns[0]
    # A rate that no other configuration ran at gets no chart of its own
    # while some rate is shared.
    results = fake_results()
    results["configurations"][1]["open"].append(dict(results["configurations"][1]["open"][0],
                                                     rate=64.0))
    assert [c["id"] for c in charts.chart_specs(results)["fixed_rate"]] == ["rate-6"]


def test_the_open_model_line() -> None:
    # 6 a second for 4 s into 4 slots of 1 s: the last of 24 requests, sent
    # at 4 s, is answered at 1 + 24 / 4 = 7 s, having waited 3 s.
    assert charts.open_model_line(6.0, 4, 1.0, 4.0) == [[0.0, 1.0], [4.0, 3.0]]
    assert charts.open_model_line(6.0, None, 1.0, 4.0) == [[0.0, 1.0], [4.0, 1.0]]
    assert charts.open_model_line(3.0, 4, 1.0, 4.0) == [[0.0, 1.0], [4.0, 1.0]]


def test_latency_by_send_time_is_bounded_by_the_run_not_the_rate() -> None:
    log = BySend(width=0.1, limit=50)
    for k in range(10_000):  # 10,000 requests a second for one second
        sent = 100.0 + k / 10_000
        log.add(sent, sent + 1.0 + k / 10_000)
    rows = log.rows()
    assert len(rows) == 10 and sum(r["requests"] for r in rows) == 10_000
    assert rows[0]["t"] == 0.05 and rows[0]["mean_ms"] == pytest.approx(1050, abs=1)
    assert rows[-1]["max_ms"] == pytest.approx(2000, abs=1)
    for k in range(1000):  # a long run: buckets stop at the limit
        log.add(100.0 + k, 101.0 + k)
    assert len(log.rows()) == 50
    assert BySend().rows() == []


def hello_row(**cpu_shares: Any) -> dict[str, Any]:
    return {"key": "twincorn-wsgi", "title": "twincorn -w 4 (WSGI, blocking)", "app": "a",
            "command": "c", "workers": 4, "steps": [step(16, 3300.0, 3.1, **cpu_shares)]}


def test_hello_rows_say_what_limited_them() -> None:
    text = "\n".join(analysis.hello_markdown([hello_row(
        load_generator_cpu=0.98, server_cpu=0.8, machine_cpu=0.93, cores=2)]))
    assert ("up to 3,300 req/s (p50 3.10 ms at 16 users); limited by the load generator "
            "(one process at 98% of a core, on a machine of 2 cores shared with the "
            "server).") in text
    assert "these rows do not say that ASGI, or WSGI, is faster" in text
    text = "\n".join(analysis.hello_markdown([hello_row(
        load_generator_cpu=0.66, server_cpu=0.93, machine_cpu=0.95, cores=2)]))
    assert ("limited by the machine's CPU: its 2 cores were 95% busy (the load generator, "
            "one process, used 66% of a core, the server's processes 93%") in text
    assert "not the interface" in text
    text = "\n".join(analysis.hello_markdown([hello_row(
        load_generator_cpu=0.3, server_cpu=0.2, machine_cpu=0.3, cores=2)]))
    assert "no CPU was saturated" in text and "do not say" not in text
    limit = analysis.cpu_limit(step(16, 9000.0, load_generator_cpu=0.5, server_cpu=0.97,
                                    machine_cpu=0.8, cores=2), workers=1)
    assert limit is not None and limit.bound is analysis.Bound.SERVER
    # A results.json from before the CPU was measured: no label.
    assert analysis.cpu_limit(step(16, 9000.0), workers=1) is None
    assert "do not say" not in analysis.summary_markdown(fake_results())


def test_cpu_shares_from_proc(tmp_path: Path) -> None:
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "stat").write_text("1 (x) S 0 1 1")
    ticks = os.sysconf("SC_CLK_TCK")
    for pid, pgrp, utime, stime in ((10, 10, 3 * ticks, ticks), (11, 10, ticks, 0),
                                    (12, 99, 50 * ticks, 0)):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(
            f"{pid} (a (b) c) S 1 {pgrp} {pgrp} 0 -1 0 0 0 0 0 {utime} {stime} 0 0 20 0")
    assert cpu.group_cpu_seconds(10, tmp_path) == 5.0
    assert cpu.group_cpu_seconds(7, tmp_path) == 0.0
    (tmp_path / "stat").write_text("cpu  10 0 5 80 5 0 0 0 0 0\ncpu0 5 0 3 40 2 0 0 0 0 0\n"
                                   "cpu1 5 0 2 40 3 0 0 0 0 0\nintr 1\n")
    assert cpu.machine_ticks(tmp_path) == (15, 100, 2)
    assert cpu.group_cpu_seconds(10, tmp_path / "none") is None
    assert cpu.machine_ticks(tmp_path / "none") is None


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="no /proc")
def test_cpu_watch_sees_a_busy_loop() -> None:
    with cpu.CpuWatch(os.getpgrp()) as watch:
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            pass
    shares = watch.shares
    assert shares.load_generator > 0.5  # a core, less what the machine took from us
    assert shares.server is not None and shares.server > 0.3  # the group holds us
    assert shares.machine is not None and shares.cores and shares.cores >= 1


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
    # Both ran at the same fixed rate (2 x the ceiling, 16/s), and kept each
    # request's latency by when it was sent: the blocking one's grew.
    assert [r["rate"] for r in async_["open"]] == [16.0] == [r["rate"] for r in blocking["open"]]
    queued = blocking["open"][0]["by_send"]
    assert len(queued) <= 11 and sum(r["requests"] for r in queued) >= 12
    assert queued[-1]["mean_ms"] > queued[0]["mean_ms"] + 100, queued
    # The hello runs say how busy the load generator and the server were.
    for row in results["hello"]:
        shares = row["steps"][0]
        assert 0 < shares["load_generator_cpu"] <= 1.2 and shares["server_cpu"] is not None
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
        for chart in ("throughput", "latency", "rate-16"):
            page.wait_for_selector(f"#chart-{chart} canvas")
        sizes = page.eval_on_selector_all(".plot canvas", "cs => cs.map(c => c.width)")
        legends = page.locator(".legend").count()
        shot = page.screenshot(full_page=True)
        page.close()
    assert console.errors == []
    assert len(sizes) == 3 and min(sizes) > 300, sizes
    assert legends == 2  # one over the ramps, one over the fixed-rate chart
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
