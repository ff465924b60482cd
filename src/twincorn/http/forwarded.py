"""What a trusted proxy says about the request it forwards: the client's
address, the scheme, the host it was sent to (--forwarded-allow-ips).

Theory of operation
-------------------
A proxy in front (nginx, a load balancer) opens its own connection to us,
so the socket's peer is the proxy, and its scheme is whatever the proxy
chose (plain HTTP on the loopback, most often). The proxy tells us the
truth in headers, appended to whatever the client sent:

    X-Forwarded-For: <client>, <proxy 1>, <proxy 2>     (each hop appends
                                                         its own peer)
    X-Forwarded-Proto: https     X-Forwarded-Host: example.com
    X-Forwarded-Port: 443
    Forwarded: for=192.0.2.60;proto=https;host=example.com, for=10.0.0.2
                                                        (RFC 7239: one
                                                         element a hop)

Anyone can send these headers, so they are read only from a trusted peer
(the caller, server/protocol.py, judges that once per connection), and the
lists are walked from the right: the rightmost entry was written by our
peer, which we trust; while an entry is itself a trusted proxy, the one
to its left was written by that proxy, and so on. The first entry that
is not a trusted proxy is the client: what a client prepends lies further
left and is never reached. If every entry is trusted, the leftmost is the
client (it connected from one of our own addresses).

The rules where the headers leave a choice (docs/deployment.md says them
to operators):

- Both families present: X-Forwarded-* wins, whole, and Forwarded is not
  read at all. nginx, HAProxy, AWS and Google load balancers, Traefik and
  Envoy all write X-Forwarded-For; nginx passes a client's own Forwarded
  header through untouched unless told otherwise, so believing Forwarded
  there would let any client choose its address. Fields are never mixed
  from the two families (a client's `Forwarded: host=evil` must not ride
  along a proxy's X-Forwarded-For).
- X-Forwarded-Proto, -Host and -Port: one value (nginx's `$scheme`
  replaces the field), or a list. A list as long as X-Forwarded-For is
  read at the client's position (each hop appended its own); any other
  list, at its last entry: what the proxy nearest us wrote.
- Forwarded: the `proto` and `host` of the element whose `for` is the
  client (written by the proxy that received the request from it). An
  obfuscated `for` (`_hidden`) or `unknown` has no address: the client is
  then unknown (None: ASGI's `client` None, no REMOTE_ADDR, `-` in the
  access log), rather than the proxy pretending to be it. An element
  without `for` is unknown too, unless no element has one (the proxy
  only speaks of the scheme and host: the client stays the peer).
- The scheme is `http` or `https` (`ws` and `wss` read as those; the
  WebSocket scope maps them back). X-Forwarded-Host or Forwarded's `host`
  sets the server (name, and port: X-Forwarded-Port, else the host's
  own, else the scheme's default) and the Host the application sees;
  X-Forwarded-Port alone sets the port of both.
- A malformed value is ignored, with a debug line: that field only for
  X-Forwarded-* (a bad -Proto leaves -For standing), the whole header for
  a Forwarded that does not parse. Nothing here raises.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from typing import Protocol

from twincorn.http.request import printable

log = logging.getLogger("twincorn.error")

Address = tuple[str, int]

_XFF, _XPROTO, _XHOST, _XPORT = (b"x-forwarded-for", b"x-forwarded-proto",
                                 b"x-forwarded-host", b"x-forwarded-port")
_FORWARDED = b"forwarded"
_NAMES = frozenset({_XFF, _XPROTO, _XHOST, _XPORT, _FORWARDED})
# The four schemes RFC 6455 and RFC 9110 give us, as the scope wants them.
_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_DEFAULT_PORT = {"http": 80, "https": 443}

# RFC 9110 section 5.6.2: token; RFC 9110 section 5.6.4: quoted-string.
_TCHAR = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
# RFC 7239 section 4: forwarded-pair = token "=" value, value = token / quoted-string.
_PAIR = re.compile(rf"[ \t]*({_TCHAR}+)=(?:({_TCHAR}+)|\"((?:[^\"\\]|\\.)*)\")[ \t]*",
                   re.DOTALL)
_SPACE = re.compile(r"[ \t]*")
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
# RFC 7239 section 6.3: obfnode / obfport = "_" 1*( ALPHA / DIGIT / "." / "_" / "-" ).
_OBFUSCATED = re.compile(r"_[A-Za-z0-9._\-]+")
# RFC 9110 section 7.2 / RFC 3986 section 3.2.2: uri-host [ ":" port ].
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::([0-9]{1,5}))?")


class Forwarded:
    """One request's effective view, from a trusted proxy's headers.

    `client` is None when the proxy hid it (obfuscated, unknown), and its
    port 0 when the proxy gave none (as uvicorn's). `host` is the Host the
    application is to see, None for the request's own."""

    __slots__ = ("client", "host", "scheme", "server")

    def __init__(self, client: Address | None, scheme: str, server: Address | None,
                 host: bytes | None) -> None:
        self.client = client
        self.scheme = scheme
        self.server = server
        self.host = host

    def headers(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """The request's headers with the Host the application is to see
        (a new list; the others untouched, the forwarded ones included)."""
        host = self.host
        if host is None:
            return headers
        out = [(name, host if name == b"host" else value) for name, value in headers]
        if not any(name == b"host" for name, _ in headers):
            out.append((b"host", host))
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Forwarded) and (
            (self.client, self.scheme, self.server, self.host)
            == (other.client, other.scheme, other.server, other.host))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"Forwarded(client={self.client!r}, scheme={self.scheme!r}, "
                f"server={self.server!r}, host={self.host!r})")


class Trusted(Protocol):
    """Whom to believe: twincorn.trusted.TrustedPeers, or a set in tests."""

    def __contains__(self, peer: str | None, /) -> bool: ...


class ProxyHeaders:
    """The policy of one worker: whom to believe, `trusted` (IP texts, and
    None for a unix: socket's peer)."""

    __slots__ = ("trusted",)

    def __init__(self, trusted: Trusted) -> None:
        self.trusted = trusted

    def trusts(self, peer: Address | None) -> bool:
        """Is this connection's peer (None: a unix: socket's) a trusted proxy?"""
        return (None if peer is None else peer[0]) in self.trusted

    def resolve(self, headers: list[tuple[bytes, bytes]], peer: Address | None,
                scheme: str, server: Address | None,
                host: bytes | None = None) -> Forwarded | None:
        """The effective view of a request from a trusted peer, or None
        when its headers say nothing (or nothing valid) about it. `peer`,
        `scheme` and `server` are the connection's; `host` the request's
        Host header."""
        found: dict[bytes, list[str]] = {}
        for name, value in headers:
            if name in _NAMES:
                found.setdefault(name, []).append(value.decode("latin-1"))
        if not found:
            return None
        if len(found) > 1 or _FORWARDED not in found:
            hop = self._x_forwarded(found)
        else:
            hop = self._forwarded(found[_FORWARDED])
        if hop is None:
            return None
        return _view(hop, peer, scheme, server, host)

    # -- X-Forwarded-* ------------------------------------------------------

    def _x_forwarded(self, found: dict[bytes, list[str]]) -> _Hop | None:
        entries = _list(found.get(_XFF))
        at = self._walk_addresses(entries) if entries else None
        if at == -1:
            entries, at = [], None  # malformed: For is ignored, the rest stands
        hop = _Hop()
        if at is not None:
            hop.for_given = True
            hop.client = _address(entries[at])
        count = len(entries)
        proto = _pick(_list(found.get(_XPROTO)), at, count)
        if proto is not None:
            hop.scheme = _scheme(proto, "X-Forwarded-Proto")
        host = _pick(_list(found.get(_XHOST)), at, count)
        if host is not None:
            hop.host = _host(host, "X-Forwarded-Host")
        port = _pick(_list(found.get(_XPORT)), at, count)
        if port is not None:
            hop.port = _port(port)
        return hop if hop.said_something else None

    def _walk_addresses(self, entries: list[str]) -> int:
        """The client's index in X-Forwarded-For, or -1 if the walk meets
        something that is not an address before it finds the client."""
        trusted = self.trusted
        for index in range(len(entries) - 1, -1, -1):
            node = _address(entries[index])
            if node is None:
                log.debug("X-Forwarded-For ignored: %r is not an address",
                          printable(entries[index][:100]))
                return -1
            if node[0] not in trusted:
                return index
        return 0  # every hop trusted: the leftmost is the client

    # -- Forwarded (RFC 7239) -----------------------------------------------

    def _forwarded(self, lines: list[str]) -> _Hop | None:
        elements = _elements(",".join(lines))
        if elements is None:
            log.debug("Forwarded ignored: %r does not parse (RFC 7239 section 4)",
                      printable(",".join(lines)[:200]))
            return None
        if not elements:
            return None
        hop = _Hop()
        chosen = elements[-1]
        if any("for" in element for element in elements):
            hop.for_given = True
            node: Address | None = None
            for element in reversed(elements):
                chosen = element
                node = _node(element.get("for", "unknown"))
                if node is _BAD:
                    log.debug("Forwarded ignored: for=%r is not a node (RFC 7239 section 6)",
                              printable(element["for"][:100]))
                    return None
                if node is None or node[0] not in self.trusted:
                    break
            hop.client = node
        if "proto" in chosen:
            hop.scheme = _scheme(chosen["proto"], "Forwarded proto")
        if "host" in chosen:
            hop.host = _host(chosen["host"], "Forwarded host")
        return hop if hop.said_something else None


class _Hop:
    """What the headers said about the hop the request came in by."""

    __slots__ = ("client", "for_given", "host", "port", "scheme")

    def __init__(self) -> None:
        self.for_given = False  # the client was named (perhaps as unknown)
        self.client: Address | None = None
        self.scheme: str | None = None
        self.host: tuple[str, int | None] | None = None
        self.port: int | None = None

    @property
    def said_something(self) -> bool:
        return self.for_given or self.scheme is not None or self.host is not None or \
            self.port is not None


def _view(hop: _Hop, peer: Address | None, scheme: str, server: Address | None,
          host: bytes | None) -> Forwarded:
    """The effective client, scheme, server and Host from one hop's word."""
    client = hop.client if hop.for_given else peer
    scheme = hop.scheme or scheme
    default = _DEFAULT_PORT.get(scheme, 80)
    new_host: bytes | None = None
    if hop.host is not None:
        name, own_port = hop.host
        port = hop.port or own_port or default
        server = (name.strip("[]"), port)
        new_host = _host_header(name, port, default)
    elif hop.port is not None:
        parsed = _HOST.fullmatch(host.decode("latin-1")) if host else None
        name = parsed.group(1) if parsed else (server[0] if server else "localhost")
        server = (name.strip("[]"), hop.port)
        if parsed:
            new_host = _host_header(name, hop.port, default)
    return Forwarded(client, scheme, server, new_host)


def _host_header(name: str, port: int, default: int) -> bytes:
    text = name if port == default else f"{name}:{port}"
    return text.encode("latin-1")


# -- the pieces --------------------------------------------------------------

#: _node's answer for something that is no node at all (None: no address).
_BAD: Address = ("", -1)


def _list(lines: list[str] | None) -> list[str]:
    """A field's list elements over all its lines, in order (RFC 9110
    section 5.3: several lines are one list); empty elements dropped
    (section 5.6.1 asks recipients to accept them)."""
    if not lines:
        return []
    return [item.strip(" \t") for line in lines for item in line.split(",")
            if item.strip(" \t")]


def _pick(values: list[str], at: int | None, count: int) -> str | None:
    if not values:
        return None
    if at is not None and len(values) == count:
        return values[at]
    return values[-1]


def _ip(text: str) -> str | None:
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return None


def _address(text: str) -> Address | None:
    """An X-Forwarded-For entry: `192.0.2.1`, `2001:db8::1`, or either with
    a port (`192.0.2.1:4711`, `[2001:db8::1]:4711`); None for anything else."""
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        ip = _ip(inside) if bracket and ":" in inside else None
        if ip is None or (rest and not (rest[:1] == ":" and _valid_port(rest[1:]))):
            return None
        return (ip, int(rest[1:]) if rest else 0)
    if text.count(":") == 1:
        name, _, port = text.partition(":")
        ip = _ip(name)
        if ip is None or ":" in ip or not _valid_port(port):
            return None
        return (ip, int(port))
    ip = _ip(text)
    return None if ip is None else (ip, 0)


def _node(value: str) -> Address | None:
    """RFC 7239 section 6: node = nodename [ ":" node-port ]; None for
    `unknown` and obfuscated names (no address), _BAD for no node."""
    name, port = value, ""
    if value.startswith("["):
        inside, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and rest[:1] != ":"):
            return _BAD
        name, port = "[" + inside + "]", rest[1:]
    elif ":" in value:
        name, _, port = value.partition(":")
    if port and not (_valid_port(port) or _OBFUSCATED.fullmatch(port)):
        return _BAD
    if name.lower() == "unknown" or _OBFUSCATED.fullmatch(name):
        return None
    if name.startswith("["):
        ip = _ip(name[1:-1])
        if ip is None or ":" not in ip:  # brackets hold IPv6 only
            return _BAD
    else:
        ip = _ip(name)
        if ip is None or ":" in ip:  # RFC 7239 section 6: IPv6 in brackets
            return _BAD
    return (ip, int(port) if port.isdigit() else 0)


def _valid_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 5 and 0 < int(text) <= 65535


def _port(text: str) -> int | None:
    if _valid_port(text):
        return int(text)
    log.debug("X-Forwarded-Port ignored: %r is not a port", printable(text[:100]))
    return None


def _scheme(text: str, what: str) -> str | None:
    scheme = _SCHEMES.get(text.lower())
    if scheme is None:
        log.debug("%s ignored: %r is not http, https, ws or wss", what, printable(text[:100]))
    return scheme


def _host(text: str, what: str) -> tuple[str, int | None] | None:
    match = _HOST.fullmatch(text)
    port = match.group(2) if match else None
    if match is None or (port is not None and not _valid_port(port)):
        log.debug("%s ignored: %r is not a host (RFC 9110 section 7.2)", what,
                  printable(text[:100]))
        return None
    name = match.group(1)
    if name.startswith("[") and _ip(name[1:-1]) is None:
        log.debug("%s ignored: %r is not an IPv6 address", what, printable(text[:100]))
        return None
    return (name.lower(), int(port) if port else None)


def _elements(text: str) -> list[dict[str, str]] | None:
    """RFC 7239 section 4: Forwarded = 1#forwarded-element, each element
    pairs separated by ";", names case-insensitive, each at most once per
    element (section 5); None when it does not parse."""
    elements: list[dict[str, str]] = []
    element: dict[str, str] = {}
    at, end = 0, len(text)
    while True:
        pair = _PAIR.match(text, at)
        if pair is not None:
            name = pair.group(1).lower()
            if name in element:
                return None
            token, quoted = pair.group(2), pair.group(3)
            element[name] = token if token is not None else _QUOTED_PAIR.sub(r"\1", quoted)
            at = pair.end()
        else:
            at = _SPACE.match(text, at).end()  # type: ignore[union-attr]
        if at == end:
            break
        separator = text[at]
        if separator == ",":
            if element:
                elements.append(element)
            element = {}
        elif separator != ";":
            return None
        at += 1
    if element:
        elements.append(element)
    return elements
