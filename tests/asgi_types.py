"""Type names for the ASGI tests (plain dicts: what the tests build and read)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from support import RunningServer

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]
ServeFn = Callable[..., RunningServer]
