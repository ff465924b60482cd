"""The WebSocket core: RFC 6455 from a kept sans-IO library, no I/O.

`core.py` says what the rest of twincorn asks of a WebSocket (the events,
the limits, the `Backend` Protocol, the message assembler); each backend
module drives one library behind it: `backend_websockets.py` (the
`websockets` package's ServerProtocol) and `backend_wsproto.py` (wsproto).
server/websocket.py drives a backend over a socket; asgi_websocket.py gives
it to an ASGI application.
"""

from twincorn.ws.core import (
    BACKENDS,
    Backend,
    Closed,
    Event,
    Limits,
    Message,
    Pong,
    Refusal,
    is_websocket_request,
    opener,
    resolve,
)

__all__ = [
    "BACKENDS",
    "Backend",
    "Closed",
    "Event",
    "Limits",
    "Message",
    "Pong",
    "Refusal",
    "is_websocket_request",
    "opener",
    "resolve",
]
