"""What a run leaves behind: the JSON schema, Locust's CSV files, the
terminal's tables, thresholds and exit statuses, merges, twincorn.load.run()."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support import RunningServer
from twincorn import load
from twincorn.load import LoadPlan, User, task
from twincorn.load.histogram import Histogram
from twincorn.load.output_csv import write_csv
from twincorn.load.results import Results, merge_results
from twincorn.load.stats import Tally
from twincorn.load.terminal import LiveStatus, final_report, fmt_ms
from twincorn.load.thresholds import Threshold, ThresholdError, exit_status

Serve = Callable[..., RunningServer]
SUMMARY_KEYS = {"min", "p50", "p90", "p95", "p99", "p999", "max", "mean"}
ROW_KEYS = {"t", "rps", "failures_per_s", "p50_ms", "p99_ms", "users", "in_flight"}


async def some_fail(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    status = 500 if scope["path"] == "/fail" else 200
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", b"4")]})
    await send({"type": "http.response.body", "body": b"body"})


class Mixed(User):
    @task(3)
    async def ok(self) -> None:
        await self.client.get("/ok")

    @task
    async def fail(self) -> None:
        await self.client.get("/fail?x=1", name="/fail")


@pytest.fixture
def mixed_results(serve: Serve) -> Results:
    server = serve(some_fail)
    return load.run(host=server.url, user_classes=[Mixed], users=3, stop_after=400,
                    run_time=20)


def test_json_schema(mixed_results: Results) -> None:
    data = json.loads(json.dumps(mixed_results.to_dict()))
    assert isinstance(data["requests"], int) and data["requests"] == 400
    assert 0 < data["failures"] < 400
    assert isinstance(data["duration_s"], float) and data["duration_s"] > 0
    assert data["rps"] == pytest.approx(400 / data["duration_s"], rel=0.01)
    assert set(data["latency_ms"]) == SUMMARY_KEYS
    assert "latency_uncorrected_ms" not in data  # closed model
    assert set(data["by_name"]) == {"/ok", "/fail"}
    for entry in data["by_name"].values():
        assert {"requests", "failures", "rps", "latency_ms"} <= set(entry)
        assert set(entry["latency_ms"]) == SUMMARY_KEYS
    assert data["by_name"]["/fail"]["failures"] == data["by_name"]["/fail"]["requests"]
    assert data["by_name"]["/ok"]["failures"] == 0
    for row in data["timeline"]:
        assert ROW_KEYS <= set(row)
    (error,) = data["errors"]
    assert {"name", "message", "count"} <= set(error)
    assert error == {**error, "name": "/fail", "message": "HTTP 500 Internal Server Error",
                     "count": data["failures"]}
    # The histogram travels with the figures, so that runs can be merged.
    assert Histogram.from_dict(data["histogram"]).count == 400


def test_results_read_back_and_merge(mixed_results: Results) -> None:
    data = mixed_results.to_dict()
    merged = merge_results([data, data])
    assert merged.requests == 800 and merged.failures == 2 * data["failures"]
    doubled = Histogram.from_dict(data["histogram"])
    doubled.merge(Histogram.from_dict(data["histogram"]))
    assert merged.total.hist == doubled
    assert merged.to_dict()["latency_ms"] == data["latency_ms"]  # same shape, twice over
    assert {e["count"] for e in merged.to_dict()["errors"]} == {2 * data["failures"]}


LOCUST_STATS = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
    "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
    "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
)
LOCUST_HISTORY = (
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,"
    "99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,"
    "Total Average Response Time,Total Min Response Time,Total Max Response Time,"
    "Total Average Content Size"
)


def test_csv_files_have_locusts_columns(mixed_results: Results, tmp_path: Path) -> None:
    paths = write_csv(mixed_results.to_dict(), str(tmp_path / "run"))
    names = [p.name for p in paths]
    assert names == ["run_stats.csv", "run_stats_history.csv", "run_failures.csv",
                     "run_exceptions.csv"]
    stats = (tmp_path / "run_stats.csv").read_text().splitlines()
    assert stats[0] == LOCUST_STATS
    rows = list(csv.DictReader(io.StringIO("\n".join(stats))))
    assert [r["Name"] for r in rows] == ["/fail", "/ok", "Aggregated"]
    assert rows[-1]["Type"] == "" and rows[-1]["Request Count"] == "400"
    assert float(rows[-1]["99%"]) >= float(rows[-1]["50%"]) > 0
    history = (tmp_path / "run_stats_history.csv").read_text().splitlines()
    assert history[0] == LOCUST_HISTORY and len(history) >= 2
    failures = list(csv.DictReader(io.StringIO((tmp_path / "run_failures.csv").read_text())))
    assert failures[0]["Method"] == "GET" and failures[0]["Name"] == "/fail"
    assert failures[0]["Error"] == "HTTP 500 Internal Server Error"
    assert (tmp_path / "run_exceptions.csv").read_text().startswith(
        "Count,Message,Traceback,Nodes"
    )


def test_final_report(mixed_results: Results) -> None:
    text = final_report(mixed_results)
    assert "Aggregated" in text and "Response time percentiles" in text
    assert "99.99%" in text and "HTTP 500 Internal Server Error" in text
    assert "Uncorrected" not in text
    assert [fmt_ms(v) for v in (0.0123, 3.2109, 32.109, 321.09)] == [
        "0.012", "3.21", "32.1", "321"
    ]


def test_live_status_rewrites_one_line_on_a_terminal() -> None:
    row = {"t": 3.0, "users": 5, "rps": 1234.5, "p50_ms": 1.5, "p99_ms": 9.25,
           "in_flight": 4, "total_requests": 5000, "total_failures": 50}
    out = io.StringIO()
    status = LiveStatus(out, run_time=10, tty=True)
    status(row)
    status(row)
    status.close()
    written = out.getvalue()
    assert written.count("\r\x1b[K") == 3 and "\n" not in written
    assert "3s/10s" in written and "1,234 req/s" in written and "failures 50 (1.00%)" in written
    plain = io.StringIO()
    status = LiveStatus(plain, tty=False)
    status(row)
    status(row)  # within 5 s of the last: not written
    assert plain.getvalue().count("\n") == 1


def results_with(latencies_us: list[int], failures: int = 0, seconds: float = 1.0) -> Results:
    total = Tally("", "Aggregated")
    for us in latencies_us:
        total.hist.record(us)
    total.failures = failures
    return Results("closed", seconds, total, [])


@pytest.mark.parametrize(
    ("expr", "fails"),
    [
        ("p99>500ms", True),
        ("p99 > 2s", False),
        ("p50<=101", True),
        ("max>=1000000us", True),
        ("mean>0.5s", False),
        ("error_rate>1%", True),
        ("error_rate>0.5", False),
        ("rps<1000", True),
        ("rps<5", False),
        ("requests<100", True),
        ("failures==2", True),
        ("p99.9>999ms", True),
    ],
)
def test_thresholds(expr: str, fails: bool) -> None:
    results = results_with([100_000] * 8 + [1_000_000] * 2, failures=2)
    violation = Threshold.parse(expr).violated(results)
    assert (violation is not None) == fails, violation
    if violation:
        assert expr.replace(" ", "") in violation.replace(" ", "")


@pytest.mark.parametrize(
    "bad", ["p99", "p99>>5", "latency>5ms", "error_rate>5ms", "rps<10%", "p200>1ms", "p99>1%"]
)
def test_bad_thresholds(bad: str) -> None:
    with pytest.raises(ThresholdError, match="--fail-on"):
        Threshold.parse(bad)


def test_exit_status() -> None:
    clean = results_with([1000] * 10)
    failed = results_with([1000] * 10, failures=1)
    assert exit_status(clean, []) == (0, [])
    code, reasons = exit_status(failed, [])
    assert code == 1 and reasons == ["1 of 10 requests failed"]
    # Thresholds decide instead: a failure under 20% passes this one.
    assert exit_status(failed, [Threshold.parse("error_rate>20%")]) == (0, [])
    code, reasons = exit_status(clean, [Threshold.parse("p50>0.5ms"), Threshold.parse("rps<5")])
    assert code == 1 and len(reasons) == 1 and "p50" in reasons[0]


def test_run_from_python_writes_files(serve: Serve, tmp_path: Path) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"x"})

    server = serve(app)
    results = load.run(server.url + "/", users="2", stop_after=50, run_time="10s",
                       json=str(tmp_path / "r.json"), csv=str(tmp_path / "r"))
    assert results.requests == 50
    assert json.loads((tmp_path / "r.json").read_text())["requests"] == 50
    assert (tmp_path / "r_stats.csv").exists()
    with pytest.raises(load.PlanError, match="unknown option"):
        load.run(server.url, userz=3)
    with pytest.raises(load.PlanError):
        load.run()


def test_plan_validation_and_split() -> None:
    from twincorn.load.plan import PlanError, parse_duration

    assert parse_duration("1h10m") == 4200 and parse_duration("250ms") == 0.25
    assert parse_duration("1.5") == 1.5 and parse_duration("2m30s") == 150
    for bad in ("", "5x", "m5", "1h 1"):
        with pytest.raises(PlanError):
            parse_duration(bad)
    with pytest.raises(PlanError, match="URL"):
        LoadPlan(url="ftp://x").validate()
    with pytest.raises(PlanError, match="header"):
        LoadPlan(url="http://x/", header=("nocolon",)).validate()
    parts = LoadPlan(users=5, rate=10, stop_after=7, max_in_flight=3).split(2)
    assert [p.users for p in parts] == [3, 2]
    assert [p.stop_after for p in parts] == [4, 3]
    assert [p.rate for p in parts] == [5, 5]
    assert [p.max_in_flight for p in parts] == [2, 1]
