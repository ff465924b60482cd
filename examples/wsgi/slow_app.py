"""A WSGI app that blocks for a second, as a database call or an API would.

One worker serves one such request at a time (`--threads N`: N at a time):

    twincorn serve examples.wsgi.slow_app:app
"""

import os
import time

# One second, unless SLOW_APP_SECONDS says otherwise (twincorn lab uses it).
DELAY = float(os.environ.get("SLOW_APP_SECONDS", "1"))


def app(environ, start_response):
    time.sleep(DELAY)  # a blocking I/O call: the worker can do nothing else meanwhile
    body = b"Slept for %g s\n" % DELAY
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
