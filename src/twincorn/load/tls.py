"""The load tester's TLS, for https:// and wss:// URLs: whose certificates
it trusts (the system's authorities, --ca-certs, or none with --insecure)
and the certificate it shows a server that asks for one (--client-cert,
--key: mutual TLS). One context per load process, made on first use."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field


class TlsOptionError(ValueError):
    """A TLS option or file that cannot be used, in one line."""


@dataclass
class ClientTls:
    """The TLS options of a run, and the context made from them."""

    insecure: bool = False
    ca_certs: str | None = None
    client_cert: str | None = None
    key: str | None = None
    _context: ssl.SSLContext | None = field(default=None, repr=False)

    def context(self) -> ssl.SSLContext:
        """The client context (made once; TlsOptionError for a bad file)."""
        if self._context is None:
            self._context = self._make()
        return self._context

    def _make(self) -> ssl.SSLContext:
        try:
            context = ssl.create_default_context(cafile=self.ca_certs)
        except (OSError, ssl.SSLError) as exc:
            raise TlsOptionError(f"--ca-certs {self.ca_certs}: {_why(exc)}") from None
        if self.insecure:
            # Neither the name nor the authority is checked: a test server's
            # own certificate is taken as it is (curl's -k).
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert:
            try:
                # A callable password: an encrypted key fails here, rather
                # than OpenSSL prompting on the terminal.
                context.load_cert_chain(self.client_cert, self.key, password=lambda: "")
            except (OSError, ssl.SSLError) as exc:
                files = self.client_cert + (f" and {self.key}" if self.key else "")
                raise TlsOptionError(f"--client-cert {files}: {_why(exc)}") from None
        # HTTP/1.1 is what the load tester speaks (RFC 7301).
        context.set_alpn_protocols(["http/1.1"])
        return context


def _why(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLError):
        if exc.reason == "KEY_VALUES_MISMATCH":
            return "the key does not match the certificate"
        return "not a usable PEM file (an encrypted key is not supported)" if (
            exc.reason is None) else str(exc.reason)
    return exc.strerror or str(exc)
