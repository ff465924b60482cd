"""The hello apps, reading the request body before they answer.

bench/slow_clients.py serves these for its slow-body attack: the hello apps
of examples/ answer without reading a body, so a server may answer (and the
attacker hang up) before the slow body matters. An app that reads the body,
as a form or an API endpoint does, makes the server wait for it.

    twincorn serve bench.body_app:app       (ASGI)
    twincorn serve bench.body_app:wsgi_app  (WSGI)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

BODY = b"Hello, World!\n"
HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(BODY))]


async def app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def wsgi_app(
    environ: dict[str, Any], start_response: Callable[..., Any]
) -> Iterable[bytes]:
    environ["wsgi.input"].read()
    start_response("200 OK", [(k.decode(), v.decode()) for k, v in HEADERS])
    return [BODY]
