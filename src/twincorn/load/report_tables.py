"""The tables of a load run, as rows of formatted cells.

One place turns a results dict (the JSON schema of docs/load.md) into what
a person reads: the statistics per request name with Locust's columns, the
failures, the latency percentiles (corrected and uncorrected in the open
model) and the headline figures. The HTML report renders these tables in
Python; the web UI receives the same tables in its events and renders them
in the browser, so both show the same numbers formatted the same way.
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

ResultsData = Mapping[str, Any]  # the results' JSON form (results.Results.to_dict())

# The latency keys of the results schema, in the order they are shown.
LATENCY_KEYS = ("min", "p50", "p90", "p95", "p99", "p999", "max", "mean")
LATENCY_TITLES = {
    "min": "Min", "p50": "p50 (median)", "p90": "p90", "p95": "p95", "p99": "p99",
    "p999": "p99.9", "max": "Max", "mean": "Average",
}

TOTAL_NAME = "Aggregated"  # Locust's name for the row of all requests


@dataclass(frozen=True)
class Column:
    title: str
    key: str  # a key of the flat row made by stat_row()
    kind: str  # text, message, count, ms, rate, bytes, percent, clock (unix time)


# Locust's statistics columns, plus p90 and p99.9.
STATS_COLUMNS = (
    Column("Type", "method", "text"),
    Column("Name", "name", "text"),
    Column("# Requests", "requests", "count"),
    Column("# Fails", "failures", "count"),
    Column("Median (ms)", "p50", "ms"),
    Column("90%ile (ms)", "p90", "ms"),
    Column("95%ile (ms)", "p95", "ms"),
    Column("99%ile (ms)", "p99", "ms"),
    Column("99.9%ile (ms)", "p999", "ms"),
    Column("Average (ms)", "mean", "ms"),
    Column("Min (ms)", "min", "ms"),
    Column("Max (ms)", "max", "ms"),
    Column("Average size (bytes)", "size", "bytes"),
    Column("RPS", "rps", "rate"),
    Column("Failures/s", "failures_per_s", "rate"),
)

FAILURE_COLUMNS = (
    Column("# Failures", "count", "count"),
    Column("Name", "name", "text"),
    Column("Message", "message", "message"),
    Column("First seen", "first_seen", "clock"),
    Column("Last seen", "last_seen", "clock"),
)

EXCEPTION_COLUMNS = (
    Column("# Exceptions", "count", "count"),
    Column("Where", "where", "text"),
    Column("Message", "message", "message"),
    Column("Traceback", "traceback", "message"),
)


class Cell(TypedDict):
    text: str
    bad: bool


class Row(TypedDict):
    cells: list[Cell]
    total: bool


class Table(TypedDict):
    columns: list[dict[str, str]]
    rows: list[Row]


class Figure(TypedDict):
    label: str
    value: str
    bad: bool


def number(value: Any) -> float | None:
    """A finite number, or None for what is missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def format_value(kind: str, value: Any) -> str:
    """One cell's text. Latencies keep three significant digits or more
    (twincorn's histogram is good to 1%; Locust rounds to two)."""
    if kind in ("text", "message"):
        return "" if value is None else str(value)
    if kind == "clock" and isinstance(value, str):
        return local_time(value)
    x = number(value)
    if x is None:
        return ""
    if kind == "count":
        return str(round(x))
    if kind == "clock":
        return time.strftime("%H:%M:%S", time.localtime(x))
    if kind == "bytes":
        return f"{x:.0f}"
    if kind == "percent":
        return f"{x:.1f}%" if x < 10 else f"{x:.0f}%"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if kind == "rate" or abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def local_time(iso: str, layout: str = "%H:%M:%S") -> str:
    """An ISO 8601 time of the results (started_at, first_seen...) in local time."""
    try:
        moment = datetime.datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return moment.astimezone().strftime(layout)


def latency_of(entry: Mapping[str, Any], key: str = "latency_ms") -> Mapping[str, Any]:
    """The latency dict of a run or of one name (flat keys are accepted too)."""
    latency = entry.get(key)
    return latency if isinstance(latency, Mapping) else entry


def stat_row(name: str, entry: Mapping[str, Any], duration: float | None) -> dict[str, Any]:
    """One name's statistics as a flat dict keyed like STATS_COLUMNS."""
    latency = latency_of(entry)
    method = entry.get("method", "")
    if isinstance(entry.get("name"), str):
        name = entry["name"]  # the key may be "METHOD name"; the entry says which
    elif not method and " " in name and name.split(" ", 1)[0].isupper():
        method, name = name.split(" ", 1)  # a key like "GET /items"
    failures = number(entry.get("failures")) or 0.0
    failures_per_s = number(entry.get("failures_per_s"))
    if failures_per_s is None and duration:
        failures_per_s = failures / duration
    size = entry.get("avg_size")
    row: dict[str, Any] = {
        "method": method,
        "name": name,
        "requests": entry.get("requests"),
        "failures": entry.get("failures"),
        "size": size,
        "rps": entry.get("rps"),
        "failures_per_s": failures_per_s,
    }
    row.update({key: latency.get(key) for key in LATENCY_KEYS})
    return row


def make_table(columns: tuple[Column, ...], rows: list[dict[str, Any]], *,
               total_last: bool = False) -> Table:
    out: list[Row] = []
    for i, row in enumerate(rows):
        cells: list[Cell] = []
        for column in columns:
            value = row.get(column.key)
            bad = column.key == "failures" and (number(value) or 0) > 0
            cells.append({"text": format_value(column.kind, value), "bad": bad})
        out.append({"cells": cells, "total": total_last and i == len(rows) - 1})
    return {
        "columns": [{"title": c.title, "kind": c.kind} for c in columns],
        "rows": out,
    }


def stats_table(results: ResultsData) -> Table:
    """Locust's statistics table: one row per request name, then Aggregated."""
    duration = number(results.get("duration_s"))
    by_name = results.get("by_name") or {}
    rows = [stat_row(str(name), entry, duration) for name, entry in sorted(by_name.items())]
    rows.append(stat_row(TOTAL_NAME, results, duration) | {"method": "", "name": TOTAL_NAME})
    return make_table(STATS_COLUMNS, rows, total_last=True)


def failures_table(results: ResultsData) -> Table:
    """The failures grouped by name and message, the most frequent first."""
    errors = [e for e in results.get("errors") or () if isinstance(e, Mapping)]
    errors.sort(key=lambda e: -(number(e.get("count")) or 0))
    columns: tuple[Column, ...] = FAILURE_COLUMNS
    if not any(e.get("first_seen") for e in errors):
        columns = columns[:3]  # the times are optional in the schema
    return make_table(columns, [dict(e) for e in errors])


def exceptions_table(results: ResultsData) -> Table:
    """Exceptions raised by the scenario's tasks (not requests that failed)."""
    found = [e for e in results.get("exceptions") or () if isinstance(e, Mapping)]
    found.sort(key=lambda e: -(number(e.get("count")) or 0))
    return make_table(EXCEPTION_COLUMNS, [dict(e) for e in found])


def latency_table(results: ResultsData) -> Table:
    """The run's latency percentiles; in the open model two rows, measured
    from when each request should have been sent (corrected) and from when
    it was sent."""
    columns = (
        Column("Latency (ms)", "kind", "text"),
        *(Column(LATENCY_TITLES[key], key, "ms") for key in LATENCY_KEYS),
    )
    rows: list[dict[str, Any]] = []
    uncorrected = results.get("latency_uncorrected_ms")
    first = "corrected (from the intended send time)" if uncorrected else "all requests"
    rows.append({"kind": first, **latency_of(results)})
    if isinstance(uncorrected, Mapping):
        rows.append({"kind": "uncorrected (from the actual send time)", **uncorrected})
    return make_table(columns, rows)


def has_uncorrected(results: ResultsData) -> bool:
    return isinstance(results.get("latency_uncorrected_ms"), Mapping)


COORDINATED_OMISSION = (
    "In the open model every request has a time at which it should be sent; when the "
    "server stalls, the requests due meanwhile wait, and timing them from when they were "
    "finally sent would leave that wait out (coordinated omission). The corrected figures "
    "count from the intended send time, the uncorrected ones from the actual send."
)


def figures(results: ResultsData) -> list[Figure]:
    """The headline numbers: requests, failures, requests/s, p50, p99 (and,
    for a run that ended without sending any request, why it failed)."""
    requests = number(results.get("requests")) or 0.0
    failures = number(results.get("failures")) or 0.0
    latency = latency_of(results)
    percent = 100.0 * failures / requests if requests else 0.0
    no_request = results.get("no_request")  # why a run that sent nothing failed
    shown = format_value("count", requests) + (f": {no_request}" if no_request else "")
    return [
        {"label": "Requests", "value": shown, "bad": bool(no_request)},
        {"label": "Failures", "value": f"{format_value('count', failures)} "
         f"({format_value('percent', percent)})", "bad": failures > 0},
        {"label": "Requests/s", "value": format_value("rate", results.get("rps")), "bad": False},
        {"label": "p50 (ms)", "value": format_value("ms", latency.get("p50")), "bad": False},
        {"label": "p99 (ms)", "value": format_value("ms", latency.get("p99")), "bad": False},
        {"label": "Duration (s)", "value": format_value("rate", results.get("duration_s")),
         "bad": False},
    ]
