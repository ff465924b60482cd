"""The HTML report: one self-contained file, readable offline.

`render_html(results)` returns a page with the headline figures, the
statistics table per request name (Locust's columns), the latency
percentiles (corrected and uncorrected in the open model), the failures,
and three charts over time (requests/s and failures/s; p50/p95/p99; users
and requests in flight). The tables are plain HTML; the charts are drawn
by uPlot, whose script and stylesheet are inlined with the results as
JSON, so that the file opens anywhere without a network.
"""

from __future__ import annotations

import html
import json
import math
import time
from collections.abc import Mapping
from string import Template
from typing import Any

from twincorn.load.report_tables import (
    COORDINATED_OMISSION,
    Figure,
    ResultsData,
    Table,
    exceptions_table,
    failures_table,
    figures,
    has_uncorrected,
    latency_table,
    local_time,
    stats_table,
)
from twincorn.load.static_files import UPLOT_CSS, UPLOT_JS, read_static

_PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="twincorn load">
<link rel="icon" href="data:,">
<title>$title</title>
<style>
$uplot_css
$common_css
main { max-width: 1400px; margin: 0 auto; padding: 16px 24px 48px; }
header.report h1 { margin: 0 0 4px; font-size: 24px; }
header.report p { margin: 0; color: var(--muted); }
</style>
</head>
<body>
<main>
<header class="report">
<h1>$title</h1>
<p>$subtitle</p>
</header>
<section id="summary">
<div class="figures">$figures</div>
</section>
<section id="statistics">
<h2>Statistics per request name</h2>
<div class="table-wrap">$stats</div>
</section>
<section id="latency">
<h2>Latency</h2>
$omission
<div class="table-wrap">$latency</div>
</section>
<section id="charts">
<h2>Over time</h2>
<div class="charts" id="chart-area"></div>
<noscript><p class="empty">The charts need JavaScript.</p></noscript>
</section>
<section id="failures">
<h2>Failures</h2>
$failures
$exceptions
</section>
</main>
<script>
$uplot_js
</script>
<script>
$charts_js
</script>
<script type="application/json" id="results">$results_json</script>
<script>
"use strict";
(function () {
  const results = JSON.parse(document.getElementById("results").textContent);
  const charts = new TwincornCharts.ChartSet(document.getElementById("chart-area"));
  charts.setRows(results.timeline || []);
})();
</script>
</body>
</html>
""")


def render_html(results: ResultsData, title: str = "twincorn load report") -> str:
    """The whole report for one run's results (the JSON schema's dict)."""
    failures = failures_table(results)
    exceptions = exceptions_table(results)
    omission = (
        f'<p class="note">{html.escape(COORDINATED_OMISSION)}</p>'
        if has_uncorrected(results) else ""
    )
    page = _PAGE.substitute(
        title=html.escape(title),
        subtitle=html.escape(subtitle(results)),
        uplot_css=read_static(UPLOT_CSS),
        common_css=read_static("common.css"),
        figures=figures_html(figures(results)),
        stats=table_html(stats_table(results), "stats-table"),
        omission=omission,
        latency=table_html(latency_table(results), "latency-table"),
        failures=(
            table_html(failures, "failures-table") if failures["rows"]
            else '<p class="empty">No failures.</p>'
        ),
        exceptions=(
            "<h2>Exceptions in the scenario</h2>"
            + table_html(exceptions, "exceptions-table") if exceptions["rows"] else ""
        ),
        uplot_js=script_safe(read_static(UPLOT_JS)),
        charts_js=script_safe(read_static("charts.js")),
        results_json=json_for_script(results),
    )
    # Plain ASCII, whatever file encoding it is written with: the scripts and
    # the JSON are ASCII already, and the page's text takes character
    # references (a name "/café" becomes "/caf&#233;").
    return page.encode("ascii", "xmlcharrefreplace").decode("ascii")


def subtitle(results: ResultsData) -> str:
    """Where, when and how: "http://... · started 2026-11-24 10:00:00 · closed model..."."""
    plan = results.get("plan")
    plan = plan if isinstance(plan, Mapping) else {}
    parts = []
    target = plan.get("host") or plan.get("url")
    if isinstance(target, str):
        parts.append(target)
    started = results.get("started_at")
    if isinstance(started, str) and started:
        parts.append(f"started {local_time(started, '%Y-%m-%d %H:%M:%S')}")
    if results.get("model") == "open" or has_uncorrected(results):
        rate = plan.get("rate")
        parts.append(f"open model, {rate:g} requests/s" if isinstance(rate, int | float)
                     else "open model")
    elif isinstance(plan.get("users"), int):
        parts.append(f"closed model, {plan['users']} users")
    parts.append(f"report made {time.strftime('%Y-%m-%d %H:%M:%S')}")
    return " · ".join(parts)



def figures_html(items: list[Figure]) -> str:
    return "".join(
        f'<div class="figure{" bad" if item["bad"] else ""}">'
        f'<span class="label">{html.escape(item["label"])}</span>'
        f'<span class="value">{html.escape(item["value"])}</span></div>'
        for item in items
    )


def table_html(table: Table, element_id: str) -> str:
    """A Table (report_tables) as an HTML table."""
    kinds = [column["kind"] for column in table["columns"]]
    head = "".join(
        f'<th class="{cell_class(kind)}">{html.escape(column["title"])}</th>'
        for column, kind in zip(table["columns"], kinds, strict=True)
    )
    body: list[str] = []
    for row in table["rows"]:
        cells = "".join(
            f'<td class="{cell_class(kind, cell["bad"])}">{html.escape(cell["text"])}</td>'
            for cell, kind in zip(row["cells"], kinds, strict=True)
        )
        body.append(f'<tr class="total">{cells}</tr>' if row["total"] else f"<tr>{cells}</tr>")
    return (
        f'<table class="stats" id="{element_id}"><thead><tr>{head}</tr></thead>'
        f'<tbody>{"".join(body)}</tbody></table>'
    )


def cell_class(kind: str, bad: bool = False) -> str:
    names = {"text": "text", "message": "message"}.get(kind, "num")
    return f"{names} bad" if bad else names


def json_for_script(value: Any) -> str:
    """JSON that can sit inside <script>: no `<` can end the element early,
    and no NaN or Infinity, which JSON.parse refuses (they become null)."""
    text = json.dumps(finite(value), separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c")


def finite(value: Any) -> Any:
    """`value` with every NaN and infinity replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def script_safe(source: str) -> str:
    """A script's source made safe to inline: `</script` would end the element."""
    return source.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")
