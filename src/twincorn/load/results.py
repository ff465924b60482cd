"""The results of a run, and their JSON form.

`Results.to_dict()` is the schema that `--json` writes, the HTML report and
the web UI read, and `twincorn.load.run()` returns behind the object:

    requests, failures, duration_s, rps, failures_per_s, error_rate
    latency_ms              {min, p50, p90, p95, p99, p999, max, mean}
    latency_uncorrected_ms  the same, from the actual send (open model only)
    percentiles_ms          {"50%": ..., "66%": ..., ..., "100%": ...}
    by_name                 {name: the same keys, per request name}
    timeline                one row per second: t, rps, failures_per_s, p50_ms,
                            p99_ms, users, in_flight (and more, see stats.py)
    errors                  [{name, method, message, kind, count, first_seen, last_seen}]
    exceptions              [{where, message, count, traceback}]
    tasks, no_request       task runs begun; why a run that sent no request
                            failed ("" when it sent some)
    histogram               the aggregated histogram, sparse (see histogram.py):
                            results of several machines merge exactly from it

Latencies are in milliseconds with microsecond precision; nothing is rounded
to two digits.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from twincorn.load.histogram import Histogram
from twincorn.load.stats import PERCENTILES, ErrorCount, ExceptionCount, Tally


def _pct_label(q: float) -> str:
    return f"{q:g}%"


def _iso(unix: float) -> str:
    return datetime.datetime.fromtimestamp(unix, datetime.UTC).isoformat(timespec="milliseconds")


@dataclass
class Results:
    """Everything one run measured (or has measured so far)."""

    model: str  # "closed" or "open"
    duration_s: float
    total: Tally
    tallies: list[Tally]
    timeline: list[dict[str, Any]] = field(default_factory=list)
    errors: list[ErrorCount] = field(default_factory=list)
    exceptions: list[ExceptionCount] = field(default_factory=list)
    dropped: int = 0
    tasks: int = 0  # task runs begun (a scenario's users; 0 for a bare URL)
    unfinished: int = 0  # requests in flight when the run stopped (not counted)
    unfinished_oldest: float = 0.0  # seconds the oldest of them had waited
    started_at: float = 0.0  # unix time
    stopped_by: str = ""  # run-time, stop-after, interrupted, stop(), or "" while running
    plan: dict[str, Any] = field(default_factory=dict)
    processes: list[dict[str, Any]] = field(default_factory=list)
    state: str = "stopped"

    @property
    def requests(self) -> int:
        return self.total.requests

    @property
    def failures(self) -> int:
        return self.total.failures

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def error_rate(self) -> float:
        """Failed requests as a fraction of all requests (0 to 1)."""
        return self.failures / self.requests if self.requests else 0.0

    @property
    def no_request(self) -> str:
        """Why a run that ended sent no request at all fails ("" if it sent
        some, failed ones included, or is still going)."""
        if self.requests or self.state != "stopped":
            return ""
        if self.tasks:
            return (
                f"the tasks ran {self.tasks:,} times but sent no request: a task sends "
                "one with `await self.client.get(...)`"
            )
        return "no request was sent" + (f" (stopped by {self.stopped_by})"
                                        if self.stopped_by else "")

    def by_name(self) -> dict[str, Tally]:
        """The tallies by their JSON key: the name, or "METHOD name" when
        one name was used with several methods."""
        methods: dict[str, int] = {}
        for tally in self.tallies:
            methods[tally.name] = methods.get(tally.name, 0) + 1
        return {
            (t.name if methods[t.name] == 1 else f"{t.method} {t.name}"): t
            for t in sorted(self.tallies, key=lambda t: (t.name, t.method))
        }

    def to_dict(self) -> dict[str, Any]:
        out = self._tally_dict(self.total)
        out.pop("method")
        out.pop("name")
        out.update(
            model=self.model,
            state=self.state,
            started_at=_iso(self.started_at) if self.started_at else None,
            stopped_by=self.stopped_by,
            dropped=self.dropped,
            tasks=self.tasks,
            no_request=self.no_request,
            unfinished={"requests": self.unfinished,
                        "oldest_s": round(self.unfinished_oldest, 3)},
            by_name={key: self._tally_dict(t) for key, t in self.by_name().items()},
            timeline=self.timeline,
            errors=[
                {
                    "name": e.name,
                    "method": e.method,
                    "message": e.message,
                    "kind": e.kind,
                    "count": e.count,
                    "first_seen": _iso(e.first_seen),
                    "last_seen": _iso(e.last_seen),
                }
                for e in sorted(self.errors, key=lambda e: -e.count)
            ],
            exceptions=[
                {
                    "where": x.where,
                    "message": x.message,
                    "count": x.count,
                    "traceback": x.traceback,
                    "first_seen": _iso(x.first_seen),
                    "last_seen": _iso(x.last_seen),
                }
                for x in sorted(self.exceptions, key=lambda x: -x.count)
            ],
            plan=self.plan,
            processes=self.processes,
        )
        return out

    def _tally_dict(self, tally: Tally) -> dict[str, Any]:
        duration = self.duration_s or 1.0
        hist = tally.hist
        d: dict[str, Any] = {
            "method": tally.method,
            "name": tally.name,
            "requests": tally.requests,
            "failures": tally.failures,
            "duration_s": round(self.duration_s, 6),
            "rps": round(tally.requests / duration, 3),
            "failures_per_s": round(tally.failures / duration, 3),
            "error_rate": round(tally.failures / tally.requests, 6) if tally.requests else 0.0,
            "avg_size": round(tally.bytes / hist.count, 3) if hist.count else 0.0,
            "bytes": tally.bytes,
            "latency_ms": hist.summary_ms(),
            "percentiles_ms": {
                _pct_label(q): v / 1000
                for q, v in zip(PERCENTILES, hist.percentiles(list(PERCENTILES)), strict=True)
            },
        }
        if tally.uncorrected is not None:
            d["latency_uncorrected_ms"] = tally.uncorrected.summary_ms()
        d["histogram"] = hist.to_dict()
        if tally.uncorrected is not None:
            d["histogram_uncorrected"] = tally.uncorrected.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Results:
        """Results read back from their JSON form (histograms and counts;
        the timeline rows as they are)."""

        def tally(d: dict[str, Any], method: str, name: str) -> Tally:
            t = Tally(method, name, Histogram.from_dict(d.get("histogram", {})))
            if "histogram_uncorrected" in d:
                t.uncorrected = Histogram.from_dict(d["histogram_uncorrected"])
            t.no_response = int(d["requests"]) - t.hist.count
            t.failures = int(d["failures"])
            t.bytes = int(d.get("bytes", 0))
            return t

        tallies = [tally(v, v.get("method", ""), v.get("name", k))
                   for k, v in data.get("by_name", {}).items()]
        errors = [
            ErrorCount(e.get("method", ""), e["name"], e["message"], e.get("kind", ""),
                       e["count"], _unix(e.get("first_seen")), _unix(e.get("last_seen")))
            for e in data.get("errors", [])
        ]
        return cls(
            model=data.get("model", "closed"),
            duration_s=float(data["duration_s"]),
            total=tally(data, "", "Aggregated"),
            tallies=tallies,
            timeline=list(data.get("timeline", [])),
            errors=errors,
            dropped=int(data.get("dropped", 0)),
            tasks=int(data.get("tasks", 0)),
            started_at=_unix(data.get("started_at")),
            stopped_by=data.get("stopped_by", ""),
            plan=dict(data.get("plan", {})),
            processes=list(data.get("processes", [])),
        )


def _unix(iso: str | None) -> float:
    if not iso:
        return 0.0
    return datetime.datetime.fromisoformat(iso).timestamp()


def merge_results(runs: list[dict[str, Any]]) -> Results:
    """One result from the JSON of several runs that loaded the same server
    at the same time (agents on several machines, see docs/load.md).

    Counts and histograms merge exactly; the duration is the longest one.
    Timeline rows are merged by their second: counts and rates are summed,
    but per-second percentiles cannot be (the JSON keeps no per-second
    histogram), so merged rows keep p50_ms/p99_ms as the largest of the
    runs', an upper bound, and say so with "merged": true.
    """
    if not runs:
        raise ValueError("no results to merge")
    parts = [Results.from_dict(r) for r in runs]
    first = parts[0]
    merged = Results(
        model=first.model,
        duration_s=max(p.duration_s for p in parts),
        total=first.total.empty_copy(),
        tallies=[],
        started_at=min(p.started_at for p in parts if p.started_at) if first.started_at else 0,
        stopped_by=first.stopped_by,
        plan=first.plan,
    )
    by_key: dict[tuple[str, str], Tally] = {}
    errors: dict[tuple[str, str, str], ErrorCount] = {}
    rows: dict[int, dict[str, Any]] = {}
    for part in parts:
        merged.total.merge(part.total)
        merged.dropped += part.dropped
        merged.tasks += part.tasks
        merged.processes.extend(part.processes)
        for t in part.tallies:
            key = (t.method, t.name)
            if key not in by_key:
                by_key[key] = t.empty_copy()
            by_key[key].merge(t)
        for e in part.errors:
            ekey = (e.method, e.name, e.message)
            if ekey in errors:
                errors[ekey].merge(e)
            else:
                errors[ekey] = e
        for row in part.timeline:
            second = round(float(row["t"]) + 0.4999)
            if second not in rows:
                rows[second] = {**row, "merged": True}
                continue
            into = rows[second]
            for k in ("rps", "failures_per_s", "users", "in_flight", "requests", "failures"):
                into[k] = into.get(k, 0) + row.get(k, 0)
            for k in ("p50_ms", "p99_ms"):
                into[k] = max(into.get(k, 0), row.get(k, 0))
    merged.tallies = list(by_key.values())
    merged.errors = list(errors.values())
    merged.timeline = [rows[k] for k in sorted(rows)]
    return merged
