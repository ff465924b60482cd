"""WebSockets, for ASGI applications (docs/websocket.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from twincorn.settings.declare import setting


@dataclass(frozen=True)
class WebSocketSettings:
    """WebSockets, for ASGI applications (docs/websocket.md)."""

    __slots__ = ()

    # -- WebSockets (ASGI applications; docs/websocket.md)
    ws: Literal["auto", "websockets", "websockets-sansio", "wsproto", "none"] = setting(
        "auto",
        "WebSocket support: the websockets library (websockets-sansio names it too), "
        "wsproto, auto (websockets if installed, else wsproto) or none (upgrade requests "
        "reach the application as plain HTTP). WSGI applications always get plain HTTP.",
        section="websockets",
    )
    ws_max_size: int = setting(
        16 << 20,
        "Largest message accepted, decompressed; past it the socket closes with 1009.",
        section="websockets",
        metavar="SIZE",
        unit="size",
    )
    ws_max_queue: int = setting(
        32,
        "Messages received and not yet read by the application; at the limit no more "
        "frames are read until it reads one (back-pressure on the client).",
        section="websockets",
        metavar="N",
    )
    ws_ping_interval: float = setting(
        20.0,
        "How often an open WebSocket is pinged; 0 for never.",
        section="websockets",
        metavar="TIME",
        unit="duration",
    )
    ws_ping_timeout: float = setting(
        20.0,
        "How long a ping may go unanswered before the socket is closed (1011); 0 to "
        "wait for ever.",
        section="websockets",
        metavar="TIME",
        unit="duration",
    )
    ws_per_message_deflate: bool = setting(
        True,
        "Offer permessage-deflate compression (RFC 7692) to clients that ask.",
        section="websockets",
    )
    ws_handshake_timeout: float = setting(
        10.0,
        "How long the application has to accept (or refuse) a WebSocket once it heard "
        "websocket.connect; then 503.",
        section="websockets",
        metavar="TIME",
        unit="duration",
    )
