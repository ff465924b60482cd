"""The lab's report: index.html, results.json, summary.md and PNG charts.

index.html is one self-contained file (uPlot, report.js and the numbers
inlined): the charts that charts.py specifies — throughput and latency
against users, latency second by second at fixed rates, and a broadcast's
latency against the WebSockets held — each under a legend that tells the
measured lines (solid, with markers) from the model (dashed), then the
summary in words (analysis.py) and a table per configuration. The PNG
files (pngs.py) draw the same charts with matplotlib (the `lab` extra),
for READMEs and slides; without matplotlib they are skipped with a note.
"""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from twincorn.lab.analysis import TITLE, run_line, summary_markdown, summary_parts
from twincorn.lab.charts import aligned, chart_specs, style
from twincorn.lab.pngs import write_pngs
from twincorn.load.static_files import UPLOT_CSS, UPLOT_JS, read_static


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


_PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>$title</title>
<style>
$uplot_css
main { max-width: 1400px; margin: 0 auto; padding: 16px 24px 48px;
       font-family: system-ui, sans-serif; line-height: 1.4; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(620px, 1fr));
          gap: 8px 28px; }
.chart h3 { font-size: 17px; margin: 12px 0 4px; }
.chart .plot { width: 100%; }
p.note { font-size: 14px; color: #333; margin: 4px 0 8px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 22px; align-items: center;
          font-size: 14px; margin: 6px 0; padding: 8px 12px; background: #f7f7f7;
          border-radius: 6px; }
.legend span { display: inline-flex; align-items: center; gap: 6px; }
.legend .key { font-weight: 600; }
table.lab { border-collapse: collapse; margin: 8px 0 24px; font-size: 14px; }
table.lab th, table.lab td { border-bottom: 1px solid #ddd; padding: 4px 10px;
                             text-align: right; }
table.lab td { white-space: nowrap; }
table.lab th:first-child, table.lab td:first-child { text-align: left; }
code { background: #f3f3f3; padding: 1px 4px; border-radius: 3px; }
</style>
</head>
<body>
<main>
<h1>$title</h1>
<p>$subtitle</p>
$ramps
$summary_ramps
$open
$rest
$websockets
<h2>Every step</h2>
$tables
</main>
<script type="application/json" id="chart-data">$charts</script>
<script>$uplot_js</script>
<script>$report_js</script>
</body>
</html>
""")

_HOW_TO_READ = (
    "Both axes are logarithmic: each step of the ramp doubles the users, and "
    "each gridline doubles the value. So every step gets the same room, 4 "
    "req/s can be read beside 64, and a line that grows in proportion to the "
    "users is a straight diagonal (the async model: as many requests a second "
    "as users), while a ceiling is a flat line (a blocking server: workers x "
    "threads a second, however many users wait). Points of the configurations "
    "are nudged a few pixels sideways so that equal values do not hide each other."
)

_HOW_TO_READ_RATES = (
    "Requests sent on a schedule, whether the answers keep up or not, drawn "
    "against when each was sent. Linear axes: a queue that grows by the same "
    "number of requests every second makes each request wait longer than the "
    "one before by the same amount, a straight ramp. Each point is the latency "
    "of the requests sent in a tenth of a second (one request, at a few a second)."
)


_HOW_TO_READ_WS = (
    "Both axes are logarithmic: a time that grows in proportion to the sockets "
    "is a straight diagonal, as the dashed model does (one write per socket). "
    "Each point is the median, over the rung's broadcasts, of the time from the "
    "send until the last socket had the message."
)


def render_index(results: dict[str, Any]) -> str:
    specs = chart_specs(results)
    configurations = results["configurations"]
    parts = summary_parts(results)
    ramps = "" if not specs["ramps"] else (
        f"<p class=\"note\">{html.escape(_HOW_TO_READ)}</p>"
        + legend([(c["title"], i) for i, c in enumerate(configurations)])
        + _charts_html(specs["ramps"])
    )
    open_html = ""
    if specs["fixed_rate"]:
        shown = sorted({s["config"] for spec in specs["fixed_rate"] for s in spec["series"]})
        open_html = (
            markdown_to_html("\n".join(parts.pop("open", []))) +
            f"<p class=\"note\">{html.escape(_HOW_TO_READ_RATES)}</p>"
            + legend([(configurations[i]["title"], i) for i in shown])
            + _charts_html(specs["fixed_rate"])
        )
    websockets_html = ""
    held = [c for c in (results.get("websockets") or {}).get("configurations", [])
            if c["steps"]]
    if specs["websockets"]:
        websockets_html = (
            markdown_to_html("\n".join(parts.pop("websockets", [])))
            + f"<p class=\"note\">{html.escape(_HOW_TO_READ_WS)}</p>"
            + legend([(c["title"], i) for i, c in enumerate(held)])
            + _charts_html(specs["websockets"])
        )
    charts = [{"spec": spec, "columns": aligned(spec)}
              for spec in specs["ramps"] + specs["fixed_rate"] + specs["websockets"]]
    what = []
    if configurations:
        what.append(f"{len(configurations)} configurations; slow apps waiting "
                    f"{results['service_time_s']:g} s per request")
    if held:
        what.append(f"WebSockets held by {len(held)} server{'s' if len(held) != 1 else ''}")
    subtitle = "; ".join(what) + (". " if what else "") + run_line(results)
    return _PAGE.substitute(
        title=html.escape(TITLE),
        uplot_css=read_static(UPLOT_CSS),
        uplot_js=_script_safe(read_static(UPLOT_JS)),
        report_js=_script_safe(_report_js()),
        subtitle=html.escape(subtitle),
        ramps=ramps,
        summary_ramps=markdown_to_html("\n".join(parts.pop("ramps", []))),
        open=open_html,
        rest=markdown_to_html("\n".join(line for lines in parts.values() for line in lines)),
        websockets=websockets_html,
        tables="\n".join(_table(c) for c in configurations) + _open_table(configurations)
        + websockets_table(results.get("websockets")),
        charts=_script_safe(json.dumps(charts)),
    )


def _script_safe(text: str) -> str:
    """</script> inside a script element's text must not end it."""
    return text.replace("</", "<\\/")


def _report_js() -> str:
    return resources.files("twincorn.lab").joinpath("report.js").read_text(encoding="utf-8")


def _charts_html(specs: list[dict[str, Any]]) -> str:
    boxes = []
    for spec in specs:
        notes = "".join(f"<p class=\"note\">{html.escape(n)}</p>" for n in spec["notes"])
        boxes.append(
            f"<div class=\"chart\" data-chart=\"{html.escape(spec['id'])}\">"
            f"<h3>{html.escape(spec['title'])}</h3>"
            f"<div class=\"plot\" id=\"chart-{html.escape(spec['id'])}\"></div>{notes}</div>"
        )
    return "<div class=\"charts\">" + "".join(boxes) + "</div>"


def legend(entries: list[tuple[str, int]]) -> str:
    """The legend of a group of charts: what solid and dashed mean, then per
    configuration its two swatches (measured, model) and its title."""
    key = ("<span class=\"key\">" + swatch("#333333", "circle", []) + " measured"
           "</span><span class=\"key\">" + swatch("#333333", None, [8, 4]) + " the model"
           "</span>")
    items = []
    for title, index in entries:
        look = style(index)
        items.append(
            f"<span data-config=\"{index}\">"
            + swatch(look["colour"], look["marker"], [])
            + swatch(look["colour"], None, look["model_dash"])
            + f" {html.escape(title)}</span>"
        )
    return "<div class=\"legend\">" + key + "".join(items) + "</div>"


#: The markers of charts.MARKERS in a swatch's SVG, centred on (18, 7).
_SHAPES = {
    "circle": '<circle cx="18" cy="7" r="4.5"',
    "square": '<rect x="14" y="3" width="8" height="8"',
    "triangle": '<polygon points="18,2 23,11 13,11"',
    "down": '<polygon points="18,12 23,3 13,3"',
    "diamond": '<polygon points="18,1.5 23.5,7 18,12.5 12.5,7"',
    "cross": '<path d="M14,3 L22,11 M14,11 L22,3" stroke-width="2.2"',
    "plus": '<path d="M13,7 L23,7 M18,2 L18,12" stroke-width="2.2"',
}
_STROKED = {"cross", "plus"}


def swatch(colour: str, marker: str | None, dash: list[int]) -> str:
    """A 36 x 14 SVG sample of a line: solid with `marker`, or dashed."""
    dasharray = f' stroke-dasharray="{",".join(map(str, dash))}"' if dash else ""
    shape = ""
    if marker:
        fill = "none" if marker in _STROKED else colour
        shape = f'{_SHAPES[marker]} fill="{fill}" stroke="{colour}"/>'
    return (f'<svg class="swatch" width="36" height="14" viewBox="0 0 36 14" '
            f'aria-hidden="true"><line x1="1" y1="7" x2="35" y2="7" stroke="{colour}" '
            f'stroke-width="{2.5 if marker else 1.8}"{dasharray}/>{shape}</svg>')


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


def _open_table(configurations: list[dict[str, Any]]) -> str:
    head = ("configuration", "rate (req/s)", "for", "model ceiling (req/s)", "answered",
            "p50", "p99", "unanswered", "kept up")
    rows = []
    for c in configurations:
        for run in c.get("open", []):
            ceiling = run.get("model_ceiling_rps")
            sent_for = run.get("rate_seconds")
            cells = (c["title"], f"{run['rate']:g}", "-" if sent_for is None else f"{sent_for:g} s",
                     "-" if ceiling is None else f"{ceiling:g}",
                     str(run["requests"]), _ms(run["p50_ms"]), _ms(run["p99_ms"]),
                     str(run.get("unfinished", 0)), "yes" if run["kept_up"] else "no")
            rows.append("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in cells)
                        + "</tr>")
    if not rows:
        return ""
    return ("<h3>At a fixed rate</h3><table class=\"lab\"><tr>"
            + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>")




WEBSOCKETS_HEAD = ("server", "sockets", "memory (MiB)", "KiB per socket", "broadcasts",
                   "p50", "p99", "max", "all had it", "server CPU per write", "received")


def websockets_rows(part: dict[str, Any] | None) -> list[tuple[str, ...]]:
    """The WebSocket part's table, a row per server and rung (the cells as
    shown): memory with the sockets open, what each added, the broadcasts'
    latency, the server's CPU per message written, the messages received of
    those sent to the listeners."""
    rows: list[tuple[str, ...]] = []
    for c in (part or {}).get("configurations", []):
        for s in c["steps"]:
            cost = s.get("server_us_per_message")
            rows.append((
                c["title"], f"{s['opened']:,}", f"{s['memory_kib'] / 1024:.1f}",
                "-" if s["per_socket_kib"] is None else f"{s['per_socket_kib']:.1f}",
                str(s["broadcasts"]), _ms(s["p50_ms"]), _ms(s["p99_ms"]), _ms(s["max_ms"]),
                _ms(s["last_ms"]), "-" if cost is None else f"{cost:.1f} µs",
                f"{s['received']:,} of {s['deliveries']:,}",
            ))
    return rows


def websockets_table(part: dict[str, Any] | None) -> str:
    rows = websockets_rows(part)
    if part is None or not rows:
        return ""
    kind = next((c["memory"] for c in part["configurations"] if c.get("memory")), "USS")
    head = [h if h != "memory (MiB)" else f"memory, {kind} (MiB)" for h in WEBSOCKETS_HEAD]
    return ("<h3>Holding WebSockets</h3><table class=\"lab\"><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in row) + "</tr>"
                      for row in rows) + "</table>")
