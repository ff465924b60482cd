"""Where the server listens: unix: sockets, fd://N, systemd socket activation."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from twincorn.server.listener import BindError, bind, parse_address, release, systemd_sockets

ROOT = Path(__file__).resolve().parent.parent
GET = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


def ask(connect: socket.socket) -> bytes:
    with connect as sock:
        sock.settimeout(5)
        sock.sendall(GET)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def wait_unix(path: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(path))
            s.close()
            return
        except OSError:
            s.close()
            time.sleep(0.05)
    raise AssertionError("no server on the unix socket")


def first_reply(port: int, proc: subprocess.Popen[bytes], where: str) -> bytes:
    """The first answer to a GET on 127.0.0.1:port, waiting for the server."""
    deadline = time.monotonic() + 10
    while True:
        try:
            reply = ask(socket.create_connection(("127.0.0.1", port), timeout=2))
            if reply:
                return reply
        except OSError:
            pass
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, f"nothing served on {where}"
        time.sleep(0.05)


def serve(*args: str, env: dict[str, str] | None = None,
          pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "twincorn", "serve", "examples.wsgi.app:app", *args],
        cwd=ROOT, env=env, pass_fds=pass_fds,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    assert proc.stderr is not None
    proc.stderr.close()


def test_unix_socket_with_mode_is_served_and_removed(tmp_path: Path) -> None:
    path = tmp_path / "tw.sock"
    proc = serve("-b", f"unix:{path}", "--unix-socket-mode", "600", "-w", "2")
    try:
        wait_unix(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(path))
        assert ask(sock).endswith(b"Hello, World!\n")
        curl = subprocess.run(["curl", "-s", "--unix-socket", str(path), "http://x/"],
                              capture_output=True, timeout=10)
        assert curl.stdout == b"Hello, World!\n"
    finally:
        stop(proc)
    assert not path.exists()  # the master removes the file it created


def test_fd_bind_serves_an_inherited_socket() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    proc = serve("-b", f"fd://{listener.fileno()}", pass_fds=(listener.fileno(),))
    try:
        reply = first_reply(port, proc, "the inherited socket")
        assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"Hello, World!\n")
    finally:
        stop(proc)
        listener.close()


def test_systemd_socket_activation() -> None:
    """LISTEN_FDS=1 with LISTEN_PID of the server: fd 3 is its socket.

    The server must see its own pid in LISTEN_PID, so a small launcher puts
    the socket on fd 3, sets the variables and replaces itself (exec) with
    the server, as systemd does.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    launcher = (
        "import os, sys\n"
        f"os.dup2({listener.fileno()}, 3)\n"
        "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1')\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'twincorn', 'serve',\n"
        "    'examples.wsgi.app:app', '-b', '127.0.0.1:1'])  # ignored: systemd's wins\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", launcher], cwd=ROOT,
                            pass_fds=(listener.fileno(),),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        reply = first_reply(port, proc, "the systemd socket")
        assert reply.endswith(b"Hello, World!\n")
    finally:
        stop(proc)
        listener.close()


def test_systemd_variables_for_another_process_are_ignored() -> None:
    env = {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid() + 1)}
    assert systemd_sockets(env) == []
    assert "LISTEN_FDS" in env


@pytest.mark.parametrize(
    ("text", "message"),
    [("fd://x", "file descriptor number"), ("http://127.0.0.1:8000", "without a scheme"),
     ("::1:8000", "[::1]:8000"), ("127.0.0.1:99999", "out of range")],
)
def test_bad_addresses(text: str, message: str) -> None:
    with pytest.raises(BindError, match=message):
        parse_address(text)


def test_fd_that_is_not_a_listening_socket(tmp_path: Path) -> None:
    with open(tmp_path / "file", "w") as f, pytest.raises(BindError, match="cannot listen"):
        bind(f"fd://{f.fileno()}", 16)
    with socket.socket() as plain, pytest.raises(BindError, match="not a listening"):
        bind(f"fd://{plain.fileno()}", 16)


def test_reuse_port_and_release(tmp_path: Path) -> None:
    a = bind("127.0.0.1:0", 16, reuse_port=True)
    port = a.getsockname()[1]
    b = bind(f"127.0.0.1:{port}", 16, reuse_port=True)  # allowed by SO_REUSEPORT
    release(a)
    release(b)
    path = tmp_path / "s.sock"
    u = bind(f"unix:{path}", 16, unix_mode=0o660)
    assert stat.S_IMODE(path.stat().st_mode) == 0o660
    release(u)
    assert not path.exists()
