"""The master and TLS: a renewed certificate is served after HUP, without a
restart; a bad one at HUP keeps the one in force, with one error line."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from master_support import ROOT, children
from test_cli import free_port
from tls_support import make_pki

pytestmark = pytest.mark.timeout(90)


def served_certificate(port: int) -> str:
    """The PEM certificate the server shows now; "" if it does not answer."""
    try:
        return ssl.get_server_certificate(("127.0.0.1", port), timeout=3)
    except OSError:
        return ""


def wait_for(condition: Callable[[], bool], seconds: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()}")


def normalized(pem: str) -> str:
    return ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(pem))


def test_hup_serves_a_renewed_certificate(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "twincorn", "serve", "examples.asgi.app:app", "-b",
             f"127.0.0.1:{port}", "--certfile", str(pki.server_cert), "--keyfile",
             str(pki.server_key), "--no-access-log"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        first = normalized(pki.server_cert.read_text())
        wait_for(lambda: served_certificate(port) == first, 20, "the first certificate", log)
        # Renewal: new files written over the old ones, then HUP.
        new_cert, new_key = pki.issue_server("renewed")
        pki.server_key.write_bytes(new_key.read_bytes())
        pki.server_cert.write_bytes(new_cert.read_bytes())
        renewed = normalized(new_cert.read_text())
        os.kill(proc.pid, signal.SIGHUP)
        wait_for(lambda: served_certificate(port) == renewed, 20, "the renewed certificate",
                 log)
        assert proc.poll() is None
        # A broken renewal: one error line, the renewed certificate still served
        # by the new workers.
        pki.server_cert.write_text("not a certificate\n")
        os.kill(proc.pid, signal.SIGHUP)
        wait_for(lambda: "keeping the TLS files read before" in log.read_text(), 20,
                 "the HUP error", log)
        wait_for(lambda: log.read_text().count("booting worker") >= 3, 20,
                 "the next worker", log)
        time.sleep(0.5)
        assert served_certificate(port) == renewed
        errors = [line for line in log.read_text().splitlines() if "[ERROR]" in line]
        assert errors == [errors[0]] and "holds no PEM certificate" in errors[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pid in children(proc.pid):
            os.kill(pid, signal.SIGKILL)
