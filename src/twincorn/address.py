"""What a --bind address says, read without opening anything.

config.py checks every address with `parse_address` before anything is
bound or forked, so that a mistake is one line on the command line, not
a traceback from socket.bind; server/listener.py binds what it returns.
The forms are gunicorn's: HOST:PORT, HOST (port 8000), [IPV6]:PORT,
unix:PATH and fd://N.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import NamedTuple

#: Where twincorn listens when no address is given, and the port of a bare HOST.
DEFAULT_PORT = 8000
DEFAULT_BIND = f"127.0.0.1:{DEFAULT_PORT}"
_FORMS = "HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N"


class AddressError(ValueError):
    """A --bind address that cannot be read, with what to write instead."""


class Address(NamedTuple):
    family: socket.AddressFamily  # AF_UNSPEC for an inherited descriptor
    target: tuple[str, int] | str | int  # (host, port), a path, a descriptor


def _port(text: str, address: str) -> int:
    if not text.isdigit():
        raise AddressError(f"{address!r}: the port {text!r} is not a number (expected {_FORMS})")
    port = int(text)
    if port > 65535:
        raise AddressError(f"{address!r}: port {port} is out of range (0 to 65535)")
    return port


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def parse_address(text: str) -> Address:
    """One --bind address, or AddressError saying how to write it."""
    if text.startswith("unix:"):
        if not text[5:]:
            raise AddressError("'unix:' needs a path: unix:/run/app.sock")
        return Address(socket.AF_UNIX, text[5:])
    if text.startswith("fd://"):
        if not text[5:].isdigit():
            raise AddressError(f"{text!r}: fd:// takes a file descriptor number, e.g. fd://3")
        return Address(socket.AF_UNSPEC, int(text[5:]))
    _, sep, rest = text.partition("://")
    if sep:
        bare = rest.split("/", 1)[0] or DEFAULT_BIND
        raise AddressError(f"{text!r}: --bind takes HOST:PORT without a scheme, "
                           f"e.g. -b {bare}")
    if text.startswith("["):
        host, bracket, after = text[1:].partition("]")
        if not bracket or not _is_ipv6(host) or (after and not after.startswith(":")):
            raise AddressError(f"{text!r}: expected [IPV6]:PORT, e.g. [::1]:{DEFAULT_PORT}")
        port = _port(after[1:], text) if after else DEFAULT_PORT
        return Address(socket.AF_INET6, (host, port))
    host, sep, port_text = text.rpartition(":")
    if _is_ipv6(text):
        # "::1:8000" is an address too, but a port was more likely meant.
        meant = _is_ipv6(host) and port_text.isdigit() and len(port_text) > 2
        example = f"[{host}]:{port_text}" if meant else f"[{text}]:{DEFAULT_PORT}"
        raise AddressError(f"{text!r}: write an IPv6 address in brackets, e.g. {example}")
    if not sep:
        host, port_text = text, str(DEFAULT_PORT)  # gunicorn: a bare host is port 8000
    if ":" in host:
        example = f"[{host}]:{port_text}" if _is_ipv6(host) else f"[::1]:{DEFAULT_PORT}"
        raise AddressError(f"{text!r}: write an IPv6 address in brackets, e.g. {example}")
    if not host and not sep:
        raise AddressError(f"an empty address: expected {_FORMS}")
    return Address(socket.AF_INET, (host or "0.0.0.0", _port(port_text, text)))
