"""Start the server from Python: python examples/asgi/run.py"""

from app import app  # the hello app beside this file

import twincorn

if __name__ == "__main__":
    twincorn.run(app, host="127.0.0.1", port=8001)
