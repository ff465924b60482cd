"""Where the generators' choices come from.

Every generator in fuzz/ takes a `Source` and asks it for integers, choices
and bytes. Three sources implement it:

- `RandomSource`: a seeded `random.Random`; fast, for the long run.
- `BytesSource`: the bytes of an input read as a stream of choices (as
  libFuzzer's FuzzedDataProvider does), so that atheris's mutations of those
  bytes become structural changes, and a reproducer is just the bytes.
- `HypothesisSource` (in fuzz/strategies.py): hypothesis's `draw`, so that the
  same generators are hypothesis strategies that shrink.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol, TypeVar

T = TypeVar("T")


class Source(Protocol):
    """The choices a generator can ask for."""

    def integer(self, low: int, high: int) -> int:
        """An integer in [low, high]."""
        ...

    def chance(self, p: float) -> bool:
        """True with probability about `p`."""
        ...

    def raw(self, most: int) -> bytes:
        """Arbitrary bytes, at most `most` of them."""
        ...


def choice(source: Source, options: Sequence[T]) -> T:
    return options[source.integer(0, len(options) - 1)]


class RandomSource:
    """Choices from a seeded `random.Random`."""

    __slots__ = ("rng",)

    def __init__(self, seed: int | random.Random) -> None:
        self.rng = seed if isinstance(seed, random.Random) else random.Random(seed)

    def integer(self, low: int, high: int) -> int:
        # random() scaled, rather than randint(): a third of the time, and
        # the bias (one part in 2**53) does not matter here.
        return low + int(self.rng.random() * (high - low + 1))

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def raw(self, most: int) -> bytes:
        return self.rng.randbytes(self.integer(0, most))


class BytesSource:
    """Choices read from the bytes of an input; once they run out, every
    choice is the smallest one (so any input decodes to something)."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, count: int) -> bytes:
        piece = self.data[self.pos : self.pos + count]
        self.pos += len(piece)
        return piece

    def integer(self, low: int, high: int) -> int:
        span = high - low
        if span <= 0:
            return low
        size = (span.bit_length() + 7) // 8
        return low + int.from_bytes(self._take(size), "little") % (span + 1)

    def chance(self, p: float) -> bool:
        piece = self._take(1)
        return bool(piece) and piece[0] < p * 256

    def raw(self, most: int) -> bytes:
        return self._take(self.integer(0, most))
