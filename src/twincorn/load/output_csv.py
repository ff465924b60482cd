"""`--csv PREFIX`: Locust's four CSV files, with Locust's column names.

    PREFIX_stats.csv          one row per request name, then "Aggregated"
    PREFIX_stats_history.csv  one row per second (the aggregated figures)
    PREFIX_failures.csv       Method, Name, Error, Occurrences
    PREFIX_exceptions.csv     Count, Message, Traceback, Nodes

Sheets and scripts made for Locust's files read these unchanged. Times are
milliseconds, as in Locust, but with microsecond decimals instead of
Locust's rounding; the percentile columns of the history are those of that
one second, its "Total ..." columns those of the run so far.

Each file is made from the results' JSON form (results.py), so the web UI
makes the same files from a snapshot of a run in progress.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twincorn.load.stats import PERCENTILES, percentile_key

PERCENTILE_COLUMNS = [f"{q:g}%" for q in PERCENTILES]
STATS_COLUMNS = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
    "Requests/s",
    "Failures/s",
    *PERCENTILE_COLUMNS,
]
HISTORY_COLUMNS = [
    "Timestamp",
    "User Count",
    "Type",
    "Name",
    "Requests/s",
    "Failures/s",
    *PERCENTILE_COLUMNS,
    "Total Request Count",
    "Total Failure Count",
    "Total Median Response Time",
    "Total Average Response Time",
    "Total Min Response Time",
    "Total Max Response Time",
    "Total Average Content Size",
]
FAILURES_COLUMNS = ["Method", "Name", "Error", "Occurrences"]
EXCEPTIONS_COLUMNS = ["Count", "Message", "Traceback", "Nodes"]


def _stats_row(entry: dict[str, Any], method: str, name: str) -> list[Any]:
    latency = entry["latency_ms"]
    if entry["requests"] and entry.get("histogram", {}).get("count", 1):
        percentiles: list[Any] = [entry["percentiles_ms"][label] for label in PERCENTILE_COLUMNS]
    else:
        percentiles = ["N/A"] * len(PERCENTILE_COLUMNS)
    return [
        method,
        name,
        entry["requests"],
        entry["failures"],
        latency["p50"],
        latency["mean"],
        latency["min"],
        latency["max"],
        entry["avg_size"],
        entry["rps"],
        entry["failures_per_s"],
        *percentiles,
    ]


def _history_row(row: dict[str, Any]) -> list[Any]:
    return [
        int(row["timestamp"]),
        row["users"],
        "",
        "Aggregated",
        row["rps"],
        row["failures_per_s"],
        *(row[percentile_key(q)] if row["requests"] else "N/A" for q in PERCENTILES),
        row["total_requests"],
        row["total_failures"],
        row["total_p50_ms"],
        row["total_mean_ms"],
        row["total_min_ms"],
        row["total_max_ms"],
        row["total_avg_size"],
    ]


def _text(header: list[str], rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    out = csv.writer(buffer)
    out.writerow(header)
    out.writerows(rows)
    return buffer.getvalue()


def stats_csv(results: dict[str, Any]) -> str:
    rows = [_stats_row(e, e["method"], e["name"]) for e in results["by_name"].values()]
    rows.append(_stats_row(results, "", "Aggregated"))
    return _text(STATS_COLUMNS, rows)


def history_csv(results: dict[str, Any]) -> str:
    return _text(HISTORY_COLUMNS, [_history_row(row) for row in results["timeline"]])


def failures_csv(results: dict[str, Any]) -> str:
    rows = [[e["method"], e["name"], e["message"], e["count"]] for e in results["errors"]]
    return _text(FAILURES_COLUMNS, rows)


def exceptions_csv(results: dict[str, Any]) -> str:
    nodes = ", ".join(str(p.get("pid", "")) for p in results.get("processes", [])) or "local"
    rows = [
        [x["count"], f"{x['where']}: {x['message']}", x["traceback"], nodes]
        for x in results.get("exceptions", [])
    ]
    return _text(EXCEPTIONS_COLUMNS, rows)


FILES: dict[str, Callable[[dict[str, Any]], str]] = {
    "stats": stats_csv,
    "stats_history": history_csv,
    "failures": failures_csv,
    "exceptions": exceptions_csv,
}


def write_csv(results: dict[str, Any], prefix: str) -> list[Path]:
    """Write the four files (PREFIX_stats.csv...); return their paths."""
    paths = []
    for part, make in FILES.items():
        path = Path(f"{prefix}_{part}.csv")
        path.write_text(make(results), newline="")
        paths.append(path)
    return paths
