"""What the lab's charts show, as plain data: one spec per chart, drawn by
index.html (uPlot, report.js) and by the PNG files (matplotlib, pngs.py).

Every decision a reader of a chart depends on is made here, once, and the
tests check it here:

* Both axes of the ramp charts are logarithmic, base 2. The ramp doubles
  the users at each step, so its steps stand evenly spaced, and a line that
  grows in proportion to the users (the async model, y = x; a blocking
  server's queueing latency, users / slots) is a straight diagonal, while a
  ceiling is a flat line. Under a linear axis, 4 req/s and 64 req/s could
  not both be read; under a log x alone, y = x looks exponential.
* Each configuration has its colour (Okabe-Ito, for colour-blind readers)
  and its marker, and its model its own dash pattern; each is nudged a few
  pixels sideways (NUDGE), so that equal values stay visible side by side,
  and is named at the end of its line.
* Measured: solid lines with markers. The model: dashed, no marker. The
  legend says so for each configuration.
* The fixed-rate charts have linear axes: there the queue, and so the
  latency, grows in proportion to the time, and shows as a straight ramp.
  Each point is the mean latency of the requests sent in 0.1 s (at a few
  requests a second, one request), counted from when it was sent.
* The WebSocket chart is log-log too: the time a broadcast takes to reach
  every socket, against the idle sockets held, with, dashed, one write per
  socket at what a write cost the server (its CPU time over the broadcasts,
  per message written): growth in proportion to the sockets, a diagonal.
"""

from __future__ import annotations

import math
from typing import Any

from twincorn.lab.setups import model_latency, model_rps

#: One colour per configuration, in order (colour-blind friendly: Okabe-Ito).
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
#: One marker per configuration (report.js and pngs.py draw each name).
MARKERS = ("circle", "square", "triangle", "diamond", "down", "cross", "plus")
#: One dash pattern per configuration's model: [on, off, ...] in pixels.
DASHES = ((8, 4), (2, 3), (10, 3, 2, 3), (5, 2, 1, 2), (12, 5), (3, 6), (6, 2, 6, 6))
#: How far each configuration's points stand apart sideways, in doublings
#: of the users (0.08: about 6% apart, a twelfth of a doubling's width).
NUDGE = 0.08
MEASURED_WIDTH, MODEL_WIDTH = 2.5, 1.5


def chart_specs(results: dict[str, Any]) -> dict[str, Any]:
    """Every chart of the report: {"ramps": [throughput, latency],
    "fixed_rate": [one per shared arrival rate], "websockets": [the
    broadcast chart]}; a part that did not run has none."""
    ramps = ([ramp_chart(results, "throughput"), ramp_chart(results, "latency")]
             if results["configurations"] else [])
    return {"ramps": ramps, "fixed_rate": fixed_rate_charts(results),
            "websockets": websocket_charts(results.get("websockets"))}


def style(index: int) -> dict[str, Any]:
    """The colour, marker and model dash pattern of configuration `index`."""
    return {"colour": COLOURS[index % len(COLOURS)], "marker": MARKERS[index % len(MARKERS)],
            "model_dash": list(DASHES[index % len(DASHES)])}


def short_titles(configurations: list[dict[str, Any]]) -> list[str]:
    """The names written at the ends of the lines: "-w 4 (WSGI, blocking)"
    where every configuration is twincorn's, the whole title otherwise."""
    titles = [c["title"] for c in configurations]
    if all(t.startswith("twincorn ") for t in titles):
        return [t.removeprefix("twincorn ") for t in titles]
    return titles


def ramp_chart(results: dict[str, Any], kind: str) -> dict[str, Any]:
    """Throughput ("throughput") or p50 latency ("latency") against users."""
    configurations = results["configurations"]
    service = results["service_time_s"]
    users = sorted({s["users"] for c in configurations for s in c["steps"]})
    metric, unit = ("rps", "req/s") if kind == "throughput" else ("p50_ms", "s")
    names = short_titles(configurations)
    measured_lines, model_lines = [], []
    for i, c in enumerate(configurations):
        nudge = 2 ** (NUDGE * (i - (len(configurations) - 1) / 2))
        measured = [[s["users"] * nudge, _value(s, metric)] for s in c["steps"]]
        measured_lines.append(_line(i, c["title"], "measured", names[i],
                                    [p for p in measured if p[1] is not None and p[1] > 0]))
        model_lines.append(_line(i, c["title"], "model", None,
                                 [[u * nudge, _model(c, u, service, kind)] for u in users]))
    # The models drawn last, thin and dashed over the measured lines: where
    # the two agree, the dashes run along the middle of the solid line.
    series = measured_lines + model_lines
    values = [p[1] for s in series for p in s["points"]]
    spec = {
        "id": kind,
        "title": ("Throughput against users" if kind == "throughput"
                  else "Latency (p50) against users"),
        "x": {"label": "users (each sends its next request when answered)", "log": 2,
              "ticks": users, "min": min(users, default=1) / 2 ** 0.3,
              "max": max(users, default=1) * 2 ** 0.3, "unit": "users"},
        "y": _log_axis(values, "requests/s" if kind == "throughput" else "p50 latency (s)",
                       unit),
        "series": series,
        "annotations": [],
        "notes": [],
    }
    if kind == "latency":
        _explain_stops(spec, results, users)
    return spec


def _explain_stops(spec: dict[str, Any], results: dict[str, Any], users: list[int]) -> None:
    """A configuration whose ramp ended before the others': say why, in a
    note under the chart and beside the line's last point."""
    if not users:
        return
    service = results["service_time_s"]
    for i, c in enumerate(results["configurations"]):
        slots, steps = c.get("concurrency"), c["steps"]
        if not steps or slots is None or steps[-1]["users"] >= users[-1]:
            continue
        last = steps[-1]["users"]
        waiting = last - slots
        beyond = model_latency(users[-1], slots, service)
        spec["notes"].append(
            f"{c['title']} was measured up to {last} users, {last / slots:g} times its "
            f"{slots} slots (workers x threads): by then {waiting} of its {last} users wait "
            f"in the queue behind the {slots} being served, and every further step would "
            f"only make the wait longer. Past {last} users the dashed line is the model "
            f"alone: {_seconds(beyond)} at {users[-1]} users.")
        line = next(s for s in spec["series"] if s["config"] == i and s["role"] == "measured")
        if line["points"]:
            point = line["points"][-1]
            spec["annotations"].append({
                "x": point[0], "y": point[1], "colour": line["colour"],
                "text": f"measured up to {last} users ({last / slots:g} x {slots} slots)"})


def fixed_rate_charts(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Latency against when each request was sent, at a fixed arrival rate:
    one chart per rate that several configurations ran at (every rate, if
    none was shared)."""
    configurations = results["configurations"]
    by_rate: dict[float, list[int]] = {}
    for i, c in enumerate(configurations):
        for run in c.get("open", []):
            if run.get("by_send"):
                by_rate.setdefault(float(run["rate"]), []).append(i)
    shared = {rate: who for rate, who in by_rate.items() if len(who) > 1} or by_rate
    return [_rate_chart(results, rate, who) for rate, who in sorted(shared.items())]


def _rate_chart(results: dict[str, Any], rate: float, who: list[int]) -> dict[str, Any]:
    configurations = results["configurations"]
    service = results["service_time_s"]
    names = short_titles(configurations)
    measured_lines, model_lines, notes = [], [], []
    sending = 0.0
    for i in who:
        c = configurations[i]
        run = next(r for r in c["open"] if float(r["rate"]) == rate)
        seconds = float(run.get("rate_seconds") or 0.0)
        sending = max(sending, seconds)
        points = [[row["t"], row["mean_ms"] / 1000] for row in run["by_send"]]
        measured_lines.append(_line(i, c["title"], "measured", names[i], points))
        if seconds:
            model_lines.append(_line(i, c["title"], "model", None, open_model_line(
                rate, c.get("concurrency"), service, seconds)))
        notes.append(_rate_note(c, run, rate, service))
    series = measured_lines + model_lines
    xs = [p[0] for s in series for p in s["points"]]
    ys = [p[1] for s in series for p in s["points"]]
    top = max(ys, default=service)
    high = max(sending, max(xs, default=1.0))
    return {
        "id": f"rate-{rate:g}".replace(".", "_"),
        "title": f"{rate:g} requests/s for {sending:g} s: how long each one waited",
        "x": {"label": "when the request was sent (seconds since the first)", "log": None,
              "ticks": _linear_ticks(high), "min": 0.0, "max": high * 1.02, "unit": "s"},
        "y": {"label": "latency (s)", "log": None, "ticks": None, "min": 0.0,
              "max": _nice_top(top * 1.15), "unit": "s"},
        "series": series,
        "annotations": [],
        "notes": notes,
    }


def websocket_charts(part: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The time until every socket had a broadcast, against the sockets
    held, per server (measured: the median over the rung's broadcasts), and
    beside it the model: as many writes as sockets, each costing the CPU
    time the server spent per message written at its top rung."""
    configurations = [c for c in (part or {}).get("configurations", []) if c["steps"]]
    if not configurations:
        return []
    names = [c["title"] for c in configurations]  # few, short: named in full
    rungs = sorted({s["opened"] for c in configurations for s in c["steps"]})
    measured_lines, model_lines, costs = [], [], []
    for i, c in enumerate(configurations):
        nudge = 2 ** (NUDGE * (i - (len(configurations) - 1) / 2))
        steps = [s for s in c["steps"] if s["last_ms"]]
        measured_lines.append(_line(i, c["title"], "measured", names[i],
                                    [[s["opened"] * nudge, s["last_ms"]] for s in steps]))
        cost = c["steps"][-1].get("server_us_per_message")
        model = [] if not cost else [[s["opened"] * nudge, s["opened"] * cost / 1000]
                                     for s in c["steps"]]
        model_lines.append(_line(i, c["title"], "model", None, model))
        if cost:
            costs.append(f"{cost:.1f} µs for {c['title']}")
    series = measured_lines + model_lines
    values = [p[1] for s in series for p in s["points"]]
    notes = []
    if costs:
        notes.append(
            f"Dashed, the model: one write per socket, each costing what a message written "
            f"cost the server's CPU during the broadcasts ({', '.join(costs)}). Where the "
            "solid line runs above it, something else took time too: the message's way to "
            "the server and back, the client reading the sockets, waiting for a core.")
    return [{
        "id": "websockets",
        "title": "A broadcast: time until every socket had it",
        "x": {"label": "idle WebSockets held by one process", "log": 2, "ticks": rungs,
              "min": min(rungs) / 2 ** 0.3, "max": max(rungs) * 2 ** 0.3, "unit": "sockets"},
        "y": _log_axis(values, "until the last socket had it (ms)", "ms"),
        "series": series,
        "annotations": [],
        "notes": notes,
    }]


def _line(index: int, title: str, role: str, end_label: str | None,
          points: list[list[float]]) -> dict[str, Any]:
    """One series: configuration `index`'s measured line (solid, its marker)
    or its model (dashed, its pattern, no marker)."""
    look = style(index)
    measured = role == "measured"
    return {"config": index, "label": title if measured else f"{title}: model", "role": role,
            "colour": look["colour"], "marker": look["marker"] if measured else None,
            "dash": [] if measured else look["model_dash"],
            "width": MEASURED_WIDTH if measured else MODEL_WIDTH,
            "points": points, "end_label": end_label}


def open_model_line(rate: float, slots: int | None, service: float,
                    seconds: float) -> list[list[float]]:
    """The model's latency of each request, against when it was sent, for
    `rate` requests a second sent for `seconds`, `slots` served at a time
    (None: all at once). Served at mu = slots / service a second, request k,
    sent at t = k / rate, is answered at about service + k / mu: it waits
    L(t) = service + t (rate / mu - 1), a straight ramp."""
    mu = math.inf if slots is None else slots / service
    if mu >= rate:  # keeps up: every answer one service time after it was due
        return [[0.0, service], [seconds, service]]
    return [[0.0, service], [seconds, service + seconds * (rate / mu - 1)]]


def _rate_note(c: dict[str, Any], run: dict[str, Any], rate: float, service: float) -> str:
    slots = c.get("concurrency")
    if slots is None or slots / service >= rate:
        serves = ("awaits every request at once" if slots is None
                  else f"serves up to {slots / service:g} a second")
        return (f"{c['title']} {serves}: each answer comes about {_seconds(service)} after "
                f"it was due (p99 {_seconds(run['p99_ms'] / 1000)}).")
    ceiling = slots / service
    return (f"{c['title']} serves at most {ceiling:g} a second: with {rate:g} arriving "
            f"each second, its queue grows by {rate - ceiling:g} a second, so each request "
            f"waits longer than the one before (p99 {_seconds(run['p99_ms'] / 1000)}); the "
            f"queue empties only once the requests stop.")


def aligned(spec: dict[str, Any]) -> list[list[float | None]]:
    """The chart's series as uPlot wants them: one sorted x column shared by
    all, then one column per series, None where it has no point."""
    xs = sorted({p[0] for s in spec["series"] for p in s["points"]})
    index = {x: i for i, x in enumerate(xs)}
    columns: list[list[float | None]] = [list(xs)]
    for s in spec["series"]:
        column: list[float | None] = [None] * len(xs)
        for x, y in s["points"]:
            column[index[x]] = y
        columns.append(column)
    return columns


def _model(configuration: dict[str, Any], users: int, service: float, kind: str) -> float:
    """The model's throughput (req/s) or latency (s) at `users`."""
    model = model_rps if kind == "throughput" else model_latency
    return model(users, configuration.get("concurrency"), service)


def _value(step: dict[str, Any], key: str) -> float | None:
    if step.get(key) is None:
        return None
    value = float(step[key])
    return value / 1000 if key.endswith("_ms") else value  # seconds on the charts


def _log_axis(values: list[float], label: str, unit: str) -> dict[str, Any]:
    """A base-2 log axis over `values`, a tick at every power of 2 in it."""
    low = min(values, default=1.0) / 2 ** 0.3
    high = max(values, default=1.0) * 2 ** 0.3
    ticks = [2.0 ** k for k in range(math.floor(math.log2(low)), math.ceil(math.log2(high)) + 1)
             if low <= 2.0 ** k <= high]
    return {"label": label, "log": 2, "ticks": ticks, "min": low, "max": high, "unit": unit}


def _linear_ticks(high: float) -> list[float]:
    """Whole seconds up to `high`, every 1, 2 or 5 so that about ten show."""
    step = next(m for m in (1, 2, 5, 10, 20, 30, 60, 120, 300, 600) if high / m <= 10)
    return [float(t) for t in range(0, int(high) + 1, step)]


def _nice_top(value: float) -> float:
    """The next round number (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 x 10^k) at or
    above `value`."""
    if value <= 0:
        return 1.0
    scale = 10.0 ** math.floor(math.log10(value))
    return next(m * scale for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * scale >= value)


def _seconds(s: float) -> str:
    return f"{s:.2f} s" if s < 10 else f"{s:.0f} s"
