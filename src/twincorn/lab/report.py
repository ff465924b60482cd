"""The lab's report: index.html, results.json, summary.md and PNG charts.

index.html is one self-contained file (uPlot and the numbers inlined) with
two charts — throughput against users and latency against users, a line
per configuration, the model as a dashed line of the same colour — the
summary, and a table per configuration. The PNG files draw the same two
charts with matplotlib (the `lab` extra), for READMEs and slides; without
matplotlib they are skipped with a note.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from string import Template
from typing import Any

from twincorn.lab.analysis import summary_markdown
from twincorn.lab.setups import model_latency, model_rps
from twincorn.load.static_files import UPLOT_CSS, UPLOT_JS, read_static

#: One colour per configuration, in order (colour-blind friendly: Okabe-Ito).
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


def write_report(results: dict[str, Any], out: Path) -> list[Path]:
    """Write every file of the report into `out`; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (
        ("results.json", json.dumps(results, indent=2) + "\n"),
        ("summary.md", summary_markdown(results)),
        ("index.html", render_index(results)),
    ):
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    written += write_pngs(results, out)
    return written


def chart_series(results: dict[str, Any], metric: str, model: str) -> dict[str, Any]:
    """The data of one chart, as uPlot wants it: one shared x (users) and,
    per configuration, the measured line and the model's (None where a
    configuration has no step at that number of users)."""
    configurations = results["configurations"]
    users = sorted({s["users"] for c in configurations for s in c["steps"]})
    service = results["service_time_s"]
    series = []
    for i, c in enumerate(configurations):
        by_users = {s["users"]: s for s in c["steps"]}
        colour = COLOURS[i % len(COLOURS)]
        series.append({"label": c["title"], "colour": colour, "dash": False,
                       "values": [_get(by_users.get(u), metric) for u in users]})
        # The model over the whole axis, so that a ceiling shows as a level line.
        series.append({"label": f"{c['title']}: model", "colour": colour, "dash": True,
                       "values": [_model(c, u, service, model) for u in users]})
    return {"users": users, "series": series}


def _model(configuration: dict[str, Any], users: int, service: float, key: str) -> float:
    """The model's throughput (req/s) or latency (s) at `users`."""
    model = model_rps if key == "predicted_rps" else model_latency
    return model(users, configuration.get("concurrency"), service)


def _get(step: dict[str, Any] | None, key: str) -> float | None:
    if step is None or step.get(key) is None:
        return None
    value = float(step[key])
    return value / 1000 if key.endswith("_ms") else value  # seconds on the charts


_PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>twincorn lab: blocking WSGI against async ASGI</title>
<style>
$uplot_css
$common_css
main { max-width: 1200px; margin: 0 auto; padding: 16px 24px 48px;
       font-family: system-ui, sans-serif; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 24px; }
.chart h2 { font-size: 17px; margin: 8px 0; }
table.lab { border-collapse: collapse; margin: 8px 0 24px; font-size: 14px; }
table.lab th, table.lab td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: right; }
table.lab th:first-child, table.lab td:first-child { text-align: left; }
code { background: #f3f3f3; padding: 1px 4px; border-radius: 3px; }
</style>
</head>
<body>
<main>
<h1>twincorn lab: blocking WSGI against async ASGI</h1>
<p>$subtitle</p>
<div class="charts">
<div class="chart"><h2>Throughput against users (requests/s)</h2><div id="throughput"></div></div>
<div class="chart"><h2>Latency (p50, seconds) against users</h2><div id="latency"></div></div>
</div>
<p>Solid lines: measured. Dashed lines: what the model predicts (workers &times; threads /
service time for a blocking app; as many requests at once as users for an async one).</p>
$summary
<h2>Every step</h2>
$tables
</main>
<script>$uplot_js</script>
<script>
const charts = $charts;
function draw(id, data) {
  const el = document.getElementById(id);
  const series = [{label: "users"}].concat(data.series.map(s => ({
    label: s.label, stroke: s.colour, width: s.dash ? 1.5 : 2.5,
    dash: s.dash ? [6, 5] : undefined, spanGaps: true,
    points: {show: !s.dash, size: 6},
  })));
  const values = [data.users].concat(data.series.map(s => s.values));
  const width = Math.max(480, Math.min(el.parentElement.clientWidth || 560, 700));
  new uPlot({
    width: width, height: 340, series: series,
    scales: {x: {time: false, distr: 3, log: 2}},
    axes: [{label: "users"}, {}],
    legend: {live: false},
  }, values, el);
}
draw("throughput", charts.throughput);
draw("latency", charts.latency);
</script>
</body>
</html>
""")


def render_index(results: dict[str, Any]) -> str:
    charts = {
        "throughput": chart_series(results, "rps", "predicted_rps"),
        "latency": chart_series(results, "p50_ms", "predicted_latency_ms"),
    }
    subtitle = (
        f"{len(results['configurations'])} configurations; slow apps waiting "
        f"{results['service_time_s']:g} s per request; run of {results['started']}, "
        f"{results['duration_s']:.0f} s{' (--quick)' if results.get('quick') else ''}."
    )
    return _PAGE.substitute(
        uplot_css=read_static(UPLOT_CSS),
        common_css="",
        uplot_js=read_static(UPLOT_JS),
        subtitle=html.escape(subtitle),
        summary=markdown_to_html(summary_markdown(results).split("\n", 2)[2]),
        tables="\n".join(_table(c) for c in results["configurations"]),
        # </script> inside the data must not end the script element.
        charts=json.dumps(charts).replace("</", "<\\/"),
    )


def _table(configuration: dict[str, Any]) -> str:
    head = ("users", "req/s", "model req/s", "p50", "p95", "p99", "model latency",
            "in flight", "errors")
    rows = []
    for s in configuration["steps"]:
        cells = (
            str(s["users"]), f"{s['rps']:.1f}", f"{s['predicted_rps']:.1f}",
            _ms(s["p50_ms"]), _ms(s["p95_ms"]), _ms(s["p99_ms"]),
            _ms(s["predicted_latency_ms"]), f"{s['in_flight']:.0f}", str(s["errors"]),
        )
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return (
        f"<h3>{html.escape(configuration['title'])}</h3>"
        f"<p><code>{html.escape(configuration['command'])}</code></p>"
        "<table class=\"lab\"><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
        + "".join(rows) + "</table>"
    )


def _ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.1f} ms"


def markdown_to_html(text: str) -> str:
    """The little markdown summary_markdown writes: headings, paragraphs,
    bullet lists, **bold** and `code` (escaped first, so nothing else passes)."""
    blocks = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.splitlines()
        if block.startswith("## "):
            blocks.append(f"<h2>{_inline(block[3:])}</h2>")
        elif all(line.startswith("- ") for line in lines):
            items = "".join(f"<li>{_inline(line[2:])}</li>" for line in lines)
            blocks.append(f"<ul>{items}</ul>")
        else:
            blocks.append(f"<p>{_inline(' '.join(lines))}</p>")
    return "\n".join(blocks)


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def write_pngs(results: dict[str, Any], out: Path) -> list[Path]:
    """throughput.png and latency.png, if matplotlib is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    for name, metric, model, ylabel in (
        ("throughput.png", "rps", "predicted_rps", "requests/s"),
        ("latency.png", "p50_ms", "predicted_latency_ms", "p50 latency (s)"),
    ):
        data = chart_series(results, metric, model)
        figure, axes = plt.subplots(figsize=(8, 4.8), dpi=120)
        for s in data["series"]:
            points = [(u, v) for u, v in zip(data["users"], s["values"], strict=True)
                      if v is not None]
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            axes.plot(xs, ys, color=s["colour"], linestyle=(0, (4, 3)) if s["dash"] else "-",
                      linewidth=1.3 if s["dash"] else 2.6, marker=None if s["dash"] else "o",
                      alpha=1.0 if s["dash"] else 0.75, zorder=3 if s["dash"] else 2,
                      label=s["label"])
        axes.set_xscale("log", base=2)
        axes.set_xticks(data["users"], [str(u) for u in data["users"]])
        axes.set_xlabel("users (closed loop, no think time)")
        axes.set_ylabel(ylabel)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
        axes.set_title(f"{ylabel} against users — dashed: the model")
        figure.tight_layout()
        figure.savefig(out / name)
        plt.close(figure)
        written.append(out / name)
    return written
