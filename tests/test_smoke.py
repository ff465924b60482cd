from __future__ import annotations

from collections.abc import Callable

import httpx
from examples.asgi.app import app as asgi_hello
from examples.wsgi.app import app as wsgi_hello

from support import RunningServer


def test_hello_both(serve: Callable[..., RunningServer]) -> None:
    for app in (wsgi_hello, asgi_hello):
        server = serve(app)
        r = httpx.get(server.url + "/")
        assert r.status_code == 200
        assert r.text == "Hello, World!\n"
        assert r.headers["server"] == "twincorn"
