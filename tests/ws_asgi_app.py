"""A tiny ASGI WebSocket app for the load tester's tests, served by uvicorn
(tests/ws_servers.py): /echo echoes each message, /delay/MS echoes it MS
milliseconds later, /close/CODE closes at the first message with CODE."""

from __future__ import annotations

import asyncio
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    path: str = scope["path"]
    message = await receive()
    assert message["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    delay = float(path.removeprefix("/delay/")) / 1000 if path.startswith("/delay/") else 0.0
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if path.startswith("/close/"):
            await send({"type": "websocket.close", "code": int(path.removeprefix("/close/")),
                        "reason": "as asked"})
            return
        if delay:
            await asyncio.sleep(delay)
        reply = {"type": "websocket.send"}
        if message.get("bytes") is not None:
            reply["bytes"] = message["bytes"]
        else:
            reply["text"] = message.get("text", "")
        await send(reply)
