"""The request corpus fed straight to the core parser (no sockets).

Every case is fed three ways — whole, byte by byte, and in random pieces
(several seeds) — and all must give the same result: the same requests
(method, target, version, headers, body, trailers) for a valid case, the same
ProtocolError for an invalid one. How twincorn's policy differs from the
corpus (gunicorn's) is kept in corpus_cases.py, shared with the wire test.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from corpus_cases import (
    ACCEPTED_BY_POLICY,
    INCOMPLETE,
    LIMIT_ACCOUNTING,
    PROXY_HEADER_REQUIRED,
    REFUSAL_STATUSES,
    REFUSED_BY_POLICY,
    SKIPPED_FOR_OPTIONS,
    UNDERSCORED_KEPT,
    Case,
    Expected,
    case_names,
    fold_blind,
    get_case,
    load_cases,
    no_host_cases,
    split_underscored,
    upper_headers,
)
from twincorn.http import ProtocolError, Request, RequestParser, RequestPolicy
from twincorn.http.parser import BODY, HEAD, IDLE, ParserState
from twincorn.http.proxy_protocol import (
    HeaderKind,
    ProxyHeader,
    ProxyHeaderError,
    ProxyHeaderReader,
)

SEEDS = range(5)


@dataclass
class Seen:
    """One request as the parser reported it."""

    request: Request
    body: bytes = b""
    complete: bool = False
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def summary(self) -> tuple[Any, ...]:
        r = self.request
        return (
            r.method,
            r.target,
            r.path,
            r.query,
            r.http_version,
            tuple(r.headers),
            self.body,
            tuple(self.trailers),
            self.complete,
        )


class Recorder:
    """A RequestHandler that keeps what it is told."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []

    def on_request(self, request: Request) -> None:
        assert not self.seen or self.seen[-1].complete, "a request began before the last ended"
        self.seen.append(Seen(request))

    def on_body(self, data: bytes) -> None:
        assert data, "an empty body piece"
        self.seen[-1].body += data

    def on_request_complete(self) -> None:
        last = self.seen[-1]
        assert not last.complete
        last.complete = True
        last.trailers = list(last.request.trailers)


@dataclass
class Outcome:
    seen: list[Seen]
    error: ProtocolError | None
    state: ParserState
    header: ProxyHeader | None = None  # with proxy_protocol: the PROXY header read
    header_error: str = ""  # with proxy_protocol: why there was none

    @property
    def complete(self) -> list[Seen]:
        return [s for s in self.seen if s.complete]

    def key(self) -> tuple[Any, ...]:
        error = None if self.error is None else (self.error.status, self.error.reason)
        return (tuple(s.summary() for s in self.seen), error, self.state, self.header,
                self.header_error)


def parse(pieces: list[bytes], proxy_protocol: bool = False, **settings: Any) -> Outcome:
    """Feed `pieces` to the parser (after the PROXY header's reader, as the
    connection driver does, with `proxy_protocol`)."""
    recorder = Recorder()
    parser = RequestParser(recorder, RequestPolicy(**settings))
    reader = ProxyHeaderReader() if proxy_protocol else None
    header, header_error, error = None, "", None
    for piece in pieces:
        if reader is not None:
            try:
                header = reader.feed(piece)
            except ProxyHeaderError as exc:
                header_error = str(exc)
                break
            if header is None:
                continue
            piece, reader = reader.rest, None
        try:
            parser.feed(piece)
        except ProtocolError as exc:
            error = exc
            break
    return Outcome(recorder.seen, error, parser.state, header, header_error)


def random_pieces(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 40))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def ways(data: bytes) -> Iterator[tuple[str, list[bytes]]]:
    yield "whole", [data]
    yield "byte by byte", [data[i : i + 1] for i in range(len(data))]
    for seed in SEEDS:
        yield f"random pieces, seed {seed}", random_pieces(data, seed)


def parse_every_way(case: Case, **settings: Any) -> Outcome:
    """The outcome of parsing `case`, the same whichever way it is split."""
    outcomes = [(how, parse(pieces, **settings)) for how, pieces in ways(case.data)]
    first_how, first = outcomes[0]
    for how, outcome in outcomes[1:]:
        assert outcome.key() == first.key(), f"{case}: fed {how} differs from fed {first_how}"
    return first


def check_request(case: Case, seen: Seen, expected: Expected) -> None:
    r = seen.request
    assert r.method == expected.method
    assert r.target.decode("latin-1") == expected.target
    assert r.path.decode("latin-1") == expected.twincorn_path
    assert r.query.decode("latin-1") == expected.query
    assert r.http_version == expected.version
    plain, underscored = split_underscored(upper_headers(r.headers))
    assert fold_blind(case, plain) == fold_blind(case, list(expected.headers))
    assert underscored == UNDERSCORED_KEPT.get(case.name, [])
    assert seen.body == expected.body
    assert upper_headers(seen.trailers) == list(expected.trailers)


def skip_if_options_missing(case: Case) -> None:
    if case.missing_options:
        pytest.skip(f"needs gunicorn option(s) twincorn lacks: {', '.join(case.missing_options)}")


def refused(outcome: Outcome) -> ProtocolError:
    assert outcome.error is not None, f"accepted: {[s.request for s in outcome.seen]}"
    assert outcome.error.status in REFUSAL_STATUSES, outcome.error
    assert outcome.complete == [], "a request of a refused case reached the end"
    return outcome.error


# -- every case ------------------------------------------------------------------


@pytest.mark.parametrize("name", case_names())
def test_corpus_case(name: str) -> None:
    case = get_case(name)
    skip_if_options_missing(case)
    # gunicorn does not require Host: neither does this run (test_no_host_*).
    settings = {**case.policy_settings, "require_host": False}
    if name in LIMIT_ACCOUNTING:
        settings.update(LIMIT_ACCOUNTING[name][0])
    outcome = parse_every_way(case, **settings)
    if case.proxy_protocol:
        check_proxy_case(case, outcome)
        return

    if name in INCOMPLETE:
        # Nothing refused yet, nothing finished, and the parser is inside a
        # request: a half-close here is answered 400 (test_corpus_wire).
        assert outcome.error is None
        assert outcome.complete == []
        assert outcome.state in (HEAD, BODY)
    elif name in REFUSED_BY_POLICY or (case.kind == "invalid" and name not in ACCEPTED_BY_POLICY):
        error = refused(outcome)
        if name in LIMIT_ACCOUNTING:
            assert error.status == 431
    else:
        assert outcome.error is None, outcome.error
        if name in ACCEPTED_BY_POLICY:
            assert outcome.complete and outcome.complete == outcome.seen
            return
        assert len(outcome.seen) == len(case.requests)
        for seen, expected in zip(outcome.seen, case.requests, strict=True):
            assert seen.complete
            check_request(case, seen, expected)


def check_proxy_case(case: Case, outcome: Outcome) -> None:
    """A proxy_protocol case: the header, then the requests; or no valid
    header, and nothing parsed as HTTP at all."""
    if case.kind == "invalid" or case.name in PROXY_HEADER_REQUIRED:
        assert outcome.header is None and outcome.header_error
        assert outcome.seen == [] and outcome.error is None
        return
    assert outcome.header is not None and outcome.header.kind is HeaderKind.TCP
    assert outcome.error is None, outcome.error
    assert len(outcome.seen) == len(case.requests)
    for seen, expected in zip(outcome.seen, case.requests, strict=True):
        assert seen.complete
        check_request(case, seen, expected)


# -- Host: refused by default, served with require_host=False ---------------------


@pytest.mark.parametrize("name", no_host_cases())
def test_no_host_refused_by_default(name: str) -> None:
    case = get_case(name)
    skip_if_options_missing(case)
    outcome = parse_every_way(case, **case.policy_settings)
    error = refused_after_good_ones(case, outcome)
    if name not in REFUSED_BY_POLICY:
        assert (error.status, error.reason) == (400, "HTTP/1.1 request without a Host header")


def refused_after_good_ones(case: Case, outcome: Outcome) -> ProtocolError:
    """The requests before the first Host-less HTTP/1.1 one are served."""
    good = 0
    while case.requests[good].version != "1.1" or case.requests[good].has_host:
        good += 1
    assert outcome.error is not None
    assert outcome.error.status in REFUSAL_STATUSES
    assert len(outcome.complete) == good == len(outcome.seen)
    for seen, expected in zip(outcome.seen, case.requests, strict=False):
        check_request(case, seen, expected)
    return outcome.error


# -- the documented differences still hold ----------------------------------------


@pytest.mark.parametrize("name", sorted(LIMIT_ACCOUNTING))
def test_limit_accounting_under_gunicorn_settings(name: str) -> None:
    """With the settings gunicorn refuses the case at, twincorn accepts it.

    If this fails, twincorn now counts a field line as gunicorn does: the
    case belongs with the plain invalid ones (remove it from LIMIT_ACCOUNTING).
    """
    case = get_case(name)
    outcome = parse_every_way(case, **case.policy_settings, require_host=False)
    assert outcome.error is None
    assert len(outcome.complete) == 1


def test_the_lists_of_differences() -> None:
    """Each list names cases of the right kind; a change to either is seen."""
    cases = {c.name: c for c in load_cases()}
    assert {n for n, c in cases.items() if c.missing_options} == SKIPPED_FOR_OPTIONS
    assert all(cases[n].kind == "valid" for n in REFUSED_BY_POLICY)
    assert all(cases[n].kind == "valid" and cases[n].proxy_protocol
               for n in PROXY_HEADER_REQUIRED)
    assert all(cases[n].kind == "invalid" for n in ACCEPTED_BY_POLICY)
    assert all(cases[n].kind == "invalid" for n in LIMIT_ACCOUNTING)
    assert INCOMPLETE <= cases.keys()
    assert UNDERSCORED_KEPT.keys() <= cases.keys()
    apart = (
        SKIPPED_FOR_OPTIONS
        | REFUSED_BY_POLICY.keys()
        | ACCEPTED_BY_POLICY.keys()
        | LIMIT_ACCOUNTING.keys()
        | PROXY_HEADER_REQUIRED.keys()
    )
    assert len(apart) == len(SKIPPED_FOR_OPTIONS) + len(REFUSED_BY_POLICY) + len(
        ACCEPTED_BY_POLICY
    ) + len(LIMIT_ACCOUNTING) + len(PROXY_HEADER_REQUIRED), "a case is in two lists"
    assert sum(c.proxy_protocol for c in cases.values()) == 8
    # The corpus marks its Host-less HTTP/1.1 requests with a note.
    noted = {n for n, c in cases.items() if "without Host" in c.note}
    assert set(no_host_cases()) == noted


def test_the_corpus_is_all_there(corpus: Path) -> None:
    cases = load_cases()
    assert len(cases) == 137
    assert sum(c.kind == "valid" for c in cases) == 63
    assert {c.name.split("/")[0] for c in cases} == {"valid", "invalid"}
    assert all(c.kind == c.name.split("/")[0] for c in cases)
    assert IDLE != HEAD  # the states compared above are distinct values


def test_a_parser_closed_by_its_handler_mid_feed_parses_nothing_more() -> None:
    # The driver closes the parser from a callback (a drained body over its
    # limit, say): the requests after it in the same read are never parsed.
    class Closing(Recorder):
        def on_request_complete(self) -> None:
            super().on_request_complete()
            parser.close()

    recorder = Closing()
    parser = RequestParser(recorder, RequestPolicy())
    two = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
    parser.feed(two)
    assert [s.request.target for s in recorder.seen] == [b"/a"]
    assert parser.state is ParserState.CLOSED
    parser.feed(two)  # and nothing later either
    assert len(recorder.seen) == 1
