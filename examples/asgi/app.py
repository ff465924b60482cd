"""The hello app, ASGI: an async callable of (scope, receive, send).

    twincorn serve examples.asgi.app:app
"""


async def app(scope, receive, send):
    if scope["type"] != "http":
        return  # lifespan and anything else: nothing to do
    body = b"Hello, World!\n"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})
