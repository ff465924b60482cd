"""What the ASGI adapters share: the spec's types, its version, its error.

asgi.py serves the http and lifespan scopes, asgi_websocket.py the
websocket scope; both speak ASGI 3.0 at the spec version below, and raise
the same `ClientDisconnected` from send() once the client is gone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The scope's "asgi" key. HTTP and WebSocket spec 2.4: send() raises an
#: OSError subclass once the client is gone; 2.3 added the disconnect's reason.
ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}


class ClientDisconnected(OSError):
    """Raised by send() once the client is gone (ASGI HTTP and WebSocket
    spec 2.4), so that a streaming application stops producing."""


def scope_path(root_path: str, raw_root: bytes, raw_path: bytes) -> tuple[str, bytes]:
    """The scope's `path` (percent-decoded, as the spec asks; bytes above
    ASCII read as latin-1) and `raw_path`, both under `root_path`."""
    path = raw_path.decode("latin-1")
    if "%" in path:
        path = unquote(path)
    if root_path:
        return root_path + path, raw_root + raw_path
    return path, raw_path
