"""TLS on the TCP listening sockets, client certificates (docs/deployment.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from twincorn.settings.declare import setting

#: gunicorn's and uvicorn's --cert-reqs are the numbers of Python's
#: ssl.VerifyMode; twincorn takes those and the words.
CERT_REQS = {"0": "none", "1": "optional", "2": "required"}


def parse_cert_reqs(value: object) -> str:
    """none, optional or required; gunicorn's 0, 1, 2 (and ssl.CERT_*) too."""
    text = str(int(value)) if isinstance(value, int) else str(value).strip().lower()
    text = CERT_REQS.get(text, text)
    if text not in CERT_REQS.values():
        raise ValueError(f"expected none, optional or required (or 0, 1, 2), got {value!r}")
    return text


@dataclass(frozen=True)
class TlsSettings:
    """TLS on the TCP listening sockets, client certificates (docs/deployment.md)."""

    __slots__ = ()

    # -- TLS (docs/deployment.md, "Direct, with TLS")
    certfile: str | None = setting(
        None,
        "PEM file of the server's certificate (its chain after it): with it, every TCP "
        "--bind speaks TLS (unix: sockets stay plain). Read again on HUP.",
        "--ssl-certfile",
        section="tls",
        metavar="FILE",
        shown="no TLS",
    )
    keyfile: str | None = setting(
        None,
        "PEM file of the certificate's private key.",
        "--ssl-keyfile",
        section="tls",
        metavar="FILE",
        shown="in --certfile",
    )
    keyfile_password: str | None = setting(
        None,
        "Password of an encrypted --keyfile.",
        "--ssl-keyfile-password",
        section="tls",
        metavar="PASSWORD",
    )
    ca_certs: str | None = setting(
        None,
        "PEM file of the authorities whose client certificates are accepted (mutual TLS).",
        "--ssl-ca-certs",
        section="tls",
        metavar="FILE",
    )
    cert_reqs: Literal["none", "optional", "required"] = setting(
        "none",
        "Client certificates (mutual TLS, with --ca-certs): none asked, optional (one "
        "given is checked), or required (the handshake fails without one). "
        "gunicorn's 0, 1, 2 too.",
        "--ssl-cert-reqs",
        section="tls",
        parse=parse_cert_reqs,
        shown="none (no client certificate asked)",
    )
    ciphers: str | None = setting(
        None,
        "OpenSSL cipher list for TLS 1.2 (TLS 1.3's suites are OpenSSL's own).",
        "--ssl-ciphers",
        section="tls",
        metavar="LIST",
        shown="OpenSSL's own list",
    )
    tls_min_version: Literal["1.2", "1.3"] = setting(
        "1.2", "Oldest TLS version accepted.", section="tls"
    )
    tls_handshake_timeout: float = setting(
        10.0,
        "How long a client has to complete the TLS handshake, from its connection.",
        section="tls",
        metavar="TIME",
        unit="duration",
    )
