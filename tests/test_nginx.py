"""examples/nginx/twincorn.conf, run for real: nginx in front of twincorn."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from master_support import ROOT
from support import exchange
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
