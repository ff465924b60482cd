"""An ASGI app that waits a second without blocking: the loop serves others.

    twincorn serve examples.asgi.slow_app:app
"""

import asyncio
import os

# One second, unless SLOW_APP_SECONDS says otherwise (twincorn lab uses it).
DELAY = float(os.environ.get("SLOW_APP_SECONDS", "1"))


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await asyncio.sleep(DELAY)  # awaits: the event loop runs other requests meanwhile
    body = b"Slept for %g s\n" % DELAY
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})
