"""The proxy-header rules (src/twincorn/http/forwarded.py), fed headers:
valid, hostile and malformed; and fed anything at all (hypothesis)."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twincorn.http.forwarded import Forwarded, ProxyHeaders
from twincorn.trusted import TrustedPeers

PEER = ("127.0.0.1", 50000)
SERVER = ("127.0.0.1", 8000)
PROXY = ProxyHeaders(TrustedPeers("127.0.0.1,::1,unix,10.0.0.0/8"))


def resolve(*headers: tuple[str, str], host: str | None = "app.test",
            peer: tuple[str, int] | None = PEER, scheme: str = "http",
            proxy: ProxyHeaders = PROXY) -> Forwarded | None:
    pairs = [(name.lower().encode(), value.encode("latin-1")) for name, value in headers]
    return proxy.resolve(pairs, peer, scheme, SERVER, None if host is None else host.encode())


def client(*headers: tuple[str, str], **kwargs: object) -> tuple[str, int] | None:
    view = resolve(*headers, **kwargs)  # type: ignore[arg-type]
    assert view is not None
    return view.client


# -- nothing said ------------------------------------------------------------------


def test_no_proxy_header_no_view() -> None:
    assert resolve(("Host", "app.test"), ("X-Forwarded", "1.2.3.4"), ("Via", "1.1 nginx")) is None
    assert resolve() is None


def test_trusts_judges_the_peer_and_unix_sockets() -> None:
    assert PROXY.trusts(("127.0.0.1", 1)) and PROXY.trusts(("10.1.2.3", 1))
    assert PROXY.trusts(None)  # a unix: socket's peer, "unix" in the list
    assert not PROXY.trusts(("192.0.2.1", 1))
    assert not ProxyHeaders(TrustedPeers("127.0.0.1")).trusts(None)


# -- X-Forwarded-For ---------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("192.0.2.1", ("192.0.2.1", 0)),
    ("192.0.2.1:4711", ("192.0.2.1", 4711)),
    ("2001:db8::1", ("2001:db8::1", 0)),
    ("[2001:DB8:0::1]:4711", ("2001:db8::1", 4711)),  # normalised
    ("  192.0.2.1  ", ("192.0.2.1", 0)),
    ("192.0.2.1, 10.0.0.2", ("192.0.2.1", 0)),  # a trusted proxy skipped
    ("192.0.2.1, 10.0.0.2, 127.0.0.1", ("192.0.2.1", 0)),
    ("198.51.100.7, 192.0.2.1, 10.0.0.2", ("192.0.2.1", 0)),  # the first untrusted from the right
    ("10.0.0.3, 10.0.0.2", ("10.0.0.3", 0)),  # every hop trusted: the leftmost
    ("192.0.2.1,,10.0.0.2,", ("192.0.2.1", 0)),  # empty list elements (RFC 9110 s5.6.1)
])
def test_x_forwarded_for(value: str, expected: tuple[str, int]) -> None:
    assert client(("X-Forwarded-For", value)) == expected


def test_a_prepended_entry_never_becomes_the_client() -> None:
    # The client sent "X-Forwarded-For: 1.2.3.4"; nginx appended its peer.
    assert client(("X-Forwarded-For", "1.2.3.4, 203.0.113.9")) == ("203.0.113.9", 0)
    # A client posing as one of our proxies gains nothing either.
    assert client(("X-Forwarded-For", "1.2.3.4, 10.0.0.5, 203.0.113.9")) == ("203.0.113.9", 0)


def test_several_x_forwarded_for_lines_are_one_list() -> None:
    assert client(("X-Forwarded-For", "198.51.100.7, 192.0.2.1"),
                  ("X-Forwarded-For", "10.0.0.2")) == ("192.0.2.1", 0)
    assert client(("X-Forwarded-For", "192.0.2.1"),
                  ("X-Forwarded-For", "198.51.100.7")) == ("198.51.100.7", 0)


@pytest.mark.parametrize("value", [
    "unknown", "garbage", "1.2.3", "256.1.1.1", "1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4:x",
    "[1.2.3.4]:80", "[2001:db8::1", "[2001:db8::1]x", "01.2.3.4", "1.2.3.4 5.6.7.8",
    "_hidden", "\xb2.2.3.4", "1.2.3.4:8\xb2",
])
def test_a_malformed_x_forwarded_for_is_ignored(value: str, caplog: pytest.LogCaptureFixture
                                                 ) -> None:
    with caplog.at_level(logging.DEBUG, "twincorn.error"):
        assert resolve(("X-Forwarded-For", f"{value}, 10.0.0.2")) is None
    assert "X-Forwarded-For ignored" in caplog.text
    # ... that field only: the scheme still stands.
    view = resolve(("X-Forwarded-For", value), ("X-Forwarded-Proto", "https"))
    assert view is not None and view.client == PEER and view.scheme == "https"


def test_garbage_left_of_the_client_is_never_read() -> None:
    assert client(("X-Forwarded-For", "garbage, 192.0.2.1")) == ("192.0.2.1", 0)


# -- X-Forwarded-Proto, -Host, -Port -----------------------------------------------


@pytest.mark.parametrize(("value", "scheme"), [
    ("https", "https"), ("HTTPS", "https"), ("http", "http"), ("wss", "https"), ("WS", "http"),
    ("http, https", "https"),  # a list: the last, the proxy nearest us
])
def test_x_forwarded_proto(value: str, scheme: str) -> None:
    view = resolve(("X-Forwarded-Proto", value))
    assert view is not None and view.scheme == scheme
    assert view.client == PEER and view.server == SERVER and view.host is None


def test_a_list_as_long_as_x_forwarded_for_is_read_at_the_client() -> None:
    view = resolve(("X-Forwarded-For", "192.0.2.1, 10.0.0.2"),
                   ("X-Forwarded-Proto", "https, http"))
    assert view is not None and view.scheme == "https"
    view = resolve(("X-Forwarded-For", "192.0.2.1, 10.0.0.2, 10.0.0.3"),
                   ("X-Forwarded-Proto", "https, http"))
    assert view is not None and view.scheme == "http"  # not aligned: the last


@pytest.mark.parametrize("value", ["ftp", "javascript", "https:", "", "h ttps", "httpss"])
def test_other_schemes_are_ignored(value: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, "twincorn.error"):
        assert resolve(("X-Forwarded-Proto", value)) is None
    if value:
        assert "X-Forwarded-Proto ignored" in caplog.text
    view = resolve(("X-Forwarded-Proto", value), scheme="https")
    assert view is None or view.scheme == "https"


def test_x_forwarded_host_sets_the_server_and_the_host() -> None:
    view = resolve(("X-Forwarded-Host", "Example.COM"), ("X-Forwarded-Proto", "https"))
    assert view == Forwarded(PEER, "https", ("example.com", 443), b"example.com")
    view = resolve(("X-Forwarded-Host", "example.com:8443"))
    assert view == Forwarded(PEER, "http", ("example.com", 8443), b"example.com:8443")
    view = resolve(("X-Forwarded-Host", "[2001:db8::1]"), ("X-Forwarded-Port", "8080"))
    assert view == Forwarded(PEER, "http", ("2001:db8::1", 8080), b"[2001:db8::1]:8080")
    view = resolve(("X-Forwarded-Host", "example.com:443"), ("X-Forwarded-Proto", "https"))
    assert view is not None and view.host == b"example.com"  # the default port left out


def test_x_forwarded_port_alone_moves_the_port_of_the_host() -> None:
    view = resolve(("X-Forwarded-Port", "8443"), host="app.test:8000")
    assert view == Forwarded(PEER, "http", ("app.test", 8443), b"app.test:8443")
    view = resolve(("X-Forwarded-Port", "443"), ("X-Forwarded-Proto", "https"))
    assert view == Forwarded(PEER, "https", ("app.test", 443), b"app.test")
    view = resolve(("X-Forwarded-Port", "8443"), host=None)  # HTTP/1.0, no Host
    assert view == Forwarded(PEER, "http", ("127.0.0.1", 8443), None)


@pytest.mark.parametrize("value", [
    "evil.com/path", "a b", "user@evil.com", "evil.com:99999", "evil.com:x", "[::g]",
    "[2001:db8::1", "", "evil.com:", "évil.com",
])
def test_a_malformed_host_is_ignored(value: str) -> None:
    view = resolve(("X-Forwarded-Host", value), ("X-Forwarded-Proto", "https"))
    assert view is not None and view.host is None and view.server == SERVER


@pytest.mark.parametrize("value", ["0", "65536", "-1", "80a", "", "1e3", "8\xb2"])
def test_a_malformed_port_is_ignored(value: str) -> None:
    assert resolve(("X-Forwarded-Port", value)) is None


# -- Forwarded (RFC 7239) ----------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("for=192.0.2.60", ("192.0.2.60", 0)),
    ('for="192.0.2.60:4711"', ("192.0.2.60", 4711)),
    ('For="[2001:db8:cafe::17]:4711"', ("2001:db8:cafe::17", 4711)),
    ('for="[2001:db8:cafe::17]"', ("2001:db8:cafe::17", 0)),
    ("for=192.0.2.43, for=10.0.0.2", ("192.0.2.43", 0)),
    ("for=198.51.100.17;by=203.0.113.60;proto=http;host=example.com", ("198.51.100.17", 0)),
    ("for=1.2.3.4, for=192.0.2.43, for=10.0.0.2", ("192.0.2.43", 0)),
    ("for=10.0.0.3,for=10.0.0.2", ("10.0.0.3", 0)),  # all trusted: the leftmost
    ('for="_gazonk:_port"', None),
    ("for=_hidden", None),  # obfuscated: no address
    ("for=unknown", None),
    ("for=UNKNOWN, for=10.0.0.2", None),
    ("for=192.0.2.1, proto=https", None),  # the last element has no for: unknown
    (r'for="\1\9\2.0.2.1"', ("192.0.2.1", 0)),  # quoted-pair (RFC 9110 s5.6.4)
    ("for=192.0.2.1;ext=whatever", ("192.0.2.1", 0)),  # extensions ignored
    ("  for=192.0.2.1 ;  proto=https ,  ", ("192.0.2.1", 0)),
])
def test_forwarded_for(value: str, expected: tuple[str, int] | None) -> None:
    assert client(("Forwarded", value)) == expected


def test_forwarded_proto_and_host_come_from_the_clients_element() -> None:
    view = resolve(("Forwarded", 'for=192.0.2.1;proto=https;host="example.com:8443", '
                                 "for=10.0.0.2;proto=http;host=inner"))
    assert view == Forwarded(("192.0.2.1", 0), "https", ("example.com", 8443),
                             b"example.com:8443")
    view = resolve(("Forwarded", "proto=https;host=example.com"))  # no for anywhere
    assert view == Forwarded(PEER, "https", ("example.com", 443), b"example.com")


def test_several_forwarded_lines_are_one_list() -> None:
    assert client(("Forwarded", "for=198.51.100.7"), ("Forwarded", "for=192.0.2.1"),
                  ("Forwarded", "for=10.0.0.2")) == ("192.0.2.1", 0)


@pytest.mark.parametrize("value", [
    'for="192.0.2.1', "for=192.0.2.1;for=192.0.2.2",  # unterminated; a name twice
    "for", "for=", "=1", "for=192.0.2.1 proto=https", "for=[2001:db8::1]",  # unquoted "["
    'for="2001:db8::1"',  # IPv6 without brackets
    'for="[192.0.2.1]"', 'for="192.0.2.1:0"', 'for="[2001:db8::1]x"', "for=garbage",
    'for="192.0.2.1:99999"', "host=example.com:8443",  # ":" must be quoted
])
def test_a_malformed_forwarded_is_ignored_whole(value: str, caplog: pytest.LogCaptureFixture
                                                ) -> None:
    with caplog.at_level(logging.DEBUG, "twincorn.error"):
        assert resolve(("Forwarded", f"{value};proto=https")) is None
    assert "Forwarded ignored" in caplog.text


def test_a_bad_proto_or_host_in_forwarded_drops_that_parameter() -> None:
    view = resolve(("Forwarded", 'for=192.0.2.1;proto=gopher;host="a b"'))
    assert view == Forwarded(("192.0.2.1", 0), "http", SERVER, None)


# -- both families -----------------------------------------------------------------


def test_x_forwarded_wins_whole_over_forwarded() -> None:
    # nginx appends X-Forwarded-For and passes the client's Forwarded on.
    view = resolve(("Forwarded", "for=1.2.3.4;proto=https;host=evil.example"),
                   ("X-Forwarded-For", "203.0.113.9"))
    assert view == Forwarded(("203.0.113.9", 0), "http", SERVER, None)
    # A malformed X-Forwarded-For does not let Forwarded in.
    assert resolve(("Forwarded", "for=1.2.3.4"), ("X-Forwarded-For", "bogus")) is None


def test_the_connection_scheme_stands_unless_told() -> None:
    view = resolve(("X-Forwarded-For", "192.0.2.1"), scheme="https")
    assert view is not None and view.scheme == "https"


def test_a_unix_peer_behind_a_proxy() -> None:
    view = resolve(("X-Forwarded-Proto", "https"), peer=None)
    assert view == Forwarded(None, "https", SERVER, None)
    assert client(("X-Forwarded-For", "192.0.2.1"), peer=None) == ("192.0.2.1", 0)


# -- the Host handed to ASGI apps --------------------------------------------------


def test_headers_replace_the_host_and_keep_the_rest() -> None:
    headers = [(b"host", b"127.0.0.1:8000"), (b"x-forwarded-host", b"example.com")]
    view = Forwarded(PEER, "https", ("example.com", 443), b"example.com")
    assert view.headers(headers) == [(b"host", b"example.com"),
                                     (b"x-forwarded-host", b"example.com")]
    assert headers[0] == (b"host", b"127.0.0.1:8000")  # a new list
    assert view.headers([]) == [(b"host", b"example.com")]
    unchanged = Forwarded(PEER, "https", SERVER, None)
    assert unchanged.headers(headers) is headers


# -- never raises ------------------------------------------------------------------

_NAMES = st.sampled_from([b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host",
                          b"x-forwarded-port", b"forwarded", b"host"])
_PIECES = st.sampled_from(["for=", "proto=", "host=", '"', "\\", ";", ",", ":", "[", "]", " ",
                           "_x", "unknown", "127.0.0.1", "::1", "10.0.0.2", "192.0.2.1",
                           "2001:db8::1", "https", "wss", "65535", "0", "\x00", "\xff", "%"])
_VALUES = st.one_of(st.binary(max_size=40),
                    st.lists(_PIECES, max_size=12).map(lambda p: "".join(p).encode("latin-1")))


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.tuples(_NAMES, _VALUES), max_size=6),
       st.sampled_from([PEER, None, ("::1", 1)]), st.sampled_from(["http", "https"]),
       st.one_of(st.none(), st.binary(max_size=20)))
def test_never_raises(headers: list[tuple[bytes, bytes]], peer: tuple[str, int] | None,
                      scheme: str, host: bytes | None) -> None:
    view = PROXY.resolve(headers, peer, scheme, SERVER, host)
    if view is not None:
        assert view.scheme in ("http", "https")
        assert view.client is None or (isinstance(view.client[0], str)
                                       and 0 <= view.client[1] <= 65535)
        assert view.server is None or 0 < view.server[1] <= 65535 or view.server == SERVER
        assert view.host is None or (b"\r" not in view.host and b"\n" not in view.host)
        view.headers(headers)
