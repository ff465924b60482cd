"""twincorn load over TLS, against twincorn's own: https:// (the lean path
and User classes), wss://, --insecure, --ca-certs, --client-cert/--key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support import RunningServer
from tls_support import Pki, make_pki
from twincorn import load
from twincorn.load import User, task

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """200 over TLS with a client certificate, 403 without; a WebSocket echoes."""
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "bytes": message.get("bytes"),
                        "text": message.get("text")})
    if scope["type"] != "http":
        return
    tls = scope.get("extensions", {}).get("tls") or {}
    status = 200 if tls.get("client_cert_name") else 403
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"x"})


def test_https_with_the_authority_and_a_client_certificate(pki: Pki) -> None:
    with RunningServer(app, **pki.mutual("optional")) as server:
        results = load.run(server.url + "/", users=2, stop_after=40, run_time="10s", quiet=True,
                           ca_certs=str(pki.ca_file), client_cert=str(pki.client_cert),
                           key=str(pki.client_key))
        assert results.requests == 40 and results.failures == 0
        # Without a client certificate the server answers 403: the handshake
        # went through, and the certificate was what made the difference.
        anonymous = load.run(server.url + "/", users=1, stop_after=5, run_time="10s",
                             quiet=True, ca_certs=str(pki.ca_file))
        assert anonymous.requests == 5 and anonymous.failures == 5
        # The system's authorities do not know trustme's: every request fails...
        untrusted = load.run(server.url + "/", users=1, stop_after=5, run_time="10s",
                             quiet=True, client_cert=str(pki.client_file))
        assert untrusted.failures == untrusted.requests > 0
        # ...unless told to check nothing.
        insecure = load.run(server.url + "/", users=1, stop_after=5, run_time="10s",
                            quiet=True, insecure=True, client_cert=str(pki.client_file))
        assert insecure.requests == 5 and insecure.failures == 0


class Visitor(User):
    @task
    async def index(self) -> None:
        await self.client.get("/")


def test_user_classes_over_https(pki: Pki) -> None:
    with RunningServer(app, **pki.mutual("required")) as server:
        results = load.run(host=server.url, user_classes=[Visitor], users=2, stop_after=30,
                           run_time="10s", quiet=True, ca_certs=str(pki.ca_file),
                           client_cert=str(pki.client_file))
    assert results.requests == 30 and results.failures == 0


def test_wss_echo(pki: Pki) -> None:
    with RunningServer(app, **pki.settings()) as server:
        url = server.url.replace("https", "wss") + "/echo"
        results = load.run(url, users=2, stop_after=40, run_time="10s", quiet=True,
                           ca_certs=str(pki.ca_file))
        refused = load.run(url, users=1, stop_after=3, run_time="10s", quiet=True)
    assert results.failures == 0 and results.requests >= 40
    assert refused.failures > 0


@pytest.mark.parametrize(("args", "message"), [
    (["--key", "k.pem"], "--key: the key of --client-cert: give --client-cert too"),
    (["-k", "--ca-certs", "ca.pem"], "--insecure and --ca-certs contradict each other"),
    (["--ca-certs", "missing.pem"], "--ca-certs missing.pem: No such file or directory"),
])
def test_bad_tls_options_one_line(args: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "twincorn", "load", "https://127.0.0.1:1/",
                           "-t", "1s", *args], capture_output=True, text=True, timeout=30,
                          cwd=ROOT)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_a_key_that_does_not_match(pki: Pki) -> None:
    other_key = pki.issue_server("other")[1]
    with pytest.raises(load.PlanError, match="the key does not match the certificate"):
        load.run("https://127.0.0.1:1/", run_time="1s", client_cert=str(pki.client_cert),
                 key=str(other_key))
