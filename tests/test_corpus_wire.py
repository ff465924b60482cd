"""The request corpus over a real socket, against the WSGI and the ASGI echo app.

Each case follows the corpus README: connect, send the bytes, shut down the
write side, read until the server closes (with a timeout), split the
responses. A valid case gets one 200 per request, in order, whose echo
matches; an invalid one gets no 2xx at all, a refusal (4xx, 501 or 505)
with `Connection: close`, and the close. A hang, a 5xx or a close without a
status line fails. Where twincorn's policy differs from the corpus
(gunicorn's), corpus_cases.py says how and why; those cases are counted
apart in the summary printed at the end of the module.

One server is started per (interface, settings) and kept for the module.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

import pytest

from apps import _wsgi_echo, asgi_echo, wsgi_echo
from corpus_cases import (
    ACCEPTED_BY_POLICY,
    INCOMPLETE,
    LIMIT_ACCOUNTING,
    PROXY_HEADER_REQUIRED,
    REFUSAL_STATUSES,
    REFUSED_BY_POLICY,
    UNDERSCORED_KEPT,
    Case,
    Expected,
    case_names,
    fold_blind,
    get_case,
    no_host_cases,
    split_underscored,
    upper_headers,
)
from support import Response, RunningServer, exchange, parse_responses

INTERFACES = ("wsgi", "asgi")
TIMEOUT = 5.0  # seconds to wait for the server to close; longer is a hang

GetServer = Callable[[str, dict[str, Any]], RunningServer]


def corpus_wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """The WSGI echo app, checked by wsgiref.validate where it can be.

    The validator knows neither CONNECT (its warning is an error under
    filterwarnings=error) nor asterisk-form: it wants PATH_INFO empty or
    starting with "/", and OPTIONS * gives "*" (as under gunicorn).
    """
    if environ["REQUEST_METHOD"] == "CONNECT" or environ["PATH_INFO"] == "*":
        return _wsgi_echo(environ, start_response)
    return wsgi_echo(environ, start_response)


APPS: dict[str, Callable[..., Any]] = {"wsgi": corpus_wsgi, "asgi": asgi_echo}

#: Outcomes per interface, printed when the module ends.
SUMMARY: dict[str, Counter[str]] = {interface: Counter() for interface in INTERFACES}


@pytest.fixture(scope="module")
def server_for(request: pytest.FixtureRequest) -> Iterator[GetServer]:
    servers: dict[tuple[str, tuple[tuple[str, Any], ...]], RunningServer] = {}

    def get(interface: str, settings: dict[str, Any]) -> RunningServer:
        key = (interface, tuple(sorted(settings.items())))
        if key not in servers:
            servers[key] = RunningServer(APPS[interface], interface=interface, **settings).start()
        return servers[key]

    yield get
    for server in servers.values():
        server.stop()
    report_summary(request.config)


def report_summary(config: pytest.Config) -> None:
    if not any(SUMMARY.values()):
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():  # as capsys.disabled() does
        reporter.write_line("")
        reporter.write_line("HTTP/1.x corpus over the wire (gunicorn's expectations):")
        for interface, counts in SUMMARY.items():
            shown = ", ".join(f"{what} {n}" for what, n in sorted(counts.items()))
            reporter.write_line(f"  {interface}: {shown}")


@pytest.fixture(params=INTERFACES)
def interface(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- sending a case, reading what comes back -------------------------------------


def send(server: RunningServer, data: bytes) -> list[Response]:
    """Send, half-close, read until the close: the complete responses."""
    raw = exchange(server.port, data, timeout=TIMEOUT)  # TimeoutError: a hang
    assert raw, "the connection was closed without a status line"
    responses = parse_responses(raw)
    assert responses and all(r.complete for r in responses), f"not whole responses: {raw[:300]!r}"
    for response in responses:
        # 501 and 505 are refusals of the request; any other 5xx a failure.
        assert response.status < 500 or response.status in REFUSAL_STATUSES, raw[:300]
    return responses


def closed_with_nothing(server: RunningServer, data: bytes) -> None:
    """A PROXY header refused: the server closes and writes nothing (with
    our bytes unread, the kernel may make the close a reset)."""
    try:
        raw = exchange(server.port, data, timeout=TIMEOUT)  # TimeoutError: a hang
    except ConnectionResetError:
        raw = b""
    assert raw == b"", raw[:300]


def refusal(responses: list[Response]) -> Response:
    """The last response: a refusal (4xx, 501, 505) that closes the connection."""
    last = responses[-1]
    assert last.status in REFUSAL_STATUSES, (last.status, last.body)
    assert last.header(b"connection") == b"close"
    return last


def check_echo(interface: str, case: Case, response: Response, expected: Expected) -> None:
    assert response.status == 200, (response.status, response.body)
    seen = json.loads(response.body)
    assert seen["method"] == expected.method
    assert seen["version"] == expected.version
    assert seen["query"] == expected.query
    assert base64.b64decode(seen["body_base64"]) == expected.body
    if interface == "asgi":
        # raw_path and query_string are the target's own bytes (less any
        # fragment); path is decoded.
        assert seen["raw_path"] == expected.twincorn_path
        assert seen["path"] == unquote(expected.twincorn_path)
        plain, underscored = split_underscored(upper_headers(seen["headers"]))
        assert fold_blind(case, plain) == fold_blind(case, list(expected.headers))
        assert underscored == UNDERSCORED_KEPT.get(case.name, [])
    else:
        assert seen["raw_uri"] == expected.target
        path = unquote_to_bytes(expected.twincorn_path).decode("latin-1")
        assert seen["path"] == path
        # Keys come from the environ: no order, duplicates joined with ","
        # and names with "_" dropped (as the corpus, i.e. gunicorn, does).
        got = dict(fold_blind(case, upper_headers(seen["headers"])))
        assert len(got) == len(seen["headers"])
        assert got == dict(fold_blind(case, list(expected.wsgi_headers.items())))


def skip_if_options_missing(case: Case, interface: str | None = None) -> None:
    if case.missing_options:
        if interface is not None:
            SUMMARY[interface]["apart: gunicorn option missing (skipped)"] += 1
        pytest.skip(f"needs gunicorn option(s) twincorn lacks: {', '.join(case.missing_options)}")


# -- every case ------------------------------------------------------------------


@pytest.mark.parametrize("name", case_names())
def test_corpus_case(server_for: GetServer, interface: str, name: str) -> None:
    case = get_case(name)
    skip_if_options_missing(case, interface)
    settings = dict(case.settings)
    if case.kind == "invalid" or case.lacks_host or name in REFUSED_BY_POLICY:
        # gunicorn does not require Host: so that a refusal is for the
        # case's own reason, these run without (test_no_host_* has both).
        settings["require_host"] = False
    if name in LIMIT_ACCOUNTING:
        settings.update(LIMIT_ACCOUNTING[name][0])
    counts = SUMMARY[interface]
    if case.proxy_protocol and (case.kind == "invalid" or name in PROXY_HEADER_REQUIRED):
        closed_with_nothing(server_for(interface, settings), case.data)
        counts["PROXY header refused: closed, nothing written"] += 1
        return
    responses = send(server_for(interface, settings), case.data)

    if name in REFUSED_BY_POLICY:
        assert len(responses) == 1
        last = refusal(responses)
        if name in INCOMPLETE:
            assert (last.status, last.body) == (400, b"400 Bad Request: request body cut short\n")
        counts["apart: valid refused by policy"] += 1
    elif name in ACCEPTED_BY_POLICY:
        assert [r.status for r in responses] == [200]
        counts["apart: invalid accepted by policy"] += 1
    elif case.kind == "invalid":
        assert len(responses) == 1
        last = refusal(responses)
        if name in LIMIT_ACCOUNTING:
            assert last.status == 431
            counts["apart: invalid refused at twincorn's own limit"] += 1
        else:
            counts["invalid refused"] += 1
    else:
        assert len(responses) == len(case.requests), [r.status for r in responses]
        for response, expected in zip(responses, case.requests, strict=True):
            check_echo(interface, case, response, expected)
        if case.lacks_host:
            counts["valid passed (Host-less, with require_host=False)"] += 1
        else:
            counts["valid passed"] += 1


# -- Host: refused by default, echoed with require_host=False ----------------------


@pytest.mark.parametrize("name", no_host_cases())
def test_no_host_refused_by_default(server_for: GetServer, interface: str, name: str) -> None:
    """RFC 9112 s3.2: a Host-less HTTP/1.1 request gets 400 and the close;
    requests before it (HTTP/1.0 ones) are served. Echoed exactly when
    require_host=False: test_corpus_case."""
    case = get_case(name)
    skip_if_options_missing(case)
    responses = send(server_for(interface, dict(case.settings)), case.data)
    good = 0
    while case.requests[good].version != "1.1" or case.requests[good].has_host:
        good += 1
    assert len(responses) == good + 1, [r.status for r in responses]
    for response, expected in zip(responses[:good], case.requests[:good], strict=True):
        check_echo(interface, case, response, expected)
    last = refusal(responses)
    if name not in REFUSED_BY_POLICY:
        assert (last.status, last.body) == (
            400,
            b"400 Bad Request: HTTP/1.1 request without a Host header\n",
        )
    SUMMARY[interface]["no-Host refused by default"] += 1
