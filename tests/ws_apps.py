"""WebSocket applications the running-server tests serve: plain ASGI,
Starlette and FastAPI (importable by a master process too).

No `from __future__ import annotations` here: FastAPI reads the endpoint's
annotations at run time, and WebSocket is imported inside fastapi_app.
"""

import asyncio
from typing import Any

#: What the plain echo heard last (in this process): websocket.disconnect.
HEARD: list[dict[str, Any]] = []


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """HTTP: 200 "ok" (so a master knows it serves); WebSocket: an echo
    that remembers how its socket ended."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            HEARD.append(message)
            return
        await send({"type": "websocket.send", "text": message["text"],
                    "bytes": message["bytes"]})


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    async def chat(websocket: WebSocket) -> None:
        if websocket.query_params.get("token") != "secret":
            await websocket.close(code=1008)  # before accept: the server answers 403
            return
        await websocket.accept(subprotocol="chat")
        try:
            while True:
                text = await websocket.receive_text()
                if text == "bye":
                    await websocket.close(code=4001, reason="asked to")
                    return
                await websocket.send_text(f"{websocket.path_params['room']}: {text}")
        except WebSocketDisconnect as exc:
            HEARD.append({"type": "websocket.disconnect", "code": exc.code})

    return Starlette(routes=[WebSocketRoute("/rooms/{room}", chat)])


def fastapi_app() -> Any:
    from fastapi import FastAPI, WebSocket

    app = FastAPI()

    @app.websocket("/items/{item_id}")
    async def items(websocket: WebSocket, item_id: int, q: str = "") -> None:
        await websocket.accept()
        data = await websocket.receive_json()
        await websocket.send_json({"item_id": item_id, "q": q, "got": data})
        await asyncio.sleep(0)
        await websocket.close()

    return app
