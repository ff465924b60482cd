"""examples/nginx/twincorn.conf, run for real: nginx in front of twincorn."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from master_support import ROOT
from support import exchange, read_until_close
from test_cli import free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
pytestmark = [
    pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed "
                       "(Debian: apt-get install nginx; .ci/run installs it)"),
    pytest.mark.timeout(60),
]

WRAPPER = """
user root;
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/site.conf;
}}
"""


def request(port: int, raw: bytes, half_close: bool = False) -> bytes:
    # nginx takes a half-closed client for gone (499), unless it refuses anyway.
    return exchange(port, raw, shutdown=half_close, timeout=10)


async def websocket_talk(port: int) -> list[str | bytes]:
    from websockets.asyncio.client import connect

    got: list[str | bytes] = []
    async with connect(f"ws://127.0.0.1:{port}/chat") as ws:
        for message in ("one", "two", b"\x00" * 70000):
            await ws.send(message)
            got.append(await ws.recv())
    return got


def test_nginx_in_front_of_twincorn(tmp_path: Path) -> None:
    sock_path = tmp_path / "twincorn.sock"
    static = tmp_path / "static"
    static.mkdir()
    (static / "hello.txt").write_text("a static file\n")
    port = free_port()
    site = (ROOT / "examples" / "nginx" / "twincorn.conf").read_text()
    site = (site.replace("unix:/run/twincorn.sock", f"unix:{sock_path}")
                .replace("listen 80;", f"listen 127.0.0.1:{port};")
                .replace("/srv/app/static/", f"{static}/"))
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(WRAPPER.format(tmp=tmp_path))
    app = subprocess.Popen(
        [sys.executable, "-m", "twincorn", "serve", "wire_apps:asgi_app", "--app-dir", "tests",
         "-b", f"unix:{sock_path}", "--no-access-log"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    nginx = None
    try:
        deadline = time.monotonic() + 10
        while not sock_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        nginx = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        # Through nginx to the app, body and all.
        answer = request(port, b"POST /echo?x=1 HTTP/1.1\r\nHost: example.test\r\n"
                               b"Content-Length: 5\r\nConnection: close\r\n\r\nhello")
        assert answer.startswith(b"HTTP/1.1 200"), answer
        assert b"hello" in answer
        # The static file comes from nginx itself.
        answer = request(port, b"GET /static/hello.txt HTTP/1.1\r\nHost: x\r\n"
                               b"Connection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"a static file\n")
        # A body over client_max_body_size is refused before it reaches the app.
        answer = request(port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20000000\r\n"
                               b"Connection: close\r\n\r\n", half_close=True)
        assert answer.startswith(b"HTTP/1.1 413")
        # A WebSocket through nginx, and plain requests after it on the
        # upstream's kept-alive connections.
        assert asyncio.run(asyncio.wait_for(websocket_talk(port), 15)) == [
            "ws:one", "ws:two", b"\x00" * 70000]
        answer = request(port, b"GET /one HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"single")
    finally:
        if nginx is not None:
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(10)
        app.send_signal(signal.SIGTERM)
        app.wait(10)


# -- the client's address, scheme and host through nginx ---------------------------

#: Where the "browser" connects from: a loopback address that is not a
#: trusted proxy (--forwarded-allow-ips is 127.0.0.1,::1,unix by default).
BROWSER = "127.0.0.2"


def wait_for(ready: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not ready() and time.monotonic() < deadline:
        time.sleep(0.05)


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@contextmanager
def behind_nginx(tmp_path: Path, upstream: str, app: str) -> Iterator[int]:
    """twincorn serving `app` on `upstream` (tcp or unix), and nginx with
    examples/nginx/twincorn.conf in front: yields nginx's port."""
    port = free_port()
    if upstream == "unix":
        bind = f"unix:{tmp_path / 'twincorn.sock'}"
    else:
        bind = f"127.0.0.1:{free_port()}"
    site = (ROOT / "examples" / "nginx" / "twincorn.conf").read_text()
    site = (site.replace("unix:/run/twincorn.sock", bind)
                .replace("listen 80;", f"listen 127.0.0.1:{port};")
                .replace("/srv/app/static/", f"{tmp_path}/"))
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(WRAPPER.format(tmp=tmp_path))
    twincorn = subprocess.Popen(
        [sys.executable, "-m", "twincorn", "serve", app, "--app-dir", "tests", "-b", bind,
         "--no-access-log"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    nginx = None
    try:
        if upstream == "unix":
            wait_for((tmp_path / "twincorn.sock").exists)
        else:
            wait_for(lambda: listening(int(bind.rsplit(":", 1)[1])))
        nginx = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: listening(port))
        yield port
    finally:
        if nginx is not None:
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(10)
        twincorn.send_signal(signal.SIGTERM)
        twincorn.wait(10)


def seen_by_app(port: int, *headers: str) -> dict[str, Any]:
    """What the app was told, for a request from BROWSER through nginx."""
    head = "\r\n".join(["GET / HTTP/1.1", f"Host: www.example.test:{port}", *headers,
                         "Connection: close", "", ""]).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10,
                                  source_address=(BROWSER, 0)) as sock:
        sock.sendall(head)
        answer = read_until_close(sock, 10)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    seen: dict[str, Any] = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    return seen


@pytest.mark.parametrize(("upstream", "app"), [("tcp", "forwarded_apps:asgi_app"),
                                              ("unix", "forwarded_apps:wsgi_app")])
def test_the_app_sees_the_browser_through_nginx(tmp_path: Path, upstream: str, app: str) -> None:
    with behind_nginx(tmp_path, upstream, app) as port:
        seen = seen_by_app(port)
        assert seen["client"][0] == BROWSER  # not nginx's 127.0.0.1
        assert seen["scheme"] == "http"
        # nginx's $host (the name alone) with X-Forwarded-Port ($server_port):
        # the address the browser used, for the links the app builds.
        assert seen["host"] == f"www.example.test:{port}"
        assert seen["server"] == ["www.example.test", port]
        # What the browser forges: nginx appends to its X-Forwarded-For and
        # replaces the others; twincorn ends with nginx's view of the client.
        forged = seen_by_app(port, "X-Forwarded-For: 127.0.0.1, 6.6.6.6",
                             "X-Forwarded-Proto: https", "X-Forwarded-Host: evil.example",
                             "X-Forwarded-Port: 444", "Forwarded: for=7.7.7.7;proto=https")
        assert forged == seen
