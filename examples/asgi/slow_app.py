"""An ASGI app that waits a second without blocking: the loop serves others.

    twincorn serve examples.asgi.slow_app:app
"""

import asyncio


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await asyncio.sleep(1)  # awaits: the event loop runs other requests meanwhile
    body = b"Slept for 1 second\n"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})
