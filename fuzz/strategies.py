"""hypothesis strategies over the generators of fuzz/generate.py.

`HypothesisSource` turns hypothesis's `draw` into a `Source`, so the same
generators that the long run drives with a seeded Random become strategies
that hypothesis can explore and shrink.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import strategies as st

from fuzz.corpus import corpus_input
from fuzz.generate import DEFAULT, request_stream
from fuzz.mutate import mutate
from fuzz.source import Source
from twincorn.http.policy import RequestPolicy


class HypothesisSource:
    """A Source whose every choice is a hypothesis draw."""

    __slots__ = ("draw",)

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw

    def integer(self, low: int, high: int) -> int:
        return self.draw(st.integers(low, high))

    def chance(self, p: float) -> bool:
        return self.draw(st.integers(0, 999)) < p * 1000

    def raw(self, most: int) -> bytes:
        return self.draw(st.binary(max_size=most))


def from_source(make: Callable[[Source], bytes]) -> st.SearchStrategy[bytes]:
    """A strategy for what `make` builds from a Source."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        return make(HypothesisSource(draw))

    return build()


def request_streams(policy: RequestPolicy = DEFAULT) -> st.SearchStrategy[bytes]:
    return from_source(lambda src: request_stream(src, policy))


def mutated_streams(policy: RequestPolicy = DEFAULT) -> st.SearchStrategy[bytes]:
    return from_source(lambda src: mutate(src, request_stream(src, policy)))


def corpus_inputs() -> st.SearchStrategy[bytes]:
    return from_source(corpus_input)


def response_inputs() -> st.SearchStrategy[bytes]:
    """Bytes that fuzz/responses.py reads as a response (a BytesSource)."""
    return st.binary(max_size=160)
