"""A chat room in plain ASGI: every message a client sends goes to every
connected client, the sender included.

    twincorn serve examples.asgi.chat:app
    python -m websockets ws://127.0.0.1:8000/chat    # in two terminals: type in one

Every WebSocket path opens the same room; any other request gets a plain
HTTP page saying so. There is one room per process: with `-w 4`, four rooms
that do not hear each other (a real app joins them through Redis or a
database's notifications).

What it costs. A member that says nothing is a socket and this coroutine,
waiting in `receive()`: no thread, about 13 KiB under twincorn. A message is one
`await send(...)` per member, in the order they joined: `send` returns at
once while a socket's buffer has room, so a broadcast costs one write per
member and the last one hears it after all the others' writes. `twincorn
lab` measures both: memory per idle socket, broadcast latency against the
number of members (docs/execution-model.md).

What it leaves out. `send` waits while a member's buffer is full (the
server's back-pressure), so a member that stops reading holds the room up
once its buffer fills; a production room gives each member a bounded outbox
and a task that writes it, and drops the member whose outbox overflows.
This one keeps a single loop, so that the cost of a broadcast is plain.
"""

from __future__ import annotations

import itertools
from typing import Any

# The members, by the order they joined: member number -> its send().
ROOM: dict[int, Any] = {}
_numbers = itertools.count()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "http":
        body = b"a chat room: connect a WebSocket to ws://this-host/chat\n"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"),
                                (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    number = next(_numbers)
    ROOM[number] = send
    try:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await broadcast(message)
    finally:
        ROOM.pop(number, None)


async def broadcast(message: dict[str, Any]) -> None:
    """Send a received message to every member (a copy of the room: members
    may join or leave while the sends await)."""
    if message.get("text") is not None:
        out = {"type": "websocket.send", "text": message["text"]}
    else:
        out = {"type": "websocket.send", "bytes": message["bytes"]}
    for number, send in list(ROOM.items()):
        try:
            await send(out)
        except OSError:  # it left meanwhile: the ASGI spec's error for a closed socket
            ROOM.pop(number, None)
