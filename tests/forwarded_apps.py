"""Applications that answer what the server told them about the request:
the client, the scheme, the server and the Host (tests/test_nginx.py)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
    body = json.dumps({"client": scope["client"], "scheme": scope["scheme"],
                       "server": scope["server"], "host": host}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    client = None
    if "REMOTE_ADDR" in environ:
        client = [environ["REMOTE_ADDR"], int(environ.get("REMOTE_PORT", "0"))]
    body = json.dumps({"client": client, "scheme": environ["wsgi.url_scheme"],
                       "server": [environ["SERVER_NAME"], int(environ["SERVER_PORT"])],
                       "host": environ.get("HTTP_HOST", "")}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
