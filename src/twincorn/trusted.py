"""Which peers are trusted to speak for a client: --forwarded-allow-ips
(their X-Forwarded-* and Forwarded headers are believed) and
--proxy-allow-ips (their PROXY protocol header is read).

A list is written as gunicorn and uvicorn write it, comma-separated:
IPv4 and IPv6 addresses, CIDR networks (`10.0.0.0/8`, `fd00::/8`), `*`
for every peer, and `unix` for every peer of a `unix:` socket (which has
no address: only processes allowed to open the socket file reach it, so
both peers trust them; twincorn names them explicitly). An IPv4-mapped
IPv6 peer (`::ffff:10.0.0.1`, what a dual-stack socket reports) matches
the IPv4 entries too. Read once, when the settings are read, so that a
mistake is one line at start; matching is then a set lookup for single
addresses, a walk of the networks for the rest.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

#: Both peers' default: the loopback addresses (and, here, unix sockets).
DEFAULT = "127.0.0.1,::1,unix"
EVERYONE = "*"
UNIX = "unix"

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustError(ValueError):
    """An entry of a trusted-peers list that is not an address, a network,
    `*` or `unix`."""


def _entries(spec: str | Iterable[str]) -> list[str]:
    items = spec.split(",") if isinstance(spec, str) else [
        part for item in spec for part in item.split(",")
    ]
    return [item.strip() for item in items if item.strip()]


class TrustedPeers:
    """A parsed list: `peer in trusted` for a peer's IP text, or None for a
    `unix:` socket's peer."""

    __slots__ = ("_addresses", "_networks", "everyone", "spec", "unix")

    def __init__(self, spec: str | Iterable[str] = DEFAULT) -> None:
        self.everyone = False
        self.unix = False
        self._addresses: set[str] = set()
        self._networks: list[_Network] = []
        entries = _entries(spec)
        self.spec = ",".join(entries)
        for entry in entries:
            if entry == EVERYONE:
                self.everyone = True
            elif entry.lower() == UNIX:
                self.unix = True
            elif "/" in entry:
                try:
                    self._networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    raise TrustError(f"{entry!r} is not a network (e.g. 10.0.0.0/8)") from None
            else:
                try:
                    address = ipaddress.ip_address(entry.strip("[]"))
                except ValueError:
                    raise TrustError(
                        f"{entry!r} is not an IP address, a network, {EVERYONE!r} or {UNIX!r}"
                    ) from None
                self._addresses.add(address.compressed)

    def __contains__(self, peer: str | None) -> bool:
        if self.everyone:
            return True
        if peer is None:
            return self.unix
        if peer in self._addresses:  # the common case: an exact address, no parsing
            return True
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            mapped = address.ipv4_mapped
            if mapped.compressed in self._addresses:
                return True
            return any(mapped in net for net in self._networks if net.version == 4)
        if address.compressed in self._addresses:
            return True
        return any(address in net for net in self._networks if net.version == address.version)

    def __bool__(self) -> bool:
        return self.everyone or self.unix or bool(self._addresses or self._networks)

    def __repr__(self) -> str:
        return f"TrustedPeers({self.spec!r})"
