"""The hello app, WSGI: from the server's point of view, a callable.

    twincorn serve examples.wsgi.app:app        (from the repository root)
    cd examples/wsgi && twincorn serve app:app  (the seed's way)
"""


def app(environ, start_response):
    body = b"Hello, World!\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
