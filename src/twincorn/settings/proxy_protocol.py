"""The PROXY protocol: the real client's address from a TCP load balancer."""

from __future__ import annotations

from dataclasses import dataclass

from twincorn.settings.declare import setting
from twincorn.trusted import DEFAULT


@dataclass(frozen=True)
class ProxyProtocolSettings:
    """The PROXY protocol (HAProxy's send-proxy, AWS NLB, GCP proxies):
    docs/deployment.md, "Behind HAProxy or a cloud load balancer"."""

    __slots__ = ()

    # -- the PROXY protocol
    proxy_protocol: bool = setting(
        False,
        "Read a PROXY protocol header (v1 or v2) at the start of every connection "
        "from --proxy-allow-ips, and take the client's address from it. Such a "
        "connection without a valid header is closed, nothing served; from other "
        "peers no header is read (a PROXY line there is a bad request: 400).",
        section="proxy protocol",
    )
    proxy_allow_ips: str = setting(
        DEFAULT,
        "The peers whose PROXY header is read: addresses, CIDR networks, * for all, "
        "unix for unix: sockets, comma-separated.",
        section="proxy protocol",
        metavar="LIST",
    )
