"""The TLS context from the settings: each bad file one clear line; the
names of certificates as RFC 4514 writes them; the TLS settings' checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from master_support import ROOT
from tls_support import Pki, make_pki
from twincorn import config
from twincorn.server.tls_context import ALPN, TlsError, load, rfc4514


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


def settings(**values: Any) -> config.Config:
    return config.build(environ={}, config=None, **values)


def refusal(**values: Any) -> str:
    with pytest.raises(TlsError) as caught:
        load(settings(**values))
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_no_certificate_no_tls() -> None:
    assert load(settings()) is None


def test_a_good_setup(pki: Pki) -> None:
    setup = load(settings(**pki.mutual("optional", ciphers="ECDHE+AESGCM")))
    assert setup is not None
    assert setup.server_cert == pki.server_cert.read_text()
    assert setup.context.verify_mode.name == "CERT_OPTIONAL"
    assert setup.context.minimum_version.name == "TLSv1_2"
    assert ALPN == ["http/1.1"]
    assert setup.cipher_ids["TLS_AES_128_GCM_SHA256"] == 0x1301
    assert setup.cipher_ids["ECDHE-ECDSA-AES128-GCM-SHA256"] == 0xC02B
    assert "ECDHE-RSA-CHACHA20-POLY1305" not in setup.cipher_ids  # --ciphers applies


def encrypted_key(pki: Pki, password: bytes) -> Path:
    key = serialization.load_pem_private_key(pki.server_key.read_bytes(), None)
    path = pki.folder / "encrypted.key"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(password)))
    return path


def test_an_encrypted_key(pki: Pki) -> None:
    key = str(encrypted_key(pki, b"s3cret"))
    cert = str(pki.server_cert)
    assert load(settings(certfile=cert, keyfile=key, keyfile_password="s3cret")) is not None
    assert refusal(certfile=cert, keyfile=key) == (
        f"TLS: the key in {key} is encrypted: give --keyfile-password")
    assert refusal(certfile=cert, keyfile=key, keyfile_password="wrong") == (
        f"TLS: cannot decrypt the key in {key}: wrong --keyfile-password")


def test_bad_files_one_line_each(pki: Pki) -> None:
    cert, key = str(pki.server_cert), str(pki.server_key)
    garbage = pki.folder / "garbage.pem"
    garbage.write_text("not a certificate\n")
    missing = str(pki.folder / "missing.pem")
    assert refusal(certfile=missing, keyfile=key) == (
        f"TLS: cannot read the certificate (--certfile) {missing}: No such file or directory")
    assert refusal(certfile=cert, keyfile=missing) == (
        f"TLS: cannot read the key (--keyfile) {missing}: No such file or directory")
    assert refusal(certfile=str(garbage), keyfile=key) == (
        f"TLS: the certificate file {garbage} holds no PEM certificate")
    assert refusal(certfile=cert) == (
        f"TLS: {cert} holds no PEM private key (give it with --keyfile)")
    other_key = pki.issue_server("other")[1]
    assert refusal(certfile=cert, keyfile=str(other_key)) == (
        f"TLS: the key in {other_key} does not match the certificate in {cert}")
    assert refusal(certfile=cert, keyfile=key, ciphers="NOPE").startswith(
        "TLS: --ciphers 'NOPE' selects no cipher this OpenSSL knows")
    assert refusal(certfile=cert, keyfile=key, ca_certs=str(garbage),
                   cert_reqs="required") == (
        f"TLS: the authorities file {garbage} holds no usable certificate: "
        "NO_CERTIFICATE_OR_CRL_FOUND")
    # One file holding both key and certificate is fine.
    both = pki.folder / "both.pem"
    both.write_text(pki.server_key.read_text() + pki.server_cert.read_text())
    assert load(settings(certfile=str(both))) is not None


def test_a_bad_file_stops_the_server_with_one_line(pki: Pki) -> None:
    other_key = pki.issue_server("other")[1]
    done = subprocess.run(
        [sys.executable, "-m", "twincorn", "serve", "examples.asgi.app:app", "-b",
         "127.0.0.1:0", "--certfile", str(pki.server_cert), "--keyfile", str(other_key)],
        cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and "does not match the certificate" in errors[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("values", "message"), [
    ({"keyfile": "k.pem"}, "keyfile: TLS needs a certificate: give --certfile too"),
    ({"ca_certs": "ca.pem"}, "ca_certs: TLS needs a certificate: give --certfile too"),
    ({"cert_reqs": "required"}, "cert_reqs: client certificates need TLS"),
    ({"certfile": "c.pem", "cert_reqs": "optional"},
     "cert_reqs: optional client certificates are checked against --ca-certs"),
    ({"cert_reqs": "3"}, "cert_reqs: expected none, optional or required (or 0, 1, 2)"),
    ({"tls_min_version": "1.1"}, "tls_min_version: '1.1' is not one of 1.2, 1.3"),
])
def test_settings_that_need_others(values: dict[str, Any], message: str) -> None:
    with pytest.raises(config.ConfigError, match="^" + message.replace("(", r"\(").replace(
            ")", r"\)")):
        settings(**values)


def test_gunicorns_numbers_and_uvicorns_flags() -> None:
    base = {"certfile": "c.pem", "ca_certs": "ca.pem"}
    assert settings(cert_reqs="2", **base).cert_reqs == "required"
    assert settings(cert_reqs=1, **base).cert_reqs == "optional"
    assert settings(cert_reqs=0).cert_reqs == "none"
    flags = config.SETTING_OF_FLAG
    assert flags["--ssl-certfile"] == flags["--certfile"] == "certfile"
    assert flags["--ssl-keyfile-password"] == "keyfile_password"
    assert flags["--ssl-cert-reqs"] == "cert_reqs" and flags["--ssl-ciphers"] == "ciphers"
    assert flags["--ssl-ca-certs"] == "ca_certs" and flags["--ssl-keyfile"] == "keyfile"
    assert config.from_environment({"TWINCORN_CERT_REQS": "2"}) == {"cert_reqs": "required"}


def test_rfc4514() -> None:
    name = ((("countryName", "DE"),), (("organizationName", "A, B"),),
            (("commonName", " x+y "), ("userId", "#1")))
    assert rfc4514(name) == "CN=\\ x\\+y\\ +UID=\\#1,O=A\\, B,C=DE"
    assert rfc4514(()) == ""
    assert rfc4514(((("1.2.3.4", "v=1;\0"),),)) == "1.2.3.4=v=1\\;\\00"
