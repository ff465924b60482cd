"""The HTML report: its tables and its page (fast), then the file opened in
a real headless Chromium, offline."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from load_web_fakes import counted_results, fake_results
from load_web_support import ConsoleWatch, chromium, distinct_colours
from twincorn.load.report_html import json_for_script, render_html
from twincorn.load.report_tables import (
    COORDINATED_OMISSION,
    failures_table,
    format_value,
    latency_table,
    stats_table,
)


def cells(table: Any, row: int) -> list[str]:
    return [cell["text"] for cell in table["rows"][row]["cells"]]


def embedded_results(page: str) -> Any:
    match = re.search(r'<script type="application/json" id="results">(.*?)</script>', page, re.S)
    assert match is not None
    return json.loads(match.group(1))


# -- the tables ---------------------------------------------------------------------


@pytest.mark.parametrize("kind, value, text", [
    ("ms", 0.0123, "0.01"), ("ms", 3.14159, "3.14"), ("ms", 12.345, "12.3"),
    ("ms", 1234.5, "1234"), ("ms", None, ""), ("ms", float("nan"), ""),
    ("count", 12.0, "12"), ("rate", 5.25, "5.2"), ("rate", 250.4, "250"),
    ("percent", 1.234, "1.2%"), ("bytes", 512.4, "512"), ("text", None, ""),
    ("clock", "not a time", "not a time"),
])
def test_format_value(kind: str, value: Any, text: str) -> None:
    assert format_value(kind, value) == text


def test_stats_table_has_locusts_columns_and_an_aggregated_row() -> None:
    table = stats_table(fake_results())
    titles = [c["title"] for c in table["columns"]]
    assert titles[:4] == ["Type", "Name", "# Requests", "# Fails"]
    for title in ("Median (ms)", "95%ile (ms)", "99%ile (ms)", "Average (ms)", "Min (ms)",
                  "Max (ms)", "Average size (bytes)", "RPS", "Failures/s"):
        assert title in titles
    assert cells(table, 0)[:4] == ["GET", "/", str(fake_results()["requests"] - 100), "0"]
    assert cells(table, 1)[:2] == ["POST", "/items"]
    assert table["rows"][1]["cells"][3]["bad"]  # failures show in red
    total = table["rows"][-1]
    assert total["total"] and cells(table, -1)[:2] == ["", "Aggregated"]


def test_stats_table_reads_method_from_a_key() -> None:
    results = {"requests": 1, "failures": 0, "duration_s": 1.0, "latency_ms": {},
               "by_name": {"DELETE /x": {"requests": 1, "failures": 0, "latency_ms": {}}}}
    assert cells(stats_table(results), 0)[:2] == ["DELETE", "/x"]


def test_failures_table_most_frequent_first() -> None:
    results = {"errors": [
        {"name": "/a", "message": "refused", "count": 2},
        {"name": "/b", "message": "HTTP 500", "count": 9},
    ]}
    table = failures_table(results)
    assert [c["title"] for c in table["columns"]] == ["# Failures", "Name", "Message"]
    assert cells(table, 0) == ["9", "/b", "HTTP 500"]
    with_times = failures_table(fake_results())
    assert len(with_times["columns"]) == 5
    assert re.fullmatch(r"\d\d:\d\d:\d\d", cells(with_times, 0)[3])


def test_latency_table_corrected_and_uncorrected() -> None:
    closed = latency_table(fake_results())
    assert len(closed["rows"]) == 1
    open_model = latency_table(fake_results(open_model=True))
    assert [cells(open_model, i)[0] for i in (0, 1)] == [
        "corrected (from the intended send time)", "uncorrected (from the actual send time)"]


# -- the page --------------------------------------------------------------------------


def test_report_is_one_self_contained_file() -> None:
    results = fake_results()
    page = render_html(results, title="Nightly <run>")
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>Nightly &lt;run&gt;</title>" in page
    assert "var uPlot=" in page  # uPlot is inlined, and nothing is fetched:
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(?!data:)', page)
    for element in ("stats-table", "latency-table", "failures-table", "chart-area"):
        assert f'id="{element}"' in page
    assert "HTTP 500 &lt;Internal Server Error&gt;" in page
    assert COORDINATED_OMISSION not in page  # closed model: one latency
    assert embedded_results(page) == results


def test_report_of_the_open_model_explains_both_latencies() -> None:
    page = render_html(fake_results(open_model=True))
    assert COORDINATED_OMISSION in page
    assert "uncorrected (from the actual send time)" in page
    assert "open model, 400 requests/s" in page


def test_report_survives_hostile_names_and_odd_numbers() -> None:
    results = fake_results()
    results["by_name"]["</script><script>alert(1)</script>"] = {
        "requests": 1, "failures": 0, "latency_ms": {"p50": float("inf")}}
    results["rps"] = float("nan")
    page = render_html(results)
    assert page.count("<script>alert(1)") == 0
    back = embedded_results(page)
    assert back["rps"] is None
    assert "</script><script>alert(1)</script>" in back["by_name"]
    assert json_for_script({"a": "</script>"}) == '{"a":"\\u003c/script>"}'


def test_report_of_counted_results() -> None:
    """Results as the load tester's own statistics make them."""
    results = counted_results(open_model=True)
    table = stats_table(results)
    assert cells(table, 0)[:3] == ["GET", "/", str(results["by_name"]["/"]["requests"])]
    assert table["rows"][0]["cells"][3]["bad"]
    assert cells(failures_table(results), 0)[:3] == [str(results["failures"]), "/", "HTTP 503"]
    page = render_html(results)
    assert COORDINATED_OMISSION in page and "127.0.0.1:9" in page


def test_report_is_ascii() -> None:
    results = fake_results()
    results["by_name"]["/caf\u00e9"] = {"requests": 1, "failures": 0, "latency_ms": {}}
    page = render_html(results, title="r\u00e9sum\u00e9")
    assert page.isascii()
    assert "/caf&#233;" in page and embedded_results(page)["by_name"]["/caf\u00e9"]


def test_report_of_an_empty_run() -> None:
    page = render_html({"requests": 0, "failures": 0, "duration_s": 0.0, "rps": 0.0,
                        "latency_ms": {}, "by_name": {}, "timeline": [], "errors": []})
    assert "No failures." in page and "Aggregated" in page


# -- in Chromium -----------------------------------------------------------------------


def open_report(browser: Any, path: Path) -> tuple[Any, ConsoleWatch]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    console = ConsoleWatch(page)
    # Offline: any request other than the file itself fails the test.
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.as_uri())
    page.wait_for_function("document.querySelectorAll('#chart-area canvas').length >= 3")
    assert requests == [path.as_uri()]
    return page, console


def test_report_in_chromium(tmp_path: Path) -> None:
    closed = tmp_path / "closed.html"
    closed.write_text(render_html(fake_results(30)), encoding="utf-8")
    opened = tmp_path / "open.html"
    opened.write_text(render_html(counted_results(30, open_model=True)), encoding="utf-8")
    with chromium() as browser:
        page, console = open_report(browser, closed)
        assert page.eval_on_selector_all(".chart .u-title", "els => els.map(e => e.textContent)") \
            == ["Requests/s and failures/s", "Latency percentiles (ms)",
                "Users and requests in flight"]
        assert "Aggregated" in page.inner_text("#stats-table")
        shot = page.screenshot(full_page=True)
        (tmp_path / "report.png").write_bytes(shot)
        assert distinct_colours(shot) > 50, "the screenshot looks blank"
        assert console.errors == []

        page, console = open_report(browser, opened)
        legend = page.inner_text("[data-chart=latency] .u-legend")
        assert "p99 uncorrected" in legend and "p95" in legend
        assert "HTTP 503" in page.inner_text("#failures-table")
        (tmp_path / "open.png").write_bytes(page.screenshot(full_page=True))
        assert console.errors == []
