"""Certificates for the TLS tests, made on the fly (trustme): an authority,
a server certificate for 127.0.0.1 and localhost, a client certificate.
Nothing is committed; every file lives in the test's own tmp_path."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509


@dataclass
class Pki:
    ca: trustme.CA
    folder: Path
    ca_file: Path  # the authority, for clients and for --ca-certs
    server_cert: Path  # the server's chain
    server_key: Path
    client_file: Path  # the client's key and chain, in one file (curl --cert)
    client_cert: Path
    client_key: Path

    def issue_server(self, name: str) -> tuple[Path, Path]:
        """Another server certificate (a renewal), written beside the others."""
        leaf = self.ca.issue_cert("127.0.0.1", "localhost",
                                  organization_unit_name=f"server {name}")
        cert, key = self.folder / f"{name}.crt", self.folder / f"{name}.key"
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        return cert, key

    def client_context(self, with_cert: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if with_cert:
            context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context

    def settings(self, **more: object) -> dict[str, object]:
        """twincorn settings for TLS with this server certificate."""
        return {"certfile": str(self.server_cert), "keyfile": str(self.server_key), **more}

    def mutual(self, cert_reqs: str = "required", **more: object) -> dict[str, object]:
        return self.settings(ca_certs=str(self.ca_file), cert_reqs=cert_reqs, **more)


def make_pki(folder: Path) -> Pki:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("alice@example.com", common_name="Alice, \"the\" tester")
    paths = {name: folder / name for name in (
        "ca.pem", "server.crt", "server.key", "client.pem", "client.crt", "client.key")}
    ca.cert_pem.write_to_path(str(paths["ca.pem"]))
    server.cert_chain_pems[0].write_to_path(str(paths["server.crt"]))
    server.private_key_pem.write_to_path(str(paths["server.key"]))
    client.private_key_and_cert_chain_pem.write_to_path(str(paths["client.pem"]))
    client.cert_chain_pems[0].write_to_path(str(paths["client.crt"]))
    client.private_key_pem.write_to_path(str(paths["client.key"]))
    return Pki(ca, folder, paths["ca.pem"], paths["server.crt"], paths["server.key"],
               paths["client.pem"], paths["client.crt"], paths["client.key"])


def subject(pem: bytes | str) -> str:
    """A certificate's subject, as the cryptography package writes RFC 4514."""
    data = pem.encode() if isinstance(pem, str) else pem
    return x509.load_pem_x509_certificate(data).subject.rfc4514_string()


def issuer(pem: bytes | str) -> str:
    data = pem.encode() if isinstance(pem, str) else pem
    return x509.load_pem_x509_certificate(data).issuer.rfc4514_string()
