"""The apps of the memory benchmarks (bench/soak.py, bench/idle_memory.py).

Both read the whole request body and answer 1 KiB; one is ASGI (`asgi`), the
other WSGI (`wsgi`), so that every server serves the same work:

    twincorn serve echo1k:asgi --app-dir bench/apps
    uvicorn echo1k:asgi --app-dir bench/apps

A request whose body is not as long as its Content-Length said is answered
400, so that a server losing body bytes shows as wrk's non-2xx responses.

`GET /stats` answers the serving process's own figures as JSON: its pid (the
worker's, whichever process the server was started as), how many requests
the app answered, and sys.getallocatedblocks() (Python objects alive, a leak
of Python objects grows it; memory kept by C code does not). The benchmarks
read the worker's resident memory from /proc with that pid.
`GET /stats?collect` runs a full gc.collect() first, and says how many
unreachable objects it found: garbage waiting for the collector is told
apart from objects still referenced. `GET /stats?types` adds the objects
the collector tracks, counted by type: where the memory is; `?garbage`
collects and counts the cyclic garbage it found by type: what leaks
reference cycles.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

BODY = b"0123456789abcdef" * 64  # 1 KiB
HEADERS = [(b"content-type", b"application/octet-stream"), (b"content-length", b"1024")]
WSGI_HEADERS = [(name.decode(), value.decode()) for name, value in HEADERS]

_answered = 0


def stats(query: str = "") -> bytes:
    """The figures; `?collect`: after a full gc.collect() (and how many
    unreachable objects it found); `?types`: with the objects the collector
    tracks, counted by type (slow: for diagnosis, not under load)."""
    garbage = collect_garbage() if query == "garbage" else None
    found = gc.collect() if query == "collect" else None
    figures = {
        "pid": os.getpid(),
        "answered": _answered,
        "blocks": sys.getallocatedblocks(),
        "gc_counts": gc.get_count(),
        "gc_collections": [generation["collections"] for generation in gc.get_stats()],
        "gc_frozen": gc.get_freeze_count(),
        "gc_found": found,
    }
    if query == "types":
        figures["types"] = tracked_types()
    if garbage is not None:
        figures["garbage"] = garbage
    return json.dumps(figures).encode()


def tracked_types(objects: Iterable[object] | None = None) -> dict[str, list[int]]:
    """Objects tracked by the collector (or these), as type -> [count, shallow bytes]."""
    found: dict[str, list[int]] = {}
    for thing in gc.get_objects() if objects is None else objects:
        kind = type(thing)
        entry = found.setdefault(f"{kind.__module__}.{kind.__qualname__}", [0, 0])
        entry[0] += 1
        entry[1] += sys.getsizeof(thing)
    return found


def collect_garbage() -> dict[str, list[int]]:
    """A full collection that keeps what it found: the cyclic garbage by type."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return tracked_types(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def _expected_length(raw: bytes | None) -> int:
    try:
        return int(raw) if raw else 0
    except ValueError:
        return -1


# -- ASGI ----------------------------------------------------------------------

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def asgi(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    if scope["path"] == "/stats":
        await _answer(send, 200, stats(scope["query_string"].decode("latin-1")))
        return
    received = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return  # the client went away
        received += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    length = dict(scope["headers"]).get(b"content-length")
    await _count_and_answer(send, received == _expected_length(length))


async def lifespan(receive: Receive, send: Send) -> None:
    """Answer startup and shutdown (bench/apps/ws_echo.py's app too)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _count_and_answer(send: Send, whole: bool) -> None:
    global _answered
    if whole:
        _answered += 1
        await _answer(send, 200, BODY)
    else:
        await _answer(send, 400, b"short body\n")


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = HEADERS if body is BODY else [(b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- WSGI ----------------------------------------------------------------------

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def wsgi(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    global _answered
    if environ.get("PATH_INFO") == "/stats":
        body = stats(environ.get("QUERY_STRING", ""))
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    stream = environ["wsgi.input"]
    received = 0
    while chunk := stream.read(65536):
        received += len(chunk)
    if received != _expected_length(environ.get("CONTENT_LENGTH", "").encode()):
        start_response("400 Bad Request", [("Content-Length", "11")])
        return [b"short body\n"]
    _answered += 1
    start_response("200 OK", WSGI_HEADERS)
    return [BODY]
