"""examples/haproxy/twincorn.cfg, run for real: HAProxy in front of twincorn,
sending the PROXY protocol (send-proxy-v2 as the file says, and send-proxy,
version 1, in a second HAProxy from the same file)."""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from master_support import ROOT
from support import read_until_close
from test_cli import free_port

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
pytestmark = [
    pytest.mark.skipif(not Path(HAPROXY).exists(), reason="haproxy is not installed "
                       "(Debian: apt-get install haproxy; .ci/run installs it)"),
    pytest.mark.timeout(60),
]


def wait_for_port(port: int, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def haproxy_config(tmp: Path, name: str, listen: int, app_port: int, version: int) -> Path:
    """The example file, pointed at the test's ports (and, for version 1,
    send-proxy), with a stats socket to read the health check's verdict."""
    text = (ROOT / "examples" / "haproxy" / "twincorn.cfg").read_text()
    assert "send-proxy-v2 check" in text and "bind :80" in text
    text = (text.replace("bind :80", f"bind 127.0.0.1:{listen}")
                .replace("127.0.0.1:8000", f"127.0.0.1:{app_port}")
                .replace("option httpchk GET /", "option httpchk GET /one")
                .replace("global\n", f"global\n    stats socket {tmp}/{name}.sock\n", 1))
    if version == 1:
        text = text.replace("send-proxy-v2", "send-proxy")
    path = tmp / f"{name}.cfg"
    path.write_text(text)
    return path


def check_status(stats: Path) -> str:
    """HAProxy's last health check of app1 (`show stat`'s check_status)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(str(stats))
        sock.sendall(b"show stat\n")
        text = read_until_close(sock, 5).decode()
    header, *rows = text.splitlines()
    names = header.lstrip("# ").split(",")
    for row in rows:
        fields = dict(zip(names, row.split(","), strict=False))
        if fields.get("svname") == "app1":
            return fields["check_status"]
    return ""


@pytest.fixture
def twincorn_port(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port = free_port()
    log = tmp_path / "twincorn.log"
    with log.open("wb") as out:
        app = subprocess.Popen(
            [sys.executable, "-m", "twincorn", "serve", "wire_apps:asgi_app", "--app-dir",
             "tests", "-b", f"127.0.0.1:{port}", "--proxy-protocol",
             "--proxy-allow-ips", "127.0.0.1", "--access-logfile", str(tmp_path / "access.log"),
             "--access-log-format", "%(h)s %(r)s %(s)s"],
            cwd=ROOT, stdout=out, stderr=out,
        )
    try:
        wait_for_port(port)
        yield port, tmp_path
    finally:
        app.send_signal(signal.SIGTERM)
        app.wait(10)


def whoami(conn: http.client.HTTPConnection) -> dict[str, Any]:
    conn.request("GET", "/whoami")
    response = conn.getresponse()
    assert response.status == 200
    return dict(json.loads(response.read()))


@pytest.mark.parametrize("version", [2, 1])
def test_haproxy_sends_the_real_client(twincorn_port: tuple[int, Path], version: int) -> None:
    app_port, tmp = twincorn_port
    listen = free_port()
    config = haproxy_config(tmp, "haproxy", listen, app_port, version)
    haproxy = subprocess.Popen([HAPROXY, "-db", "-f", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(listen)
        # Keep-alive clients, two at once: each request of each is told
        # its own client's address and port (not HAProxy's connection to
        # twincorn), and the address it connected to (HAProxy's).
        clients = [http.client.HTTPConnection("127.0.0.1", listen, timeout=10)
                   for _ in range(2)]
        for client in clients:
            client.connect()
        for _ in range(3):
            for client in clients:
                assert client.sock is not None
                own = list(client.sock.getsockname())
                assert whoami(client) == {"client": own, "server": ["127.0.0.1", listen]}
        for client in clients:
            client.close()
        # HAProxy's health checks carry a PROXY header too, and pass.
        deadline = time.monotonic() + 10
        while (status := check_status(tmp / "haproxy.sock")) != "L7OK" and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        assert status == "L7OK"
        # A client that goes round HAProxy, straight to twincorn from an
        # allowed address, sends no header: closed, nothing served.
        with socket.create_connection(("127.0.0.1", app_port), timeout=10) as sock:
            sock.sendall(b"GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.settimeout(10)  # a TimeoutError: left open, not closed
            try:
                assert sock.recv(100) == b""
            except ConnectionResetError:
                pass  # closed with our request unread: a reset
    finally:
        haproxy.send_signal(signal.SIGUSR1)  # a soft stop
        try:
            haproxy.wait(10)
        except subprocess.TimeoutExpired:
            haproxy.kill()
            haproxy.wait(10)
    # The access log has the clients' ports' address, never a PROXY line.
    lines = (tmp / "access.log").read_text().splitlines()
    assert lines.count("127.0.0.1 GET /whoami HTTP/1.1 200") == 6
