"""A WSGI app that blocks for a second, as a database call or an API would.

One worker serves one such request at a time (`--threads N`: N at a time):

    twincorn serve examples.wsgi.slow_app:app
"""

import time


def app(environ, start_response):
    time.sleep(1)  # a blocking I/O call: the worker can do nothing else meanwhile
    body = b"Slept for 1 second\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
