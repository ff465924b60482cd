"""Apps served across restarts (tests/test_restarts.py, bench/restarts.py).

Both answer with their worker's pid, so the responses themselves show
which workers served. `/slow` takes half a second (a request surely in
flight when a signal arrives); `/leak` keeps 256 KiB per request, up to
96 MiB per worker (to reach --max-worker-memory). Standard library only:
gunicorn and uvicorn serve them too.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

SLOW_SECONDS = 0.5
_LEAK: list[bytes] = []
_LEAK_BLOCK, _LEAK_BLOCKS = 256 * 1024, 384


def _leak() -> None:
    if len(_LEAK) < _LEAK_BLOCKS:
        _LEAK.append(b"x" * _LEAK_BLOCK)  # written, so resident


def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/slow":
        time.sleep(SLOW_SECONDS)
    elif path == "/leak":
        _leak()
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


async def asgi(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
               send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(SLOW_SECONDS)
    elif scope["path"] == "/leak":
        _leak()
    body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
