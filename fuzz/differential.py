"""twincorn's request parser beside h11's server side, request by request.

Both are fed the same bytes. For each request in turn, each side either
accepted its head (and then completed or refused its body), refused it, is
still waiting for more bytes, or has ended the connection. Where both give a
verdict they must agree: both accepted (then method, target, version,
headers, body and trailers must be equal) or both refused. A side still
waiting, or a connection ended by either (h11 ends every HTTP/1.0 one),
stops the comparison: there is nothing to compare past it.

Each disagreement is classified by fuzz/known.py; one that fits no known
class is a finding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import h11

from fuzz.oracles import Outcome, Seen

#: h11 refuses a head larger than this; twincorn's own limits are lower, so
#: h11 is given room enough never to be the one that refuses for size.
H11_ROOM = 1 << 20


@dataclass
class TheirRequest:
    """One request as h11 reported it."""

    method: bytes
    target: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]]  # names as sent
    body: bytearray = field(default_factory=bytearray)
    complete: bool = False
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)


@dataclass
class TheirOutcome:
    requests: list[TheirRequest]
    error: str | None  # h11's RemoteProtocolError, if it refused
    ended: bool  # h11 ended the connection after its last complete request


def h11_parse(data: bytes) -> TheirOutcome:
    """Feed `data` to an h11 server connection, answering each request with
    an empty 404 so that it moves on to the next one."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=H11_ROOM)
    conn.receive_data(data)
    requests: list[TheirRequest] = []
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            return TheirOutcome(requests, str(exc), False)
        if isinstance(event, h11.Request):
            requests.append(
                TheirRequest(event.method, event.target, event.http_version,
                             list(event.headers.raw_items()))
            )
        elif isinstance(event, h11.Data):
            requests[-1].body += event.data
        elif isinstance(event, h11.EndOfMessage):
            requests[-1].complete = True
            requests[-1].trailers = list(event.headers.raw_items())
            conn.send(h11.Response(status_code=404, headers=[(b"content-length", b"0")]))
            conn.send(h11.EndOfMessage())
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return TheirOutcome(requests, None, True)
            conn.start_next_cycle()
        else:  # NEED_DATA, or PAUSED after a protocol switch
            return TheirOutcome(requests, None, event is h11.PAUSED)


@dataclass
class Disagreement:
    """Where the two parsers part, at request `index`."""

    kind: str  # "twincorn refuses", "h11 refuses", "differ", "head ends"
    index: int
    detail: str  # twincorn's reason, h11's error, or the field that differs
    ours: Seen | None
    theirs: TheirRequest | None

    def __str__(self) -> str:
        return f"request {self.index}: {self.kind}: {self.detail}"


def _our_verdict(ours: Outcome, k: int) -> str:
    if k < len(ours.seen):
        return "accepted"
    if k and not ours.seen[k - 1].request.keep_alive:
        return "ended"
    return "refused" if ours.error is not None else "waiting"


def _their_verdict(theirs: TheirOutcome, k: int) -> str:
    if k < len(theirs.requests):
        return "accepted"
    if theirs.ended:
        return "ended"
    return "refused" if theirs.error is not None else "waiting"


def compare(ours: Outcome, theirs: TheirOutcome) -> Disagreement | None:
    """The first disagreement between the two, or None."""
    our_reason = "" if ours.error is None else f"{ours.error.status} {ours.error.reason}"
    their_error = theirs.error or ""
    k = 0
    while True:
        mine, yours = _our_verdict(ours, k), _their_verdict(theirs, k)
        if "ended" in (mine, yours) or mine == yours != "accepted":
            return None
        if "waiting" in (mine, yours):
            if "accepted" not in (mine, yours):
                return None  # one refused, the other has not looked yet
            which = "twincorn" if mine == "accepted" else "h11"
            return _at(k, "head ends", f"{which} found the end of a head", ours, theirs)
        if mine == "refused":
            return _at(k, "twincorn refuses", our_reason, ours, theirs)
        if yours == "refused":
            return _at(k, "h11 refuses", their_error, ours, theirs)
        a, b = ours.seen[k], theirs.requests[k]
        differs = _head_differs(a, b)
        if differs:
            return _at(k, "differ", differs, ours, theirs)
        if not (a.complete and b.complete):
            if a.complete and their_error:
                return _at(k, "h11 refuses", their_error, ours, theirs)
            if b.complete and our_reason:
                return _at(k, "twincorn refuses", our_reason, ours, theirs)
            return None
        if bytes(a.body) != bytes(b.body):
            return _at(k, "differ", "body", ours, theirs)
        if list(a.trailers) != [(n.lower(), v) for n, v in b.trailers]:
            return _at(k, "differ", "trailers", ours, theirs)
        k += 1


def _at(k: int, kind: str, detail: str, ours: Outcome, theirs: TheirOutcome) -> Disagreement:
    mine = ours.seen[k] if k < len(ours.seen) else None
    yours = theirs.requests[k] if k < len(theirs.requests) else None
    return Disagreement(kind, k, detail, mine, yours)


def _head_differs(a: Seen, b: TheirRequest) -> str:
    r = a.request
    if r.method.encode("latin-1") != b.method:
        return "method"
    if r.target != b.target:
        return "target"
    if r.http_version.encode() != b.version:
        return "version"
    if [_normal(n, v) for n, v in r.headers] != [_normal(n.lower(), v) for n, v in b.headers]:
        return "headers"
    return ""


def _normal(name: bytes, value: bytes) -> tuple[bytes, bytes]:
    # h11 lower-cases Transfer-Encoding's value (codings are
    # case-insensitive, RFC 9112 s7); twincorn passes it on as sent.
    return (name, value.lower()) if name == b"transfer-encoding" else (name, value)
