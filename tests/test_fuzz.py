"""A short, seeded slice of the fuzzing of the HTTP/1.1 core (fuzz/).

The long run is `make fuzz` (docs/fuzzing.md). Here each target gets a hundred
or two hypothesis examples (derandomized: the same ones every run, shrunk
if one fails) and a thousand inputs from fixed seeds, the reproducers of
fixed findings in tests/data/fuzz/ are replayed, and the oracles are shown
to fail where they must.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from fuzz.differential import Disagreement, compare, h11_parse
from fuzz.driver import check_driver
from fuzz.finding import Finding
from fuzz.generate import DEFAULT, TIGHT
from fuzz.known import KNOWN, classify
from fuzz.oracles import Outcome, Recorder, Seen, check_parser, parse
from fuzz.record import target_of
from fuzz.responses import ResponseSpec, check_response
from fuzz.source import BytesSource, RandomSource
from fuzz.strategies import corpus_inputs, mutated_streams, request_streams, response_inputs
from fuzz.targets import TARGETS, differential
from hypothesis import HealthCheck, given, settings

from twincorn.http import Request, response
from twincorn.http.parser import IDLE
from twincorn.server.protocol import HttpConnection

ROOT = Path(__file__).resolve().parent.parent
REGRESSIONS = sorted((ROOT / "tests" / "data" / "fuzz").glob("*.bin"))
SLICE = settings(
    derandomize=True, database=None, deadline=None, max_examples=100,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@SLICE
@given(request_streams())
def test_parser_on_generated_streams(data: bytes) -> None:
    TARGETS["parser"].check(data)


@SLICE
@given(mutated_streams())
def test_parser_on_mutated_streams(data: bytes) -> None:
    TARGETS["parser"].check(data)


@SLICE
@given(corpus_inputs())
def test_parser_on_mutated_corpus(data: bytes) -> None:
    TARGETS["parser"].check(data)


@SLICE
@given(mutated_streams(TIGHT))
def test_parser_under_small_limits(data: bytes) -> None:
    TARGETS["parser-tight"].check(data)


@SLICE
@given(response_inputs())
def test_response_writer(data: bytes) -> None:
    TARGETS["response"].check(data)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeded_inputs(name: str) -> None:
    """What the long run does, for 1000 inputs from fixed seeds per target."""
    target = TARGETS[name]
    for index in range(1000):
        data = target.make(RandomSource(random.Random(index)))
        try:
            target.check(data)
        except Finding as finding:
            raise AssertionError(f"{name}, seed {index}: {finding}\n{data!r}") from None


@pytest.mark.parametrize("path", REGRESSIONS, ids=[p.stem for p in REGRESSIONS])
def test_fixed_finding_stays_fixed(path: Path) -> None:
    TARGETS[target_of(path)].check(path.read_bytes())


# -- the oracles can fail -------------------------------------------------------


def test_splitting_oracle_compares_the_ways() -> None:
    # The same request fed whole and in pieces is the same request ...
    data = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
    assert len(check_parser(data, DEFAULT).seen) == 1
    # ... and two different inputs are told apart by the outcome's key.
    other = parse([data.replace(b"abc", b"abd")], DEFAULT)
    assert parse([data], DEFAULT).key() != other.key()


def test_recorder_refuses_a_body_without_framing() -> None:
    recorder = Recorder(DEFAULT)
    request = Request()
    request.host, request.headers, request.path = b"x", [(b"host", b"x")], b"/"
    recorder.on_request(request)
    with pytest.raises(Finding, match="framing declared none"):
        recorder.on_body(b"smuggled")


def test_recorder_refuses_a_request_after_a_closing_one() -> None:
    recorder = Recorder(DEFAULT)
    first = Request()
    first.host, first.headers, first.path = b"x", [(b"host", b"x")], b"/"
    first.keep_alive = False
    recorder.on_request(first)
    recorder.on_request_complete()
    with pytest.raises(Finding, match="after the connection ended"):
        recorder.on_request(first)


def test_response_oracle_catches_a_lax_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ResponseSpec(headers=[(b"X-Bad", b"a\x0bb")], pieces=[b"hello"])
    check_response(spec)  # refused by the writer, as it must be
    # The writer's rule before the fuzzer found it: only CR, LF and NUL.
    monkeypatch.setattr(response, "_UNSAFE_VALUE", re.compile(rb"[\x00\r\n]"))
    monkeypatch.setattr(response, "_FIELDS", {})
    with pytest.raises(Finding, match="bad value"):
        check_response(spec)


TWO = (b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
       b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")


def test_driver_oracle_reads_each_response_as_its_request_asks() -> None:
    check_driver(TWO)
    check_driver(TWO + b"NOT HTTP\r\n\r\n")  # the refusal after both answers
    check_driver(TWO[:-1])  # cut short by the FIN: 400 after the first answer


def test_driver_oracle_catches_a_response_framed_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    # A writer that announces one byte more than it sends: the first body
    # would swallow the start of the second response.
    real = response.ResponseWriter._head

    def lying(self: response.ResponseWriter, length: int | None) -> bytes:
        return real(self, None if length is None else length + 1)

    monkeypatch.setattr(response.ResponseWriter, "_head", lying)
    with pytest.raises(Finding, match="driver-framing"):
        check_driver(TWO)


def test_driver_oracle_catches_an_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: HttpConnection, request: Request) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(HttpConnection, "on_request", broken)
    with pytest.raises(Finding, match="driver-exception"):
        check_driver(TWO)


def test_differential_classifies_known_and_unknown() -> None:
    data = b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n"
    found = compare(check_parser(data, DEFAULT), h11_parse(data))
    assert found is not None and found.kind == "twincorn refuses"
    known = classify(found, data)
    assert known is not None and known.name == "expectation"
    odd = Disagreement("differ", 0, "body", None, None)
    assert classify(odd, data) is None
    with pytest.raises(Finding, match="differential"):
        # twincorn "accepting" a request in b"x", where h11 waits for more.
        request = Request()
        request.headers = [(b"host", b"x")]
        differential(b"x", Outcome([Seen(request, complete=True)], None, IDLE, 0.0))


def test_bytes_source_reads_any_input() -> None:
    source = BytesSource(b"\xff")
    assert source.integer(0, 9) == 5  # 255 % 10
    assert source.integer(3, 9) == 3 and source.raw(8) == b""  # spent: the smallest


# -- docs ------------------------------------------------------------------------


def test_every_known_difference_is_documented() -> None:
    text = (ROOT / "docs" / "http.md").read_text()
    section = text.split("## Where twincorn and h11 differ", 1)[1]
    listed = set(re.findall(r"`([a-z0-9-]+)`", section))
    assert {k.name for k in KNOWN} <= listed
