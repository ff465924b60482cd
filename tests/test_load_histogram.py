"""The load tester's histogram: bounded relative error, exact merges."""

from __future__ import annotations

import math
import pickle
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from twincorn.load.histogram import (
    HIGHEST,
    Histogram,
    bucket_bounds,
    bucket_index,
    bucket_value,
)

values = st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=400)
quantiles = st.sampled_from([0, 1, 10, 25, 50, 66, 75, 90, 95, 99, 99.9, 99.99, 100])


def exact_percentile(data: list[int], q: float) -> int:
    """Nearest rank, as the histogram defines it."""
    ordered = sorted(data)
    if q <= 0:
        return ordered[0]
    rank = max(1, math.ceil(q * len(ordered) / 100 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def histogram_of(data: list[int]) -> Histogram:
    hist = Histogram()
    for value in data:
        hist.record(value)
    return hist


def test_buckets_are_contiguous_and_narrow() -> None:
    previous_high = -1
    for index in range(bucket_index(HIGHEST) + 1):
        low, high = bucket_bounds(index)
        assert low == previous_high + 1, index
        assert bucket_index(low) == index and bucket_index(high) == index
        # A bucket is at most 1/128 of its lowest value wide.
        assert high - low + 1 <= max(1, low / 128), index
        previous_high = high


def test_small_values_are_exact() -> None:
    for value in range(256):
        assert bucket_value(bucket_index(value)) == value


@settings(max_examples=300, deadline=None)
@given(values, quantiles)
def test_percentiles_within_one_percent(data: list[int], q: float) -> None:
    hist = histogram_of(data)
    exact = exact_percentile(data, q)
    got = hist.percentile(q)
    assert abs(got - exact) <= exact * 0.01, (q, exact, got)
    assert hist.count == len(data)
    assert hist.min == min(data) and hist.max == max(data)
    assert hist.total == sum(data)
    assert math.isclose(hist.mean, sum(data) / len(data))


@settings(max_examples=200, deadline=None)
@given(values, values)
def test_merge_equals_recording_everything(a: list[int], b: list[int]) -> None:
    merged = histogram_of(a)
    merged.merge(histogram_of(b))
    assert merged == histogram_of(a + b)
    assert merged.percentiles([50, 99]) == histogram_of(a + b).percentiles([50, 99])


@settings(max_examples=200, deadline=None)
@given(values)
def test_to_dict_and_back(data: list[int]) -> None:
    hist = histogram_of(data)
    again = Histogram.from_dict(hist.to_dict())
    assert again == hist
    assert (again.count, again.min, again.max, again.total) == (
        hist.count, hist.min, hist.max, hist.total
    )
    assert pickle.loads(pickle.dumps(hist)) == hist


def test_sparse_form_is_small_and_json_friendly() -> None:
    hist = histogram_of([50_000] * 1000 + [51_000] * 10)
    data = hist.to_dict()
    assert data["count"] == 1010
    assert len(data["buckets"]) == 2
    assert all(isinstance(k, str) for k in data["buckets"])


def test_empty_and_extremes() -> None:
    hist = Histogram()
    assert hist.percentile(50) == 0 and hist.mean == 0.0
    assert hist.to_dict()["min_us"] == 0
    hist.record(-5)
    hist.record(HIGHEST * 4)
    assert hist.min == 0 and hist.max == HIGHEST
    assert hist.percentile(0) == 0 and hist.percentile(100) == HIGHEST


def test_percentiles_in_one_pass_match_one_by_one() -> None:
    rng = random.Random(7)
    hist = histogram_of([int(rng.lognormvariate(8, 1.5)) for _ in range(5000)])
    qs = [99.9, 50, 75, 100, 0, 90]
    assert hist.percentiles(qs) == [hist.percentile(q) for q in qs]


def test_summary_in_milliseconds() -> None:
    hist = histogram_of([1000, 2000, 3000])
    summary = hist.summary_ms()
    assert summary["min"] == 1.0 and summary["max"] == 3.0 and summary["mean"] == 2.0
    assert set(summary) == {"min", "p50", "p90", "p95", "p99", "p999", "max", "mean"}
