"""The fuzz targets: each a function fed one input that raises Finding.

A `Target` pairs that function with a generator of its inputs (from a
Source), so that the long run, hypothesis and atheris drive every target the
same way. More targets (the connection driver) are added with `register`.

    parser        RequestParser under the default policy: the oracles of
                  fuzz/oracles.py, then the h11 differential
    parser-tight  RequestParser under small limits with obs-fold permitted
                  and Host not required: the oracles only
    response      ResponseWriter: the oracle of fuzz/responses.py
    driver        HttpConnection over a fake network, an echo app behind it:
                  the oracles of fuzz/driver.py (framing, nothing escapes,
                  the connection ends)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from fuzz.corpus import corpus_input
from fuzz.differential import compare, h11_parse
from fuzz.driver import check_driver
from fuzz.finding import Finding
from fuzz.generate import DEFAULT, TIGHT, request_stream
from fuzz.known import classify
from fuzz.mutate import mutate
from fuzz.oracles import Outcome, check_parser
from fuzz.responses import check_response_bytes
from fuzz.source import Source
from twincorn.http.policy import RequestPolicy

Check = Callable[[bytes], None]
Make = Callable[[Source], bytes]


@dataclass(frozen=True)
class Target:
    name: str
    check: Check  # raises Finding for a defect; returns otherwise
    make: Make  # one input, from a Source
    weight: int = 1  # its share of the long run's inputs


TARGETS: dict[str, Target] = {}
#: How often each known difference from h11 was seen (by class name).
DIFFERENCES: Counter[str] = Counter()


def register(target: Target) -> Target:
    TARGETS[target.name] = target
    return target


def differential(data: bytes, ours: Outcome) -> None:
    """h11 against twincorn on `data`; a disagreement of no known class is a finding."""
    found = compare(ours, h11_parse(data))
    if found is None:
        return
    known = classify(found, data)
    if known is None:
        raise Finding("differential", str(found))
    DIFFERENCES[known.name] += 1


def check_parser_default(data: bytes) -> None:
    differential(data, check_parser(data, DEFAULT))


def check_parser_tight(data: bytes) -> None:
    check_parser(data, TIGHT)


def request_input(policy: RequestPolicy) -> Make:
    """Generated streams (mostly mutated), mutated corpus cases, and now and
    then plain random bytes."""

    def make(src: Source) -> bytes:
        roll = src.integer(0, 99)
        if roll < 70:
            data = request_stream(src, policy)
            return mutate(src, data) if src.chance(0.7) else data
        if roll < 95:
            return corpus_input(src)
        return src.raw(64)

    return make


def response_input(src: Source) -> bytes:
    return src.raw(160)


register(Target("parser", check_parser_default, request_input(DEFAULT), weight=6))
register(Target("parser-tight", check_parser_tight, request_input(TIGHT), weight=2))
register(Target("response", check_response_bytes, response_input, weight=2))
register(Target("driver", check_driver, request_input(DEFAULT), weight=1))
