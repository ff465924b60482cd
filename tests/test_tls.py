"""TLS, served for real on 127.0.0.1: httpx, curl, the websockets client and
openssl s_client against a worker with certificates made by trustme."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import RunningServer
from tls_support import Pki, issuer, make_pki, subject

pytestmark = pytest.mark.timeout(60)
CURL = shutil.which("curl")
OPENSSL = shutil.which("openssl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed "
                                "(Debian: apt-get install curl; .ci/run installs it)")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed "
                                   "(Debian: apt-get install openssl; .ci/run installs it)")


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


async def asgi_report(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """What the scope says of TLS, as JSON (a WebSocket echoes once, then
    sends the same report)."""
    if scope["type"] == "lifespan":
        return
    report = json.dumps({"scheme": scope["scheme"], "client": scope.get("client"),
                         "tls": scope.get("extensions", {}).get("tls")}).encode()
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": message["text"]})
        await send({"type": "websocket.send", "bytes": report})
        await send({"type": "websocket.close"})
        return
    await receive()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": report})


def wsgi_report(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    keys = {k: v for k, v in environ.items() if k.startswith(("SSL_", "HTTPS"))}
    keys["wsgi.url_scheme"] = environ["wsgi.url_scheme"]
    if environ["PATH_INFO"] == "/file":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        wrapper = environ["wsgi.file_wrapper"]
        sent: Iterable[bytes] = wrapper(open(environ["BIG_FILE"], "rb"))  # the server closes it
        return sent
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(keys).encode()]


def serve(app: Any, **settings: Any) -> RunningServer:
    return RunningServer(app, **settings)


def test_asgi_scope_over_keep_alive(pki: Pki) -> None:
    with serve(asgi_report, **pki.settings()) as server, httpx.Client(
            verify=pki.client_context(), http2=False) as client:
        first = client.get(server.url + "/")
        second = client.get(server.url + "/")
    assert first.status_code == second.status_code == 200
    report = first.json()
    assert report == second.json()
    assert report["scheme"] == "https"
    tls = report["tls"]
    assert tls["server_cert"] == pki.server_cert.read_text()
    assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None
    assert tls["tls_version"] == 0x0304  # both ends allow TLS 1.3
    # The IANA number of the suite httpx's side agreed on (TLS 1.3's are 0x13xx).
    assert 0x1301 <= tls["cipher_suite"] <= 0x1305


def test_keep_alive_reuses_one_connection(pki: Pki) -> None:
    opened: list[object] = []
    with serve(asgi_report, **pki.settings()) as server:
        transport = httpx.HTTPTransport(verify=pki.client_context())
        with httpx.Client(transport=transport) as client:
            for _ in range(3):
                response = client.get(server.url + "/")
                opened.append(response.extensions["network_stream"].get_extra_info("client_addr"))
    assert len(set(map(str, opened))) == 1


def test_mutual_tls_required(pki: Pki) -> None:
    with serve(asgi_report, **pki.mutual("required")) as server:
        with httpx.Client(verify=pki.client_context(with_cert=True)) as client:
            tls = client.get(server.url + "/").json()["tls"]
        with httpx.Client(verify=pki.client_context()) as client, pytest.raises(
                httpx.HTTPError):
            client.get(server.url + "/")
        # The server serves on after the refused handshake.
        with httpx.Client(verify=pki.client_context(with_cert=True)) as client:
            assert client.get(server.url + "/").status_code == 200
    client_pem = pki.client_cert.read_text()
    assert tls["client_cert_chain"] == [client_pem]
    # Our RFC 4514 writing agrees with the cryptography package's, commas
    # and quotes in the common name escaped.
    assert tls["client_cert_name"] == subject(client_pem)
    assert "CN=Alice\\, \\\"the\\\" tester" in tls["client_cert_name"]


def test_mutual_tls_optional(pki: Pki) -> None:
    with serve(asgi_report, **pki.mutual("optional")) as server:
        with httpx.Client(verify=pki.client_context()) as client:
            without = client.get(server.url + "/").json()["tls"]
        with httpx.Client(verify=pki.client_context(with_cert=True)) as client:
            with_cert = client.get(server.url + "/").json()["tls"]
    assert without["client_cert_name"] is None and without["client_cert_chain"] == []
    assert with_cert["client_cert_name"] == subject(pki.client_cert.read_text())


def test_wsgi_environ(pki: Pki) -> None:
    with serve(wsgi_report, **pki.mutual("optional")) as server:
        with httpx.Client(verify=pki.client_context(with_cert=True)) as client:
            keys = client.get(server.url + "/").json()
        with httpx.Client(verify=pki.client_context()) as client:
            anonymous = client.get(server.url + "/").json()
    client_pem = pki.client_cert.read_text()
    assert keys.pop("SSL_CIPHER")
    assert keys == {
        "wsgi.url_scheme": "https", "HTTPS": "on", "SSL_PROTOCOL": "TLSv1.3",
        "SSL_CLIENT_VERIFY": "SUCCESS", "SSL_CLIENT_S_DN": subject(client_pem),
        "SSL_CLIENT_I_DN": issuer(client_pem), "SSL_CLIENT_CERT": client_pem,
    }
    assert anonymous.pop("SSL_CIPHER")
    assert anonymous == {"wsgi.url_scheme": "https", "HTTPS": "on", "SSL_PROTOCOL": "TLSv1.3",
                         "SSL_CLIENT_VERIFY": "NONE"}


def test_sendfile_falls_back_over_tls(pki: Pki, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.bin"
    data = bytes(range(256)) * 8192  # 2 MiB
    big.write_bytes(data)

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        environ["BIG_FILE"] = str(big)
        return wsgi_report(environ, start_response)

    for loop in ("asyncio", "uvloop"):
        with serve(app, loop=loop, **pki.settings()) as server, httpx.Client(
                verify=pki.client_context()) as client:
            response = client.get(server.url + "/file")
            assert response.content == data, loop
            assert client.get(server.url + "/").json()["HTTPS"] == "on"


def test_websocket_over_wss(pki: Pki) -> None:
    from websockets.asyncio.client import connect

    async def talk(port: int) -> tuple[str | bytes, str | bytes]:
        async with connect(f"wss://127.0.0.1:{port}/ws", ssl=pki.client_context()) as ws:
            await ws.send("hello")
            return await ws.recv(), await ws.recv()

    with serve(asgi_report, **pki.settings()) as server:
        echo, report = asyncio.run(talk(server.port))
    assert echo == "hello"
    scope = json.loads(report)
    assert scope["scheme"] == "wss"
    assert scope["tls"]["tls_version"] == 0x0304


def test_plain_http_to_the_tls_port_is_refused(pki: Pki) -> None:
    with serve(asgi_report, **pki.settings()) as server:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        assert time.monotonic() - started < 2
        # Something neither TLS nor HTTP: closed at once (reset, as its bytes
        # are left unread), nothing said.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"\x00\x01\x02")
            try:
                said = sock.recv(100)
            except ConnectionResetError:
                said = b""
            assert said == b""
        with httpx.Client(verify=pki.client_context()) as client:
            assert client.get(server.url + "/").status_code == 200
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"The plain HTTP request was sent to HTTPS port" in body


@needs_curl
def test_curl_keep_alive_with_and_without_a_client_certificate(pki: Pki) -> None:
    assert CURL is not None
    with serve(asgi_report, **pki.mutual("optional")) as server:
        url = server.url + "/"
        plain = subprocess.run([CURL, "-sv", "--cacert", str(pki.ca_file), url, url],
                               capture_output=True, text=True, timeout=20)
        mutual = subprocess.run([CURL, "-s", "--cacert", str(pki.ca_file), "--cert",
                                 str(pki.client_file), url], capture_output=True, text=True,
                                timeout=20)
        refused = subprocess.run([CURL, "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                  url.replace("https", "http")], capture_output=True, text=True,
                                 timeout=20)
    reports = plain.stdout.replace("}{", "}\n{").splitlines()
    assert len(reports) == 2 and all(json.loads(r)["scheme"] == "https" for r in reports)
    assert "Re-using existing connection" in plain.stderr or "Reusing" in plain.stderr
    assert "ALPN: server accepted http/1.1" in plain.stderr or \
        "ALPN, server accepted to use http/1.1" in plain.stderr
    name = json.loads(mutual.stdout)["tls"]["client_cert_name"]
    assert name == subject(pki.client_cert.read_text())
    assert refused.stdout == "400"


def s_client(port: int, *args: str, data: bytes = b"") -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    return subprocess.run(
        [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
         *args], input=data.decode(), capture_output=True, text=True, timeout=20)


@needs_openssl
def test_openssl_alpn_and_versions(pki: Pki) -> None:
    with serve(asgi_report, **pki.settings()) as server:
        alpn = s_client(server.port, "-ign_eof", "-alpn", "h2,http/1.1", "-CAfile",
                        str(pki.ca_file),
                        data=b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        tls12 = s_client(server.port, "-tls1_2")
        tls11 = s_client(server.port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    with serve(asgi_report, tls_min_version="1.3", **pki.settings()) as server:
        only13 = s_client(server.port, "-tls1_2")
    assert "ALPN protocol: http/1.1" in alpn.stdout
    assert "Verify return code: 0 (ok)" in alpn.stdout
    assert '"scheme": "https"' in alpn.stdout
    assert "Protocol  : TLSv1.2" in tls12.stdout or "TLSv1.2" in tls12.stdout
    assert tls12.returncode == 0
    assert tls11.returncode != 0
    assert only13.returncode != 0 and "Cipher is (NONE)" in only13.stdout


def test_a_stalled_handshake_is_closed_by_the_deadline(pki: Pki) -> None:
    with serve(asgi_report, tls_handshake_timeout=0.5, **pki.settings()) as server:
        silent = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        halfway = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        halfway.sendall(b"\x16\x03\x01\x02\x00\x01")  # a ClientHello's first bytes
        started = time.monotonic()
        assert silent.recv(100) == b""
        assert halfway.recv(100) == b""
        took = time.monotonic() - started
        silent.close()
        halfway.close()
        assert server.worker.state.handshakes == 0
    assert 0.3 < took < 3


def test_handshakes_count_against_worker_connections(pki: Pki) -> None:
    with serve(asgi_report, worker_connections=2, tls_handshake_timeout=5,
               **pki.settings()) as server:
        held = [socket.create_connection(("127.0.0.1", server.port), timeout=5)
                for _ in range(2)]
        time.sleep(0.2)
        assert server.worker.state.handshakes == 2
        third = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        started = time.monotonic()
        assert third.recv(100) == b""  # no room: closed at once
        assert time.monotonic() - started < 2
        third.close()
        for sock in held:
            sock.close()
        time.sleep(0.2)
        assert server.worker.state.handshakes == 0
        with httpx.Client(verify=pki.client_context()) as client:
            assert client.get(server.url + "/").status_code == 200


def test_unix_sockets_stay_plain(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with serve(asgi_report, bind=["127.0.0.1:0", f"unix:{path}"], **pki.settings()):
        transport = httpx.HTTPTransport(uds=str(path))
        with httpx.Client(transport=transport) as client:
            report = client.get("http://localhost/").json()
    assert (report["scheme"], report["tls"]) == ("http", None)


def test_a_plain_server_shows_no_tls() -> None:
    with serve(asgi_report) as server, httpx.Client() as client:
        report = client.get(server.url + "/").json()
        assert (report["scheme"], report["tls"]) == ("http", None)


def test_the_context_offers_http11_only(pki: Pki) -> None:
    context = pki.client_context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    with serve(asgi_report, **pki.settings()) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                assert tls.selected_alpn_protocol() == "http/1.1"
                assert tls.version() == "TLSv1.3"
                tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert tls.recv(100).startswith(b"HTTP/1.1 200 ")
    assert ssl.OPENSSL_VERSION


def read_response(sock: ssl.SSLSocket) -> bytes:
    """One response's body (it has a Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        body += sock.recv(65536)
    return body


def test_a_proxy_header_before_the_tls_handshake(pki: Pki) -> None:
    """--proxy-protocol with TLS: the balancer's PROXY header (v1 and v2)
    comes before the ClientHello; the app sees the client it names, on
    every request of the connection. A header that is not one closes the
    connection with nothing written."""
    from test_proxy_protocol import v2

    six = (socket.inet_pton(socket.AF_INET6, "2001:db8::7")
           + socket.inet_pton(socket.AF_INET6, "2001:db8::1") + struct.pack("!HH", 51001, 443))
    headers = [b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\n", v2(1, 0x21, six)]
    expected = [["203.0.113.7", 51000], ["2001:db8::7", 51001]]
    with serve(asgi_report, proxy_protocol=True, **pki.settings()) as server:
        for header, client in zip(headers, expected, strict=True):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
                raw.sendall(header)
                with pki.client_context().wrap_socket(raw, server_hostname="localhost") as tls:
                    for _ in range(2):
                        tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                        report = json.loads(read_response(tls))
                        assert report["client"] == client
                        assert report["scheme"] == "https"
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            raw.sendall(b"PROXY TCP4 not-an-address\r\n")
            try:
                assert raw.recv(100) == b""  # nothing written: closed
            except ConnectionResetError:
                pass  # (or reset: the bad header was left unread)
