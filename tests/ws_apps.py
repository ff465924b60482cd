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


def channels_app() -> Any:
    """A Django Channels consumer behind Channels' URL router (Django set up
    with the least settings it needs)."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(INSTALLED_APPS=["channels"], ALLOWED_HOSTS=["*"],
                           SECRET_KEY="tests only")
        django.setup()
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.routing import URLRouter
    from django.urls import path

    class Room(AsyncWebsocketConsumer):  # type: ignore[misc]
        async def connect(self) -> None:
            await self.accept()

        async def receive(self, text_data: str | None = None,
                          bytes_data: bytes | None = None) -> None:
            room = self.scope["url_route"]["kwargs"]["room"]
            await self.send(text_data=f"{room}: {text_data}")

    return URLRouter([path("ws/<str:room>/", Room.as_asgi())])
