"""Behind a proxy: whose X-Forwarded-* and Forwarded headers are believed
(http/forwarded.py has the rules; docs/deployment.md, the how-to)."""

from __future__ import annotations

from dataclasses import dataclass

from twincorn.settings.declare import setting
from twincorn.trusted import DEFAULT


@dataclass(frozen=True)
class ForwardedSettings:
    """Trusted proxy headers."""

    __slots__ = ()

    # -- behind a proxy
    forwarded_allow_ips: str = setting(
        DEFAULT,
        "Peers whose X-Forwarded-For, -Proto, -Host, -Port and Forwarded headers set the "
        "client's address, the scheme and the host the application sees: comma-separated "
        "IPv4 and IPv6 addresses, networks (10.0.0.0/8), * for every peer, unix for the "
        "peers of unix: sockets. The environment variable FORWARDED_ALLOW_IPS (gunicorn's "
        "and uvicorn's) is read too. From any other peer the headers change nothing.",
        section="proxies",
        metavar="LIST",
    )
    proxy_headers: bool = setting(
        True,
        "Read the proxy headers of the --forwarded-allow-ips peers at all (uvicorn's "
        "--proxy-headers); --no-proxy-headers leaves every request as the socket sees it.",
        section="proxies",
    )
