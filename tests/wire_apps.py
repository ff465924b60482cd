"""The applications the wire-level tests serve, in a WSGI and an ASGI flavour.

Both flavours route on the path and behave alike, so that a test can run
against either (the `app` fixture of the wire tests parametrizes over them):

    /echo           read the whole body, answer it (one piece: content-length)
    /noread         answer without reading the body (ASGI: ?wait sleeps first)
    /stream         three pieces, no content-length (chunked on HTTP/1.1)
    /one            one piece, no content-length
    /status/NNN     that status, empty body
    /inject?where=name|value&char=cr|lf|nul
                    a header with a forbidden character (response splitting)
    /own            the application's own Server and Date headers
    /slow           many small pieces, slowly (disconnect tests)
    /late           ASGI only: starts the response, then reads the body
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

STREAM_PIECES = [b"first;", b"second;", b"third;"]
OWN_SERVER = "custom-server/1.0"
OWN_DATE = "Sun, 06 Nov 1994 08:49:37 GMT"
INJECTED = "Set-Cookie: injected=1"
SLOW_PIECES = 40
SLOW_PIECE = b"x" * 1024
_CHARS = {"cr": "\r", "lf": "\n", "nul": "\x00", "crlf": "\r\n"}


def _bad_header(query: str) -> tuple[str, str]:
    args = parse_qs(query)
    char = _CHARS[args.get("char", ["crlf"])[0]]
    if args.get("where", ["value"])[0] == "name":
        return (f"X-Bad{char}{INJECTED.split(':')[0]}", "1")
    return ("X-Bad", f"ok{char}{INJECTED}")


# -- WSGI -----------------------------------------------------------------


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path: str = environ["PATH_INFO"]
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response(
            "200 OK",
            [
                ("Content-Type", "text/plain"),
                ("X-Method", environ["REQUEST_METHOD"]),
                ("X-Version", environ["SERVER_PROTOCOL"]),
            ],
        )
        return [body]
    if path == "/noread":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"not read"]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _pieces(STREAM_PIECES)
    if path == "/one":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"single"]
    if path.startswith("/status/"):
        code = int(path.rsplit("/", 1)[1])
        start_response(f"{code} Whatever", [("X-Status", str(code))])
        return [b""]
    if path == "/inject":
        start_response(
            "200 OK", [("Content-Type", "text/plain"), _bad_header(environ["QUERY_STRING"])]
        )
        return [b"should never be sent"]
    if path == "/own":
        start_response("200 OK", [("Server", OWN_SERVER), ("Date", OWN_DATE)])
        return [b"own"]
    if path == "/slow":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _slow_pieces()
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


def _pieces(pieces: list[bytes]) -> Iterator[bytes]:
    yield from pieces


def _slow_pieces() -> Iterator[bytes]:
    for _ in range(SLOW_PIECES):
        time.sleep(0.02)
        yield SLOW_PIECE


# -- ASGI -----------------------------------------------------------------


async def _read_body(receive: Any) -> bytes | None:
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        piece: bytes = message.get("body", b"")
        body += piece
        if not message.get("more_body", False):
            return body


async def _start(send: Any, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def _body(send: Any, data: bytes, more: bool = False) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await _websocket_echo(scope, receive, send)
        return
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    text = [(b"content-type", b"text/plain")]
    if path == "/echo":
        body = await _read_body(receive)
        if body is None:
            return
        headers = [
            *text,
            (b"x-method", scope["method"].encode()),
            (b"x-version", b"HTTP/" + scope["http_version"].encode()),
        ]
        await _start(send, 200, headers)
        await _body(send, body)
    elif path == "/noread":
        if scope["query_string"] == b"wait":
            await asyncio.sleep(0.2)  # the body arrives meanwhile, unread
        await _start(send, 200, text)
        await _body(send, b"not read")
    elif path == "/stream":
        await _start(send, 200, text)
        for piece in STREAM_PIECES:
            await _body(send, piece, more=True)
        await _body(send, b"")
    elif path == "/one":
        await _start(send, 200, text)
        await _body(send, b"single")
    elif path == "/whoami":  # the client and server the app was told (JSON)
        await _start(send, 200, [(b"content-type", b"application/json")])
        await _body(send, json.dumps({"client": scope["client"],
                                      "server": scope["server"]}).encode())
    elif path.startswith("/status/"):
        code = int(path.rsplit("/", 1)[1])
        await _start(send, code, [(b"x-status", str(code).encode())])
        await _body(send, b"")
    elif path == "/inject":
        name, value = _bad_header(scope["query_string"].decode())
        await _start(send, 200, [*text, (name.encode("latin-1"), value.encode("latin-1"))])
        await _body(send, b"should never be sent")
    elif path == "/own":
        await _start(send, 200, [(b"server", OWN_SERVER.encode()), (b"date", OWN_DATE.encode())])
        await _body(send, b"own")
    elif path == "/slow":
        await _start(send, 200, [(b"content-type", b"application/octet-stream")])
        for _ in range(SLOW_PIECES):
            await asyncio.sleep(0.02)
            await _body(send, SLOW_PIECE, more=True)
        await _body(send, b"")
    elif path == "/late":
        await _start(send, 200, text)
        body = await _read_body(receive)
        await _body(send, b"late:" + (body or b""))
    else:
        await _start(send, 404, text)
        await _body(send, b"not found")


async def _websocket_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echo each message, prefixed by the scheme and client the app saw."""
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": f"{scope['scheme']}:{message['text']}"})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
