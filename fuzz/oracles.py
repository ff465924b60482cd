"""What must hold for the request parser, whatever bytes it is fed.

- **Only refusals**: `feed` raises ProtocolError (with a refusal status) or
  nothing; any other exception is a finding.
- **Splitting does not matter**: the input fed whole, byte by byte (or in
  pieces of a few bytes when it is long) and in random pieces gives the same
  requests, bodies, trailers and error status.
- **Promptly**: no call of `feed` takes over `SLOW` seconds (timed again
  twice before it is reported, since the machine is shared).
- **Consistency** of every reported request, checked as it is reported
  (`Recorder`), and never a request reported and then refused for its
  Transfer-Encoding: a body only when the framing declared one, exactly the
  declared length, nothing reported after a refusal or after a message
  that ends the connection, the limits of the policy held, framing fields
  read into the request as they appear in its headers.
"""

from __future__ import annotations

import random
import re
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from fuzz.finding import Finding
from twincorn.http import ProtocolError, Request, RequestParser, RequestPolicy
from twincorn.http.parser import ParserState

#: Statuses a refusal may carry (docs/http.md, "Errors").
REFUSALS = frozenset({400, 408, 413, 414, 417, 431, 501, 505})
SLOW = 0.05
#: Longer inputs are fed in pieces of one to seven bytes, not byte by byte,
#: and inputs longer than SMALL_MAX (those made to reach the default limits)
#: in pieces of up to 800 bytes: the small limits of the parser-tight target
#: are where the boundaries are fuzzed byte by byte.
BYTEWISE_MAX = 512
SMALL_MAX = 2048

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LOWER_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
_UNSAFE = re.compile(rb"[\x00\r\n]")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass
class Seen:
    """One request as the parser reported it."""

    request: Request
    body: bytearray = field(default_factory=bytearray)
    complete: bool = False
    trailers: tuple[tuple[bytes, bytes], ...] = ()

    def summary(self) -> tuple[Any, ...]:
        r = self.request
        return (
            r.method, r.target, r.path, r.query, r.http_version, tuple(r.headers),
            bytes(self.body), self.trailers, self.complete, r.keep_alive, r.chunked,
            r.content_length, r.upgrade, r.expect_continue,
        )


class Recorder:
    """A RequestHandler that keeps what it is told and checks it on the way."""

    def __init__(self, policy: RequestPolicy) -> None:
        self.policy = policy
        self.seen: list[Seen] = []
        self.ended = False  # a refusal, or a message that ends the connection

    def on_request(self, request: Request) -> None:
        if self.ended:
            raise Finding("consistency", "a request reported after the connection ended")
        if self.seen and not self.seen[-1].complete:
            raise Finding("consistency", "a request began before the last one ended")
        check_head(request, self.policy)
        self.seen.append(Seen(request))

    def on_body(self, data: bytes) -> None:
        if not self.seen or self.seen[-1].complete:
            raise Finding("consistency", "body bytes outside a request")
        seen = self.seen[-1]
        r = seen.request
        if not data:
            raise Finding("consistency", "an empty body piece")
        if not r.has_body:
            raise Finding("consistency", "a body on a request whose framing declared none")
        seen.body += data
        limit = self.policy.limit_request_body
        if limit and len(seen.body) > limit:
            raise Finding("consistency", "body over limit_request_body")
        if not r.chunked and r.content_length is not None and len(seen.body) > r.content_length:
            raise Finding("consistency", "body longer than its Content-Length")

    def on_request_complete(self) -> None:
        if not self.seen or self.seen[-1].complete:
            raise Finding("consistency", "a request completed twice, or none began")
        seen = self.seen[-1]
        r = seen.request
        if not r.chunked and len(seen.body) != (r.content_length or 0):
            raise Finding("consistency", "body length differs from its Content-Length")
        for name, value in r.trailers:
            _check_field(name, value, self.policy)
        if r.trailers and not r.chunked:
            raise Finding("consistency", "trailers without chunked framing")
        seen.complete = True
        seen.trailers = tuple(r.trailers)
        if not r.keep_alive:
            self.ended = True


def check_head(r: Request, policy: RequestPolicy) -> None:
    """A reported head is what the policy and the RFCs allow."""
    def fail(detail: str) -> Finding:
        return Finding("consistency", detail)

    if _TOKEN.fullmatch(r.method.encode("latin-1")) is None:
        raise fail("the method is not a token")
    if r.http_version not in ("1.0", "1.1"):
        raise fail("an HTTP version other than 1.0 or 1.1")
    if policy.limit_request_line and len(r.target) > policy.limit_request_line:
        raise fail("target over limit_request_line")
    if policy.limit_request_fields and len(r.headers) > policy.limit_request_fields:
        raise fail("more fields than limit_request_fields")
    head = len(r.target)
    for name, value in r.headers:
        _check_field(name, value, policy)
        head += len(name) + len(value) + 4
    if policy.limit_request_head and head > policy.limit_request_head:
        raise fail("head over limit_request_head")
    _check_framing(r, policy, fail)
    if r.path[:1] not in (b"/", b"*") and not (r.method == "CONNECT" and r.path == b""):
        raise fail("a path that is neither absolute nor * (nor CONNECT's empty one)")


def _check_field(name: bytes, value: bytes, policy: RequestPolicy) -> None:
    if _LOWER_TOKEN.fullmatch(name) is None:
        raise Finding("consistency", "a field name that is not a lower-case token")
    if value[:1] in (b" ", b"\t") or value[-1:] in (b" ", b"\t"):
        raise Finding("consistency", "whitespace around a field value")
    bad = _CONTROL if policy.permit_obsolete_folding else _UNSAFE
    if bad.search(value) is not None:
        raise Finding("consistency", "a control character in a field value")
    if policy.limit_request_field_size and len(name) + len(value) + 2 > (
        policy.limit_request_field_size
    ):
        raise Finding("consistency", "a field over limit_request_field_size")


def _check_framing(r: Request, policy: RequestPolicy, fail: Any) -> None:
    lengths = [v for n, v in r.headers if n == b"content-length"]
    codings = [v for n, v in r.headers if n == b"transfer-encoding"]
    hosts = [v for n, v in r.headers if n == b"host"]
    if r.chunked != bool(codings) or (codings and lengths):
        raise fail("chunked framing that its headers do not declare")
    if r.content_length is not None and (
        len(lengths) != 1 or not lengths[0].isdigit() or int(lengths[0]) != r.content_length
    ):
        raise fail("a Content-Length that is not its one header's")
    if r.content_length is None and lengths:
        raise fail("a Content-Length header that was not read")
    if policy.limit_request_body and (r.content_length or 0) > policy.limit_request_body:
        raise fail("a Content-Length over limit_request_body")
    if hosts != ([] if r.host is None else [r.host]):
        raise fail("a host that is not its one Host header")
    if r.http_version == "1.1" and policy.require_host and r.host is None:
        raise fail("an HTTP/1.1 request without Host")
    if r.http_version == "1.0" and (r.chunked or r.expect_continue):
        raise fail("chunked framing or Expect honoured in HTTP/1.0")
    if r.upgrade and (r.keep_alive or r.has_body):
        raise fail("an upgrade that keeps the connection or has a body")


@dataclass
class Outcome:
    seen: list[Seen]
    error: ProtocolError | None
    state: ParserState
    slowest: float  # the longest one call of feed took, in seconds

    def key(self) -> tuple[Any, ...]:
        status = None if self.error is None else self.error.status
        seen = [s.summary() for s in self.seen]
        if seen and self.error is not None and not self.seen[-1].complete:
            # How much of a refused body was passed on before the refusal
            # depends on the pieces (the piece that crosses a limit is not).
            seen[-1] = seen[-1][:6] + seen[-1][7:]
        return (tuple(seen), status, self.state)


def parse(pieces: list[bytes], policy: RequestPolicy, timed: bool = False) -> Outcome:
    """Feed `pieces` in turn. After a refusal the rest is fed too: it must
    be ignored without a word. `slowest` is the time of the slowest feed
    with `timed`, else of them all (an upper bound, cheaper to take)."""
    recorder = Recorder(policy)
    parser = RequestParser(recorder, policy)
    error = None
    slowest = 0.0
    clock = time.perf_counter
    begin = clock()
    for piece in pieces:
        if timed:
            start = clock()
        try:
            parser.feed(piece)
        except ProtocolError as exc:
            if error is not None:
                raise Finding("consistency", f"a second refusal: {exc!r}") from None
            if exc.status not in REFUSALS:
                raise Finding("status", f"refused with status {exc.status}") from None
            reported = recorder.seen and not recorder.seen[-1].complete
            if reported and "Request has invalid `Transfer-Encoding`" in exc.reason:
                # llhttp's check, made after on_headers_complete: the parser
                # must have refused before reporting the request.
                raise Finding("consistency", "a request reported, then refused for its "
                              "Transfer-Encoding") from None
            error = exc
            recorder.ended = True
        except Finding:
            raise
        except Exception as exc:
            raise Finding("exception", f"{type(exc).__name__}: {exc}") from exc
        if timed:
            slowest = max(slowest, clock() - start)
    if not timed:
        slowest = clock() - begin
    return Outcome(recorder.seen, error, parser.state, slowest)


def splits(data: bytes) -> list[tuple[str, list[bytes]]]:
    """The ways one input is fed: whole, bytewise, random pieces (seeded by
    the input itself, so that a reproducer replays exactly)."""
    rng = random.Random(zlib.crc32(data))
    if len(data) <= BYTEWISE_MAX:
        small = [data[i : i + 1] for i in range(len(data))]
    else:
        small = _small_pieces(data, rng, 8 if len(data) <= SMALL_MAX else 800)
    if len(data) < 2:
        return [("whole", [data]), ("bytewise", small)]
    cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, min(len(data) - 1, 40))))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    return [("whole", [data]), ("bytewise", small), ("random", pieces)]


def _small_pieces(data: bytes, rng: random.Random, most: int) -> list[bytes]:
    out = []
    pos = 0
    steps = rng.choices(range(1, most), k=len(data) * 2 // most + 1)
    for step in steps:
        if pos >= len(data):
            break
        out.append(data[pos : pos + step])
        pos += step
    if pos < len(data):
        out.append(data[pos:])
    return out


def check_parser(data: bytes, policy: RequestPolicy) -> Outcome:
    """Every oracle above for one input; the outcome of the whole feed."""
    outcomes = []
    for how, pieces in splits(data):
        outcome = parse(pieces, policy)
        if outcome.slowest > SLOW:
            outcome = _retime(pieces, policy, outcome, how)
        outcomes.append((how, outcome))
    first = outcomes[0][1]
    for how, outcome in outcomes[1:]:
        if outcome.key() != first.key() and not _tie(first, outcome):
            raise Finding("split", f"fed {how} differs from fed whole: {_diff(first, outcome)}")
    return first


#: The statuses of a size limit: 413 (body), 414 (target), 431 (head).
LIMITS = frozenset({413, 414, 431})


def _tie(whole: Outcome, other: Outcome) -> bool:
    """The two allowed differences between feeding whole and in pieces.

    - An input that breaks both the grammar and a size limit within one
      piece may be refused for either (400 or the limit's status): llhttp
      reads ahead within a piece before it reports the span that would pass
      the limit.
    - A head still arriving is measured by its raw bytes (parser.py,
      `feed`), a finished one by what llhttp reports of it; so a head whose
      raw size passes limit_request_head (its whitespace, its request line)
      may be refused with 431 when it comes in pieces, and not when it comes
      whole (docs/http.md, Limits).
    """
    if other.error is None:
        return False
    if whole.error is not None and whole.key()[0] == other.key()[0]:
        statuses = {whole.error.status, other.error.status}
        if 400 in statuses and len(statuses & LIMITS) == 1:
            return True
    if (other.error.status, other.error.reason) != (431, "request head too large"):
        return False
    done = tuple(s.summary() for s in other.seen)
    return all(s.complete for s in other.seen) and done == tuple(
        s.summary() for s in whole.seen[: len(done)]
    )


def _retime(pieces: list[bytes], policy: RequestPolicy, outcome: Outcome, how: str) -> Outcome:
    best = min(parse(pieces, policy, timed=True).slowest for _ in range(3))
    if best > SLOW:
        raise Finding("slow", f"fed {how}: one feed took {best * 1000:.0f} ms")
    return outcome


def _diff(a: Outcome, b: Outcome) -> str:
    if len(a.seen) != len(b.seen):
        return f"{len(a.seen)} requests against {len(b.seen)}"
    for x, y in zip(a.seen, b.seen, strict=True):
        if x.summary() != y.summary():
            return "a request differs"
    if (a.error is None) != (b.error is None) or (a.error and b.error and (
        a.error.status != b.error.status
    )):
        return f"refusal {a.error!r} against {b.error!r}"
    return f"state {a.state} against {b.state}"
