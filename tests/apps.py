"""Applications the tests serve: echo apps that report what they were given."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any
from wsgiref.validate import validator


def _wsgi_echo(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    body = b""
    stream = environ["wsgi.input"]
    while True:
        chunk = stream.read(65536)
        if not chunk:
            break
        body += chunk
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers.append([key[5:].replace("_", "-"), value])
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            headers.append([key.replace("_", "-"), value])
    raw_uri = environ["RAW_URI"]
    report = {
        "method": environ["REQUEST_METHOD"],
        "raw_uri": raw_uri,
        "path": environ["PATH_INFO"],
        "query": environ["QUERY_STRING"],
        "version": environ["SERVER_PROTOCOL"][5:],
        "headers": headers,
        "body_base64": base64.b64encode(body).decode(),
    }
    data = json.dumps(report).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]


#: The WSGI echo app, checked by wsgiref.validate on every request.
wsgi_echo = validator(_wsgi_echo)


async def asgi_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI echo app: headers in order, duplicates kept."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    report = {
        "method": scope["method"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "path": scope["path"],
        "query": scope["query_string"].decode("latin-1"),
        "version": scope["http_version"],
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
        "body_base64": base64.b64encode(body).decode(),
    }
    data = json.dumps(report).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": data})
