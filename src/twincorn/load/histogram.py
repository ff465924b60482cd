"""A mergeable log-linear histogram of latencies, in integer microseconds.

The idea is HdrHistogram's. Values below 256 are counted exactly, one
bucket each. Above that, every power of two [2**k, 2**(k+1)) is cut into 128
buckets of equal width 2**(k-7): a bucket is never wider than 1/128 of the
values it holds, so reporting its middle is off by at most 1/256 (0.4%) of
the true value, whatever the scale (1 us or 10 minutes).

    index(v) = (e << 7) + (v >> e)     with e = max(0, bit_length(v) - 8)

For v < 256, e = 0 and the index is v itself. For larger v, v >> e lies in
[128, 256), so each e adds 128 new indices after the previous ones: the
buckets form one flat list, and recording a value is a shift, an add and a
list increment. Count, sum (hence the exact mean), min and max are kept
exactly beside the buckets.

Two histograms merge by adding their counts bucket by bucket: the merge of
per-process or per-second histograms is exactly the histogram of all the
values, so percentiles over several processes are computed, never averaged.
`to_dict()` gives a sparse, JSON-friendly form for moving between processes
and machines.
"""

from __future__ import annotations

import math
from typing import Any

SUB_BITS = 7
SUB_COUNT = 1 << SUB_BITS  # 128 buckets per power of two
LINEAR_LIMIT = SUB_COUNT * 2  # values below this are counted exactly
# Values above ~12.7 days are counted as that (a latency this long is a bug).
HIGHEST = (1 << 40) - 1


def bucket_index(value: int) -> int:
    """The bucket a value (in microseconds, >= 0) is counted in."""
    e = value.bit_length() - 8
    if e < 0:
        return value
    return (e << SUB_BITS) + (value >> e)


def bucket_bounds(index: int) -> tuple[int, int]:
    """The values [low, high] (inclusive) counted in bucket `index`."""
    if index < LINEAR_LIMIT:
        return index, index
    e = (index >> SUB_BITS) - 1
    low = (index - (e << SUB_BITS)) << e
    return low, low + (1 << e) - 1


def bucket_value(index: int) -> int:
    """The value reported for a bucket: its middle (exact below 256)."""
    low, high = bucket_bounds(index)
    return (low + high + 1) // 2 if high > low else low


class Histogram:
    """Counts of microsecond values in log-linear buckets (see the module doc).

    `record` is on the load tester's hot path: it is kept to integer
    arithmetic and one list increment. The bucket list grows on demand, so a
    run of fast responses keeps a short list (and merges quickly).
    """

    __slots__ = ("count", "counts", "max", "min", "total")

    def __init__(self) -> None:
        self.counts: list[int] = [0] * LINEAR_LIMIT
        self.count = 0
        self.total = 0  # sum of the values, for the exact mean
        self.min = HIGHEST
        self.max = 0

    def record(self, value: int) -> None:
        """Count one value (microseconds). Negative values count as 0."""
        if value < 0:
            value = 0
        elif value > HIGHEST:
            value = HIGHEST
        e = value.bit_length() - 8
        index = value if e < 0 else (e << SUB_BITS) + (value >> e)
        try:
            self.counts[index] += 1
        except IndexError:
            self.counts.extend([0] * (index + 1 - len(self.counts)))
            self.counts[index] += 1
        self.count += 1
        self.total += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def merge(self, other: Histogram) -> None:
        """Add all of `other`'s values to this histogram."""
        if not other.count:
            return
        mine, theirs = self.counts, other.counts
        if len(mine) < len(theirs):
            mine.extend([0] * (len(theirs) - len(mine)))
        for index, n in enumerate(theirs):
            if n:
                mine[index] += n
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def copy(self) -> Histogram:
        clone = Histogram()
        clone.merge(self)
        return clone

    def percentile(self, q: float) -> int:
        """The value at or below which `q` per cent of the values lie.

        Nearest rank: the value of the bucket holding the ceil(q% x count)-th
        smallest value, within 0.4% of that value, clamped to [min, max] so
        that percentile(0) is the minimum and percentile(100) the maximum,
        exactly. 0 for an empty histogram.
        """
        return self.percentiles([q])[0]

    def percentiles(self, qs: list[float]) -> list[int]:
        """Several percentiles (per cent, 0 to 100) in one pass over the buckets."""
        if not self.count:
            return [0] * len(qs)
        order = sorted(range(len(qs)), key=qs.__getitem__)
        # ceil(q% x count), less a hair so that float noise (99.9 x 1000 / 100
        # = 999.0000000000001) does not push a rank one too far.
        ranks = [max(1, math.ceil(qs[i] * self.count / 100 - 1e-9)) for i in order]
        out = [self.max] * len(qs)
        seen = 0
        k = 0
        for index, n in enumerate(self.counts):
            if not n:
                continue
            seen += n
            while k < len(order) and seen >= ranks[k]:
                out[order[k]] = min(max(bucket_value(index), self.min), self.max)
                k += 1
            if k == len(order):
                break
        for i, q in enumerate(qs):
            if q <= 0:
                out[i] = self.min
            elif q >= 100:
                out[i] = self.max
        return out

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def __len__(self) -> int:
        return self.count

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def to_dict(self) -> dict[str, Any]:
        """A sparse, JSON-friendly form: only the buckets that hold values."""
        return {
            "count": self.count,
            "total_us": self.total,
            "min_us": self.min if self.count else 0,
            "max_us": self.max,
            "buckets": {str(i): n for i, n in enumerate(self.counts) if n},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        """The histogram that `to_dict` described."""
        hist = cls()
        buckets = {int(i): int(n) for i, n in data.get("buckets", {}).items()}
        if buckets:
            top = max(buckets)
            if top >= len(hist.counts):
                hist.counts.extend([0] * (top + 1 - len(hist.counts)))
            for index, n in buckets.items():
                hist.counts[index] = n
        hist.count = int(data.get("count", sum(buckets.values())))
        hist.total = int(data.get("total_us", 0))
        hist.min = int(data.get("min_us", 0)) if hist.count else HIGHEST
        hist.max = int(data.get("max_us", 0))
        return hist

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled (between load processes) in the sparse form.
        return (Histogram.from_dict, (self.to_dict(),))

    def summary_ms(self) -> dict[str, float]:
        """min, p50, p90, p95, p99, p999, max and mean, in milliseconds."""
        p50, p90, p95, p99, p999 = self.percentiles([50, 90, 95, 99, 99.9])
        return {
            "min": (self.min if self.count else 0) / 1000,
            "p50": p50 / 1000,
            "p90": p90 / 1000,
            "p95": p95 / 1000,
            "p99": p99 / 1000,
            "p999": p999 / 1000,
            "max": self.max / 1000,
            "mean": round(self.mean / 1000, 6),
        }
