"""`--fail-on EXPR`: conditions that fail a run (k6's thresholds, inverted).

Each expression says when the run fails: `p99>500ms` fails it if the 99th
percentile is above 500 ms; `rps<1000` if fewer than 1000 requests per
second were made. Given one or more, they decide the exit status (1 if
any holds, each named on stderr); otherwise any failed request, or
exception of a task, does. Either way a run that sent no request at all
fails.

    METRIC OP VALUE[UNIT]     OP: < <= > >= == !=

    p50 p90 p99 p99.9 ...     latency percentile (ms; units us, ms, s)
    p99_uncorrected ...       the same, from the actual send (open model)
    mean (avg) min max        latency (ms; units us, ms, s)
    error_rate                failed / all requests: 1% or 0.01
    rps                       requests per second
    requests failures dropped counts
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from twincorn.load.context import NotAwaited
from twincorn.load.histogram import Histogram
from twincorn.load.results import Results

_EXPR = re.compile(
    r"^\s*([a-z][a-z0-9_.]*)\s*(<=|>=|==|!=|<|>)\s*(\d+(?:\.\d*)?|\.\d+)\s*(us|ms|s|%)?\s*$"
)
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_TIME_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, None: 1.0}
_COUNTS = ("rps", "requests", "failures", "dropped")
_NOT_AWAITED = f"{NotAwaited.__name__}: "  # how the collector words its message


class ThresholdError(ValueError):
    """An expression that cannot be read."""


@dataclass(frozen=True)
class Threshold:
    text: str
    metric: str
    op: str
    value: float  # ms for latencies, a fraction for error_rate

    @classmethod
    def parse(cls, text: str) -> Threshold:
        match = _EXPR.match(text.lower())
        if match is None:
            raise ThresholdError(
                f"--fail-on {text!r}: expected METRIC OP VALUE, e.g. 'p99>500ms', "
                "'error_rate>1%', 'rps<1000'"
            )
        metric, op, number, unit = match.groups()
        value = float(number)
        if metric == "error_rate":
            if unit not in (None, "%"):
                raise ThresholdError(f"--fail-on {text!r}: error_rate takes a % or a fraction")
            value = value / 100 if unit == "%" else value
        elif metric in _COUNTS:
            if unit is not None:
                raise ThresholdError(f"--fail-on {text!r}: {metric} takes a plain number")
        elif _latency(metric) is not None:
            if unit == "%":
                raise ThresholdError(f"--fail-on {text!r}: a latency takes us, ms or s")
            value *= _TIME_UNITS[unit]
        else:
            raise ThresholdError(
                f"--fail-on {text!r}: unknown metric {metric!r} (p50, p99, p99.9, mean, "
                "max, error_rate, rps, requests, failures...)"
            )
        return cls(text.strip(), metric, op, value)

    def measure(self, results: Results) -> float:
        if self.metric == "error_rate":
            return results.error_rate
        if self.metric == "rps":
            return results.rps
        if self.metric in ("requests", "failures", "dropped"):
            return float(getattr(results, self.metric))
        kind = _latency(self.metric)
        assert kind is not None
        name, uncorrected = kind
        hist = results.total.uncorrected if uncorrected else results.total.hist
        if hist is None:  # closed model: nothing was corrected
            hist = results.total.hist
        return _latency_value(hist, name) / 1000

    def violated(self, results: Results) -> str | None:
        """A sentence naming the violation, or None if the run passes it."""
        measured = self.measure(results)
        if not _OPS[self.op](measured, self.value):
            return None
        if self.metric == "error_rate":
            shown, limit = f"{100 * measured:.3g}%", f"{100 * self.value:g}%"
        elif self.metric in _COUNTS:
            shown, limit = f"{measured:,.6g}", f"{self.value:g}"
        else:
            shown, limit = f"{measured:.3f} ms", f"{self.value:g} ms"
        return f"failed --fail-on {self.text!r}: {self.metric} = {shown} {self.op} {limit}"


def _latency(metric: str) -> tuple[str, bool] | None:
    uncorrected = metric.endswith("_uncorrected")
    name = metric.removesuffix("_uncorrected")
    if name in ("mean", "avg", "min", "max"):
        return name, uncorrected
    if re.fullmatch(r"p\d+(\.\d+)?", name) and float(name[1:]) <= 100:
        return name, uncorrected
    return None


def _latency_value(hist: Histogram, name: str) -> float:
    """In microseconds."""
    if name in ("mean", "avg"):
        return hist.mean
    if name == "min":
        return hist.min if hist.count else 0
    if name == "max":
        return hist.max
    return hist.percentile(float(name[1:]))


def check(thresholds: list[Threshold], results: Results) -> list[str]:
    """The violations, one sentence each (empty: the run passes)."""
    return [v for t in thresholds if (v := t.violated(results)) is not None]


def exit_status(results: Results, thresholds: list[Threshold]) -> tuple[int, list[str]]:
    """0 or 1, and why: a run that sent no request fails; then the
    thresholds if given, else 'any request failed or a task raised'."""
    reasons = [results.no_request] if results.no_request else []
    if thresholds:
        reasons += check(thresholds, results)
        return (1 if reasons else 0), reasons
    if results.failures:
        noun = "request" if results.requests == 1 else "requests"
        reasons.append(f"{results.failures:,} of {results.requests:,} {noun} failed")
    raised = 0
    for x in results.exceptions:
        if x.message.startswith(_NOT_AWAITED):
            # Said in full: the message names the request and the fix.
            reasons.append(f"{x.where}: {x.message.removeprefix(_NOT_AWAITED)}"
                           + (f" ({x.count:,} times)" if x.count > 1 else ""))
        else:
            raised += x.count
    if raised:
        noun = "exception" if raised == 1 else "exceptions"
        reasons.append(f"tasks raised {raised:,} {noun}")
    return (1 if reasons else 0), reasons
