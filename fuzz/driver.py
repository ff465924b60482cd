"""The connection driver fed what a client sends: the `driver` target.

The input is the parser's (fuzz/generate.py): a stream of requests, often
mutated. It goes to an HttpConnection over twincorn.testing's fake network,
in random reads (seeded by the input), then the client's FIN, then the
clock passes every deadline. An echo application answers each request with
its method, target, and its body's length and CRC-32; ASGI or WSGI, by the
input's CRC. What must hold:

- **Nothing escapes**: no exception out of the driver, none from the
  application, no task left behind.
- **Framing**: what the driver wrote reads, with h11's client, as exactly one
  response per request the parser accepts (1xx interim responses aside), in
  order, each framed as its request asks (no body for HEAD) and each
  answering its own request; then, if the parser refuses the stream or it
  ends in the middle of a request, one refusal with `Connection: close`
  (408 is not expected: the clock moves only after the FIN); nothing after.
  A body that spilled into the next response, a response for the wrong
  request, a refusal sent in the middle of a response: each shows here.
- **The end**: once the FIN and every deadline have passed, the connection
  is closed.
"""

from __future__ import annotations

import asyncio
import random
import zlib
from typing import Any

import h11

from fuzz.finding import Finding
from fuzz.generate import DEFAULT
from fuzz.oracles import REFUSALS, Outcome, parse
from twincorn.testing import FakeWorker

#: Enough seconds to pass every deadline of the default timeouts.
_FOREVER = 3600.0


def _answer(method: str, target: bytes, body: bytes) -> bytes:
    return b"%s %s %d %08x" % (method.encode(), target, len(body), zlib.crc32(body))


async def asgi_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    query = scope["query_string"]
    target = scope["raw_path"] + (b"?" + query if query else b"")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": _answer(scope["method"], target, body)})


def wsgi_echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    query = environ["QUERY_STRING"].encode("latin-1")
    path = environ["PATH_INFO"].encode("latin-1")
    start_response("200 OK", [])
    return [_answer(environ["REQUEST_METHOD"], path + (b"?" + query if query else b""), body)]


_WORKERS: dict[str, FakeWorker] = {}
_ERRORS: list[str] = []


def _worker(interface: str) -> FakeWorker:
    """One fake worker per interface and process, reused input after input."""
    worker = _WORKERS.get(interface)
    if worker is None:
        app = asgi_echo if interface == "asgi" else wsgi_echo
        worker = _WORKERS[interface] = FakeWorker(app, interface)
        worker.loop.set_exception_handler(lambda loop, context: _ERRORS.append(
            str(context.get("exception") or context.get("message"))))
    return worker


def expected_targets(outcome: Outcome, interface: str) -> list[tuple[str, bytes, bytes]]:
    """(method, target as the app reports it, body) of each complete request."""
    out = []
    for seen in outcome.seen:
        if not seen.complete:
            break
        r = seen.request
        path = r.path
        if interface == "wsgi":
            path = _unquote(path)
        target = path + (b"?" + r.query if r.query else b"")
        out.append((r.method, target, bytes(seen.body)))
    return out


def _unquote(path: bytes) -> bytes:
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(path) if b"%" in path else path


def check_driver(data: bytes) -> None:
    crc = zlib.crc32(data)
    interface = "asgi" if crc & 1 else "wsgi"
    outcome = parse([data], DEFAULT)  # what the parser alone makes of it
    worker = _worker(interface)
    rng = random.Random(crc)
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 6)))) \
        if len(data) > 1 else []
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    link = worker.connect()
    try:
        link.send_pieces(pieces)
        link.fin()
        worker.run(20)
        worker.advance(_FOREVER)
        worker.run(20)
        written = link.data
        closed = link.closed
    except Exception as exc:
        raise Finding("driver-exception", f"{type(exc).__name__}: {exc}") from exc
    finally:
        link.lose()
    if _ERRORS:
        errors = list(_ERRORS)
        _ERRORS.clear()
        raise Finding("driver-exception", f"on the loop: {errors[0]}")
    left = [t for t in asyncio.all_tasks(worker.loop) if not t.done()]
    if left:
        for task in left:
            task.cancel()
        worker.run()
        raise Finding("driver-hang", f"{len(left)} task(s) left after the connection ended")
    if not closed:
        raise Finding("driver-hang", "the connection is still open after the FIN and deadlines")
    check_responses(written, outcome, interface)


def check_responses(written: bytes, outcome: Outcome, interface: str) -> None:
    """The framing oracle: h11's client reads `written` request by request."""
    expected = expected_targets(outcome, interface)
    client = h11.Connection(h11.CLIENT)
    client.receive_data(written)
    client.receive_data(b"")  # the server closed: the end of the bytes
    ended_early = outcome.error is not None or (
        outcome.seen and not outcome.seen[-1].complete) or _cut_in_head(outcome)
    for index, (method, target, body) in enumerate(expected):
        status, answer, close = _one_response(client, method)
        if status != 200:
            raise Finding("driver-framing", f"response {index}: status {status}, not 200")
        if method not in ("HEAD", "CONNECT") and answer != _answer(method, target, body):
            raise Finding("driver-framing", f"response {index} answers another request: "
                          f"{answer[:80]!r}")
        if close and index < len(expected) - 1:
            raise Finding("driver-framing", f"response {index} closed before the rest")
    if ended_early:
        status, _, close = _one_response(client, "GET")
        if status not in REFUSALS:
            raise Finding("driver-framing", f"the refusal is a {status}")
        if not close:
            raise Finding("driver-framing", "a refusal without Connection: close")
    try:
        event = client.next_event()
    except h11.RemoteProtocolError as exc:
        raise Finding("driver-framing", f"bytes after the last response: {exc}") from None
    if event is not h11.NEED_DATA and event is not h11.PAUSED and \
            not isinstance(event, h11.ConnectionClosed):
        raise Finding("driver-framing", f"more after the last response: {event!r}")


def _cut_in_head(outcome: Outcome) -> bool:
    from twincorn.http.parser import ParserState

    return outcome.error is None and outcome.state is ParserState.HEAD


def _one_response(client: h11.Connection, method: str) -> tuple[int, bytes, bool]:
    """Send (on paper) a request with `method`, read its response: (status,
    body, it said close). A response that is not whole is a finding."""
    if client.our_state is h11.DONE and client.their_state is h11.DONE:
        client.start_next_cycle()
    if client.our_state is not h11.IDLE:
        raise Finding("driver-framing", "a response expected after the connection's last")
    client.send(h11.Request(method=method, target="/", headers=[("Host", "t")]))
    client.send(h11.EndOfMessage())
    status, body, close = 0, b"", False
    while True:
        try:
            event = client.next_event()
        except h11.RemoteProtocolError as exc:
            raise Finding("driver-framing", f"h11 cannot read the response: {exc}") from None
        if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
            raise Finding("driver-framing", "a response missing or cut short")
        if event is h11.PAUSED:  # a 2xx to CONNECT: what follows is the tunnel's
            return status, body, True
        if isinstance(event, h11.Response):
            status = event.status_code
            close = any(n == b"connection" and b"close" in v.lower() for n, v in event.headers)
        elif isinstance(event, h11.Data):
            body += bytes(event.data)
        elif isinstance(event, h11.EndOfMessage):
            return status, body, close
