"""The app of the WebSocket benchmark (bench/websocket.py): an echo.

Plain ASGI, so that every server serves the same work:

    twincorn serve ws_echo:app --app-dir bench/apps
    uvicorn ws_echo:app --app-dir bench/apps
    hypercorn ws_echo:app          (with bench/apps on PYTHONPATH)

A WebSocket on any path is accepted, then each message is sent back as it
came (text as text, bytes as bytes) until the client closes. Over HTTP,
`GET /stats` answers bench/apps/echo1k.py's figures (the serving process's
pid first: the worker whose memory the benchmark reads); any other path
answers 200 with a line saying what this is (the readiness probe).
"""

from __future__ import annotations

from typing import Any

from echo1k import Receive, Send, lifespan, stats

PAGE = b"a WebSocket echo: connect to ws://this-host/echo\n"


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    kind = scope["type"]
    if kind == "websocket":
        await echo(receive, send)
    elif kind == "http":
        query = scope["query_string"].decode("latin-1")
        body = stats(query) if scope["path"] == "/stats" else PAGE
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"%d" % len(body))]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})
    elif kind == "lifespan":
        await lifespan(receive, send)


async def echo(receive: Receive, send: Send) -> None:
    """Accept, then send every message back until the client goes."""
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return  # websocket.disconnect
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
