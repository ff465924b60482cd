"""The server's TLS context, made from the settings (stdlib ssl), and what a
handshake settled, as the adapters show it.

The master makes the context once at start, so that a bad file stops the
server with one line (`TlsError`), and again on HUP, so that a renewed
certificate is served without a restart: the files are read anew each time,
and a bad one then keeps the context in force. Workers are forked with the
master's context and use it as it is (an SSL_CTX survives fork; OpenSSL
reseeds its random generator in the child).

What the application sees of one connection (`TlsInfo`, exchange.py) is
made once per connection by `TlsSetup.info`, from the handshake's results:
the ASGI TLS extension (asgi.readthedocs.io, "TLS Extension") and the WSGI
keys Apache's mod_ssl sets (SSL_PROTOCOL, SSL_CLIENT_S_DN...).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

from twincorn.exchange import TlsInfo
from twincorn.settings.tls import TlsSettings

#: TLS versions as the ASGI extension numbers them (the protocol's own
#: ProtocolVersion: RFC 8446 section 4.2.1) and as the settings name them.
_VERSION_NUMBERS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
_MIN_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
_VERIFY = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
#: ALPN (RFC 7301): this server speaks HTTP/1.1 only.
ALPN = ["http/1.1"]
# RFC 4514's short names for the attributes of a Distinguished Name, from
# the long ones Python's getpeercert() gives.
_SHORT_NAMES = {
    "commonName": "CN", "countryName": "C", "stateOrProvinceName": "ST",
    "localityName": "L", "organizationName": "O", "organizationalUnitName": "OU",
    "streetAddress": "STREET", "domainComponent": "DC", "userId": "UID",
}
_PEM_CERT = "-----BEGIN CERTIFICATE-----"
_PEM_END = "-----END CERTIFICATE-----"


class TlsError(Exception):
    """A TLS file or setting that cannot be used, in one line."""


def _read(what: str, path: str) -> str:
    try:
        with open(path, "rb") as file:
            return file.read().decode("ascii", "replace")
    except OSError as exc:
        raise TlsError(f"TLS: cannot read the {what} {path}: {exc.strerror or exc}") from None


def _first_certificate(text: str) -> str | None:
    start = text.find(_PEM_CERT)
    end = text.find(_PEM_END, start)
    if start < 0 or end < 0:
        return None
    return text[start:end + len(_PEM_END)] + "\n"


def _load_chain(context: ssl.SSLContext, config: TlsSettings, certfile: str) -> str:
    """Load the certificate and its key; the certificate's PEM."""
    cert_text = _read("certificate (--certfile)", certfile)
    server_cert = _first_certificate(cert_text)
    if server_cert is None:
        raise TlsError(f"TLS: the certificate file {certfile} holds no PEM certificate")
    keyfile = config.keyfile or certfile
    key_text = cert_text if keyfile == certfile else _read("key (--keyfile)", keyfile)
    if "PRIVATE KEY-----" not in key_text:
        raise TlsError(f"TLS: {keyfile} holds no PEM private key"
                       + ("" if config.keyfile else " (give it with --keyfile)"))
    encrypted = "ENCRYPTED" in key_text
    if encrypted and not config.keyfile_password:
        raise TlsError(f"TLS: the key in {keyfile} is encrypted: give --keyfile-password")
    password = config.keyfile_password or ""
    try:
        # A callable, always: with none, OpenSSL would prompt on the terminal.
        context.load_cert_chain(certfile, config.keyfile, password=lambda: password)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise TlsError(f"TLS: the key in {keyfile} does not match the certificate in "
                           f"{certfile}") from None
        if encrypted:
            raise TlsError(f"TLS: cannot decrypt the key in {keyfile}: wrong "
                           "--keyfile-password") from None
        raise TlsError(f"TLS: cannot load {certfile} and {keyfile}: "
                       f"{exc.reason or exc}") from None
    except OSError as exc:  # e.g. a file removed meanwhile
        raise TlsError(f"TLS: cannot load {certfile}: {exc.strerror or exc}") from None
    return server_cert


def load(config: TlsSettings) -> TlsSetup | None:
    """Read the TLS files and make what the workers need; None without
    --certfile. Raises TlsError, with one line, for a file that cannot be used."""
    if not config.certfile:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _MIN_VERSIONS[config.tls_min_version]
    server_cert = _load_chain(context, config, config.certfile)
    if config.ca_certs:
        _read("authorities (--ca-certs)", config.ca_certs)
        try:
            context.load_verify_locations(cafile=config.ca_certs)
        except ssl.SSLError as exc:
            raise TlsError(f"TLS: the authorities file {config.ca_certs} holds no usable "
                           f"certificate: {exc.reason or exc}") from None
    context.verify_mode = _VERIFY[config.cert_reqs]
    if config.ciphers:
        try:
            context.set_ciphers(config.ciphers)
        except ssl.SSLError:
            raise TlsError(f"TLS: --ciphers {config.ciphers!r} selects no cipher this "
                           f"OpenSSL knows ({ssl.OPENSSL_VERSION})") from None
    context.set_alpn_protocols(ALPN)
    # Tickets would let a resumed session skip the check of a client
    # certificate renewed or revoked meanwhile; they stay on otherwise
    # (the stdlib's default) as they make reconnections cheap.
    if context.verify_mode != ssl.CERT_NONE:
        context.options |= ssl.OP_NO_TICKET
    return TlsSetup(context, server_cert, config.tls_handshake_timeout)


def rfc4514(name: Any) -> str:
    """A Distinguished Name from getpeercert()'s ((("commonName", "x"),), ...)
    as RFC 4514 writes it: most specific first, specials escaped."""
    rdns = []
    for rdn in reversed(name or ()):
        parts = []
        for key, value in rdn:
            text = str(value)
            for special in '\\,+"<>;':  # RFC 4514 section 2.4
                text = text.replace(special, "\\" + special)
            text = text.replace("\0", "\\00")
            if text.startswith(("#", " ")):
                text = "\\" + text
            if text.endswith(" "):
                text = text[:-1] + "\\ "
            parts.append(f"{_SHORT_NAMES.get(key, key)}={text}")
        rdns.append("+".join(parts))
    return ",".join(rdns)


@dataclass(slots=True)
class TlsSetup:
    """What a worker needs for TLS: the context, and what it shows the app."""

    context: ssl.SSLContext
    server_cert: str  # PEM, for the ASGI extension's server_cert
    handshake_timeout: float
    #: IANA cipher suite numbers by OpenSSL name (the ASGI cipher_suite).
    cipher_ids: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # OpenSSL's ids are 0x03000000 plus the suite's two bytes (RFC 8446
        # appendix B.4; RFC 5246 appendix A.5).
        self.cipher_ids = {c["name"]: c["id"] & 0xFFFF for c in self.context.get_ciphers()}

    def info(self, ssl_object: ssl.SSLObject | None) -> TlsInfo:
        """What the handshake of one connection settled, for the adapters."""
        version = ssl_object.version() if ssl_object is not None else None
        cipher = ssl_object.cipher() if ssl_object is not None else None
        name = cipher[0] if cipher else ""
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        scope: dict[str, Any] = {
            "server_cert": self.server_cert,
            "client_cert_chain": [],
            "client_cert_name": None,
            # A certificate that fails the check fails the handshake itself.
            "client_cert_error": None,
            "tls_version": _VERSION_NUMBERS.get(version or ""),
            "cipher_suite": self.cipher_ids.get(name),
        }
        environ = {"HTTPS": "on", "SSL_PROTOCOL": version or "", "SSL_CIPHER": name,
                   "SSL_CLIENT_VERIFY": "NONE"}
        if der and ssl_object is not None:
            pem = ssl.DER_cert_to_PEM_cert(der)
            peer = ssl_object.getpeercert() or {}
            subject, issuer = rfc4514(peer.get("subject")), rfc4514(peer.get("issuer"))
            scope["client_cert_chain"] = _chain(ssl_object, pem)
            scope["client_cert_name"] = subject
            environ.update(SSL_CLIENT_VERIFY="SUCCESS", SSL_CLIENT_S_DN=subject,
                           SSL_CLIENT_I_DN=issuer, SSL_CLIENT_CERT=pem)
        return TlsInfo(scope, environ)


def _chain(ssl_object: ssl.SSLObject, pem: str) -> list[str]:
    """The client's certificate and the chain it sent after it (Python 3.13
    can say; before it, the client's certificate alone)."""
    unverified = getattr(ssl_object, "get_unverified_chain", None)
    chain = unverified() if unverified is not None else None
    if not chain:
        return [pem]
    return [str(cert.public_bytes()) for cert in chain]  # PEM, the default
