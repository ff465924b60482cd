from __future__ import annotations

import httpx
from examples.asgi.app import app as asgi_hello
from examples.wsgi.app import app as wsgi_hello


def test_hello_both(serve) -> None:
    for app in (wsgi_hello, asgi_hello):
        server = serve(app)
        r = httpx.get(server.url + "/")
        assert r.status_code == 200
        assert r.text == "Hello, World!\n"
        assert r.headers["server"] == "twincorn"
