"""WebSocket servers that are not twincorn, for the load tester's tests.

`WsServer` is `websockets`' own asyncio server on 127.0.0.1, on a thread
with its own event loop. The path of the handshake picks what it does:

    /echo           echo each message
    /delay/MS       echo each message MS milliseconds after it came
    /forbidden      refuse the handshake with 403
    /policy         accept, then close at once with 1008 "too many"
    /silent         accept, read, never answer
    /reset          accept; at the first message, reset the TCP connection
    /fragments      echo each message in three fragments
    /ping           ping the client (noting the pong), then echo
    /headers        answer each message with the handshake's headers (JSON)
    /truncate       echo each message less its last byte

It records how each connection ended, as the server saw it (`closes`:
path, close code, reason), and the pongs that came back (`pongs`).

`uvicorn_server` runs uvicorn in a process of its own, serving the ASGI
echo app of ws_asgi_app.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http import HTTPStatus
from pathlib import Path

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

HERE = Path(__file__).resolve().parent


class WsServer:
    def __init__(self) -> None:
        self.closes: list[tuple[str, int | None, str | None]] = []
        self.pongs = 0
        self.connections = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the websockets server did not start")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def wait_closes(self, count: int, timeout: float = 5.0) -> None:
        """Wait until `count` connections have ended on the server's side."""
        deadline = time.monotonic() + timeout
        while len(self.closes) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> WsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the server's thread --------------------------------------------------------

    def _run(self) -> None:
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        server: Server = await serve(
            self._handler, "127.0.0.1", 0,
            process_request=self._process_request,
            select_subprotocol=_select_subprotocol,
            compression=None,
            ping_interval=None,
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        await server.wait_closed()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/forbidden":
            return connection.respond(HTTPStatus.FORBIDDEN, "not you\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        path = ws.request.path if ws.request is not None else ""
        try:
            await self._behave(ws, path)
        except ConnectionClosed:
            pass
        finally:
            await ws.wait_closed()
            self.closes.append((path, ws.close_code, ws.close_reason))

    async def _behave(self, ws: ServerConnection, path: str) -> None:
        if path == "/policy":
            await ws.close(1008, "too many")
            return
        if path == "/ping":
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 5)
            self.pongs += 1
        delay = float(path.removeprefix("/delay/")) / 1000 if path.startswith("/delay/") else 0
        async for message in ws:
            if path == "/silent":
                continue
            if path == "/reset":
                sock = ws.transport.get_extra_info("socket")
                # SO_LINGER with a zero timeout: close() sends RST, not FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                ws.transport.abort()
                return
            if path == "/headers":
                assert ws.request is not None
                await ws.send(json.dumps(dict(ws.request.headers.raw_items())))
                continue
            if delay:
                await asyncio.sleep(delay)
            if path == "/truncate":
                await ws.send(message[:-1])
                continue
            if path == "/fragments":
                third = max(1, len(message) // 3)
                await ws.send([message[:third], message[third:2 * third], message[2 * third:]])
                continue
            await ws.send(message)


def _select_subprotocol(
    connection: ServerConnection, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    """The first of the server's choices ("superchat", then "chat") that the
    client offered; none when it offered none of them."""
    for choice in ("superchat", "chat"):
        if choice in offered:
            return Subprotocol(choice)
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


@contextmanager
def uvicorn_server(ws: str = "websockets-sansio") -> Iterator[str]:
    """uvicorn serving ws_asgi_app.py's app; yields its ws:// base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "ws_asgi_app:app", "--app-dir", str(HERE),
         "--port", str(port), "--ws", ws, "--log-level", "warning", "--lifespan", "off"],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc)
        yield f"ws://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
