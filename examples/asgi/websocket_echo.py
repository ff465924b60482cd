"""A WebSocket echo, in plain ASGI: what comes in goes back out.

    twincorn serve examples.asgi.websocket_echo:app
    python -m websockets ws://127.0.0.1:8000/echo

Any other path is a plain HTTP page saying so.
"""

from __future__ import annotations

from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body",
                    "body": b"a WebSocket echo: connect to ws://this-host/echo\n"})
        return
    # websocket: accept, then echo each message until the client closes.
    await receive()  # websocket.connect
    subprotocols = scope["subprotocols"]
    await send({"type": "websocket.accept",
                "subprotocol": subprotocols[0] if subprotocols else None})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
