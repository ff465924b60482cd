"""Start the server from Python: python examples/asgi/run.py"""

import twincorn
from app import app  # the hello app beside this file

if __name__ == "__main__":
    twincorn.run(app, host="127.0.0.1", port=8001)
