"""Trusted proxy headers through the driver (src/twincorn/testing.py's
fakes): what reaches the ASGI and WebSocket scopes, the WSGI environ and
the access log, from a trusted peer, from an untrusted one (spoofing), and
with --no-proxy-headers."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from corpus_cases import get_case
from twincorn.asgi_websocket import WebSocketOptions
from twincorn.http.forwarded import ProxyHeaders
from twincorn.logs import access_logger
from twincorn.testing import FakeWorker, fake_worker
from twincorn.trusted import DEFAULT, TrustedPeers
from twincorn.ws.core import Limits, opener

SEEN: list[dict[str, Any]] = []
NGINX = ("127.0.0.1", 41000)  # a trusted proxy on the loopback
STRANGER = ("203.0.113.9", 52000)  # a client straight from the internet
FORGED = ("X-Forwarded-For: 1.2.3.4", "X-Forwarded-Proto: https",
          "X-Forwarded-Host: evil.example", "X-Forwarded-Port: 444",
          'Forwarded: for=5.6.7.8;proto=https;host="evil.example:445"')


def get(*headers: str, path: str = "/", host: str = "app.test:8000") -> bytes:
    return "\r\n".join([f"GET {path} HTTP/1.1", f"Host: {host}", *headers, "", ""]).encode()


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    SEEN.append(scope)
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.close"})  # refused: 403, the scope is what counts
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    SEEN.append(dict(environ))
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


def worker(interface: str, spec: str | None = DEFAULT, **settings: Any) -> FakeWorker:
    SEEN.clear()
    app = asgi_app if interface == "asgi" else wsgi_app
    proxy = None if spec is None else ProxyHeaders(TrustedPeers(spec))
    ws = WebSocketOptions(backend="websockets", open=opener("websockets"), limits=Limits())
    return FakeWorker(app, interface, ws=ws if interface == "asgi" else None,
                      proxy_headers=proxy, **settings)


@pytest.fixture
def asgi() -> Iterator[FakeWorker]:
    w = worker("asgi")
    yield w
    w.close()


@pytest.fixture
def wsgi() -> Iterator[FakeWorker]:
    w = worker("wsgi")
    yield w
    w.close()


def served(w: FakeWorker, data: bytes, peer: Any = NGINX) -> dict[str, Any]:
    link = w.connect(peer=peer)
    link.send(data)
    w.run()
    assert link.statuses() == [200], link.data
    return SEEN[-1]


# -- ASGI --------------------------------------------------------------------------


def test_asgi_scope_from_a_trusted_proxy(asgi: FakeWorker) -> None:
    scope = served(asgi, get("X-Forwarded-For: 1.2.3.4, 192.0.2.7", "X-Forwarded-Proto: https",
                             "X-Forwarded-Host: example.com"))
    assert scope["client"] == ("192.0.2.7", 0)
    assert scope["scheme"] == "https"
    assert scope["server"] == ("example.com", 443)
    headers = dict(scope["headers"])
    assert headers[b"host"] == b"example.com"
    assert headers[b"x-forwarded-for"] == b"1.2.3.4, 192.0.2.7"  # passed on, as sent


def test_asgi_scope_per_request_on_one_connection(asgi: FakeWorker) -> None:
    link = asgi.connect(peer=NGINX)
    link.send(get("X-Forwarded-For: 192.0.2.1") + get() + get("X-Forwarded-For: 192.0.2.3"))
    asgi.run()
    assert link.statuses() == [200, 200, 200]
    assert [s["client"] for s in SEEN] == [("192.0.2.1", 0), NGINX, ("192.0.2.3", 0)]


@pytest.mark.parametrize("peer", [STRANGER, ("::ffff:203.0.113.9", 52000), ("10.0.0.1", 1)])
def test_asgi_an_untrusted_peer_changes_nothing(asgi: FakeWorker, peer: tuple[str, int]) -> None:
    data = get(*FORGED)
    scope = served(asgi, data, peer)
    assert scope["client"] == peer
    assert scope["scheme"] == "http"
    assert scope["server"] == ("127.0.0.1", 8000)
    sent = [tuple(line.split(b": ", 1)) for line in data.split(b"\r\n")[1:] if b": " in line]
    assert [(k.lower(), v) for k, v in sent] == scope["headers"]  # as today: untouched


def test_asgi_a_prepended_entry_never_becomes_the_client(asgi: FakeWorker) -> None:
    # nginx appends the address it saw to what the client sent.
    scope = served(asgi, get("X-Forwarded-For: 127.0.0.1, 1.2.3.4, 203.0.113.9"))
    assert scope["client"] == ("203.0.113.9", 0)


def test_asgi_a_unix_socket_peer_is_trusted_by_default(asgi: FakeWorker) -> None:
    scope = served(asgi, get("X-Forwarded-For: 192.0.2.1", "X-Forwarded-Proto: https"),
                   peer="")  # a unix: socket's peername
    assert scope["client"] == ("192.0.2.1", 0) and scope["scheme"] == "https"


def test_asgi_no_proxy_headers() -> None:
    w = worker("asgi", spec=None)
    try:
        scope = served(w, get(*FORGED))
        assert scope["client"] == NGINX and scope["scheme"] == "http"
    finally:
        w.close()


def test_asgi_the_peer_hid_the_client(asgi: FakeWorker) -> None:
    scope = served(asgi, get("Forwarded: for=_hidden;proto=https"))
    assert scope["client"] is None and scope["scheme"] == "https"


def test_websocket_scope(asgi: FakeWorker) -> None:
    handshake = ("Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")
    for forwarded, peer, scheme, client in [
        (("X-Forwarded-Proto: https", "X-Forwarded-For: 192.0.2.1"), NGINX, "wss",
         ("192.0.2.1", 0)),
        (("X-Forwarded-Proto: http",), NGINX, "ws", NGINX),
        (("X-Forwarded-Proto: wss", "X-Forwarded-For: 192.0.2.1"), STRANGER, "ws", STRANGER),
    ]:
        link = asgi.connect(peer=peer)
        link.send(get(*handshake, *forwarded, "X-Forwarded-Host: example.com", path="/ws"))
        asgi.run()
        scope = SEEN[-1]
        assert scope["type"] == "websocket"
        assert (scope["scheme"], scope["client"]) == (scheme, client)
        host = dict(scope["headers"])[b"host"]
        assert host == (b"example.com" if peer is NGINX else b"app.test:8000")


# -- WSGI --------------------------------------------------------------------------


def test_wsgi_environ_from_a_trusted_proxy(wsgi: FakeWorker) -> None:
    env = served(wsgi, get('Forwarded: for="[2001:db8::7]:4711";proto=https;'
                           'host="example.com:8443"'))
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("2001:db8::7", "4711")
    assert env["wsgi.url_scheme"] == "https"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.com", "8443")
    assert env["HTTP_HOST"] == "example.com:8443"
    assert env["HTTP_FORWARDED"].startswith("for=")


def test_wsgi_a_client_without_a_port_has_no_remote_port(wsgi: FakeWorker) -> None:
    env = served(wsgi, get("X-Forwarded-For: 192.0.2.1", "X-Forwarded-Port: 443",
                           "X-Forwarded-Proto: https"))
    assert env["REMOTE_ADDR"] == "192.0.2.1" and "REMOTE_PORT" not in env
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("app.test", "443")
    assert env["HTTP_HOST"] == "app.test"
    env = served(wsgi, get("Forwarded: for=unknown"))
    assert "REMOTE_ADDR" not in env and "REMOTE_PORT" not in env


def test_wsgi_per_request_on_one_connection(wsgi: FakeWorker) -> None:
    link = wsgi.connect(peer=NGINX)
    link.send(get("X-Forwarded-For: 192.0.2.1", "X-Forwarded-Proto: https") + get())
    wsgi.run()
    assert link.statuses() == [200, 200]
    first, second = SEEN
    assert (first["REMOTE_ADDR"], first["wsgi.url_scheme"]) == ("192.0.2.1", "https")
    assert (second["REMOTE_ADDR"], second["REMOTE_PORT"]) == ("127.0.0.1", "41000")
    assert second["wsgi.url_scheme"] == "http" and second["HTTP_HOST"] == "app.test:8000"


def test_wsgi_an_untrusted_peer_changes_nothing(wsgi: FakeWorker) -> None:
    env = served(wsgi, get(*FORGED), STRANGER)
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("203.0.113.9", "52000")
    assert env["wsgi.url_scheme"] == "http"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("127.0.0.1", "8000")
    assert env["HTTP_HOST"] == "app.test:8000"
    assert env["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"  # passed on as a header


def test_wsgi_malformed_headers_are_ignored_not_fatal(wsgi: FakeWorker,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, "twincorn.error"):
        env = served(wsgi, get("X-Forwarded-For: <script>", "X-Forwarded-Proto: gopher",
                               "X-Forwarded-Host: a/b"))
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["wsgi.url_scheme"] == "http"
    assert "X-Forwarded-For ignored" in caplog.text


def test_corpus_case_019_gets_https() -> None:
    """gunicorn refuses X-Forwarded-Proto: https with X-Forwarded-Ssl: off
    (secure_scheme_headers disagree); twincorn reads X-Forwarded-Proto only."""
    case = get_case("invalid/019")
    for interface in ("asgi", "wsgi"):
        w = worker(interface, case.gunicorn_settings["forwarded_allow_ips"])
        try:
            link = w.connect(peer=STRANGER)  # "*": every peer is trusted
            link.send(case.data.replace(b"\r\n\r\n", b"\r\nHost: t\r\n\r\n", 1))
            w.run()
            assert link.statuses() == [200]
            seen = SEEN[-1]
            assert seen.get("scheme", seen.get("wsgi.url_scheme")) == "https"
        finally:
            w.close()


# -- the access log ----------------------------------------------------------------


@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
def test_access_log_h(interface: str, caplog: pytest.LogCaptureFixture) -> None:
    with fake_worker(wsgi_app if interface == "wsgi" else asgi_app, interface,
                     proxy_headers=ProxyHeaders(TrustedPeers()),
                     access_log=access_logger("%(h)s %(s)s")) as w, \
            caplog.at_level(logging.INFO, "twincorn.access"):
        link = w.connect(peer=NGINX)
        link.send(get("X-Forwarded-For: 192.0.2.1") + get() + get("Forwarded: for=_x"))
        w.connect(peer=STRANGER).send(get("X-Forwarded-For: 192.0.2.1"))
        w.run()
    lines = [r.getMessage() for r in caplog.records if r.name == "twincorn.access"]
    assert lines == ["192.0.2.1 200", "127.0.0.1 200", "- 200", "203.0.113.9 200"]


def test_a_proxy_protocol_client_is_judged_as_the_client() -> None:
    """HAProxy (trusted for both) sends a PROXY header naming a client from
    the internet: that client's own X-Forwarded-For is then not believed
    (trust is judged again once the PROXY header replaced the peer); a
    PROXY header naming a trusted proxy (nginx behind HAProxy) is."""
    proxy = ProxyHeaders(TrustedPeers(DEFAULT))
    with fake_worker(asgi_app, "asgi", proxy_headers=proxy,
                     proxy_peers=TrustedPeers(DEFAULT)) as w:
        SEEN.clear()
        for named, expected in (("203.0.113.9", ("203.0.113.9", 52000)),
                                ("127.0.0.1", ("192.0.2.7", 0))):
            link = w.connect(peer=NGINX)
            link.send(f"PROXY TCP4 {named} 127.0.0.1 52000 8000\r\n".encode()
                      + get("X-Forwarded-For: 192.0.2.7"))
            w.run()
            assert link.statuses() == [200]
            assert SEEN[-1]["client"] == expected
