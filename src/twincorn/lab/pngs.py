"""The report's charts as PNG files, with matplotlib (the `lab` extra):
throughput.png and latency.png (against users), fixed-rate.png (latency
second by second) and websockets.png (a broadcast's latency against the
sockets held), drawn from the same specs as index.html (charts.py).
Without matplotlib, nothing is written.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from twincorn.lab.charts import chart_specs

#: charts.MARKERS in matplotlib's names.
_MARKERS = {"circle": "o", "square": "s", "triangle": "^", "diamond": "D", "down": "v",
            "cross": "x", "plus": "+"}
_DPI = 120


def write_pngs(results: dict[str, Any], out: Path) -> list[Path]:
    """The PNG files, if matplotlib is installed; the paths written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    specs = chart_specs(results)
    written = []
    for spec in specs["ramps"] + specs["websockets"]:
        figure, axes = plt.subplots(figsize=(8.4, 5.0), dpi=_DPI)
        _draw(axes, spec)
        _legend(axes, spec)
        _caption(figure, spec["notes"])
        written.append(_save(plt, figure, out / f"{spec['id']}.png"))
    panels = specs["fixed_rate"]
    if panels:
        figure, grid = plt.subplots(1, len(panels), figsize=(7.2 * len(panels), 4.6),
                                    dpi=_DPI, squeeze=False, gridspec_kw={"wspace": 0.6})
        for axes, spec in zip(grid[0], panels, strict=True):
            _draw(axes, spec)
            _legend(axes, spec)
        _caption(figure, [n for spec in panels for n in spec["notes"]])
        written.append(_save(plt, figure, out / "fixed-rate.png"))
    return written


def _save(plt: Any, figure: Any, path: Path) -> Path:
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)
    return path


def _draw(axes: Any, spec: dict[str, Any]) -> None:
    for s in spec["series"]:
        if not s["points"]:
            continue
        xs, ys = zip(*s["points"], strict=True)
        axes.plot(xs, ys, color=s["colour"], linewidth=s["width"],
                  linestyle=(0, tuple(v / s["width"] for v in s["dash"])) if s["dash"] else "-",
                  marker=_MARKERS.get(s["marker"] or "", None),
                  markersize=7 if len(xs) <= 24 else 4.5,
                  markeredgecolor="white" if s["marker"] not in ("cross", "plus") else None,
                  markeredgewidth=1.0 if s["marker"] not in ("cross", "plus") else 2.0,
                  zorder=3 if s["role"] == "measured" else 2)
    for axis, setter, ticks, limits in (
        (spec["x"], axes.set_xscale, axes.set_xticks, axes.set_xlim),
        (spec["y"], axes.set_yscale, axes.set_yticks, axes.set_ylim),
    ):
        if axis["log"]:
            setter("log", base=axis["log"])
        if axis["ticks"]:
            ticks(axis["ticks"], [f"{t:g}" for t in axis["ticks"]])
            ticks([], minor=True)
        limits(axis["min"], axis["max"])
    axes.set_xlabel(spec["x"]["label"])
    axes.set_ylabel(spec["y"]["label"])
    axes.set_title(spec["title"])
    axes.grid(True, alpha=0.3)
    for note in spec["annotations"]:  # below and right of its point
        axes.annotate(note["text"], (note["x"], note["y"]), xytext=(6, -9),
                      textcoords="offset points", ha="left", va="top", fontsize=8,
                      color=note["colour"])
    _end_labels(axes, spec)


def _end_labels(axes: Any, spec: dict[str, Any]) -> None:
    """Each measured line's name right of its last point, pushed apart
    (in pixels) where two would overlap."""
    axes.figure.canvas.draw()  # the transforms are final only once drawn
    ends = []
    for s in spec["series"]:
        if s["end_label"] and s["points"]:
            x, y = s["points"][-1]
            ends.append([*axes.transData.transform((x, y)), x, y, s])
    ends.sort(key=lambda e: e[1])  # display y grows upwards
    placed: list[float] = []
    for end in ends:
        target = end[1]
        if placed and target - placed[-1] < 14:
            target = placed[-1] + 14
        placed.append(target)
        axes.annotate(end[4]["end_label"], (end[2], end[3]),
                      xytext=(8, (target - end[1]) * 72 / _DPI), textcoords="offset points",
                      va="center", fontsize=9, fontweight="bold", color=end[4]["colour"],
                      annotation_clip=False)


def _legend(axes: Any, spec: dict[str, Any]) -> None:
    """measured / the model, then one entry per configuration with both of
    its line styles side by side."""
    from matplotlib.legend_handler import HandlerTuple
    from matplotlib.lines import Line2D

    handles: list[Any] = [Line2D([], [], color="#333333", marker="o", linewidth=2.5),
                          Line2D([], [], color="#333333", linestyle=(0, (4, 2.5)),
                                 linewidth=1.5)]
    labels = ["measured", "the model (dashed)"]
    lines = {(s["config"], s["role"]): s for s in spec["series"]}
    for index in sorted({s["config"] for s in spec["series"]}):
        measured, model = lines[index, "measured"], lines[index, "model"]
        handles.append((
            Line2D([], [], color=measured["colour"], linewidth=measured["width"],
                   marker=_MARKERS.get(measured["marker"], None), markeredgecolor="white"),
            Line2D([], [], color=model["colour"], linewidth=model["width"],
                   linestyle=(0, tuple(v / model["width"] for v in model["dash"]))),
        ))
        labels.append(measured["label"])
    axes.legend(handles, labels, handler_map={tuple: HandlerTuple(ndivide=None)},
                fontsize=8, loc="upper left", framealpha=0.9)


def _caption(figure: Any, notes: list[str]) -> None:
    if notes:
        text = "\n".join(textwrap.fill(n, 130) for n in notes)
        figure.text(0.01, -0.01, text, ha="left", va="top", fontsize=8)
