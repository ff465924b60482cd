"""Where to listen, and the event loop that does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from twincorn.address import DEFAULT_BIND
from twincorn.settings.declare import setting


@dataclass(frozen=True)
class ListenSettings:
    """Where to listen, and the event loop that does."""

    __slots__ = ()

    # -- where to listen
    bind: tuple[str, ...] = setting(
        [],
        "Address to listen on: HOST:PORT, HOST (port 8000), [IPV6]:PORT, unix:PATH "
        "or fd://N (an inherited socket); repeat for more. Sockets passed by systemd "
        "(LISTEN_FDS) are used instead when present.",
        "-b",
        metavar="ADDRESS",
        shown=DEFAULT_BIND,
    )
    host: str | None = setting(
        None, "Shorthand for --bind HOST:PORT (with --port).", metavar="HOST"
    )
    port: int | None = setting(None, "Shorthand for --bind HOST:PORT (with --host).",
                               metavar="PORT")
    backlog: int = setting(2048, "Length of the listen queue.", metavar="N")
    reuse_port: bool = setting(
        False, "Set SO_REUSEPORT on the listening sockets (lets other processes bind them too)."
    )
    unix_socket_mode: str | None = setting(
        None,
        "Permissions of unix: sockets, in octal (e.g. 660).",
        metavar="MODE",
        shown="as the umask leaves them",
    )
    loop: Literal["auto", "uvloop", "asyncio"] = setting(
        "auto", "Event loop: uvloop where installed (auto), or plain asyncio."
    )
