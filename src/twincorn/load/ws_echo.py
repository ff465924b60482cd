"""`twincorn load ws://HOST/PATH`: an echo benchmark, with no scenario file.

Each user opens one WebSocket and makes round trips on it: send a message,
wait for its echo, check it, and again. In the closed model (-u) each user
goes back to back; in the open model (--rate) each arrival is one round
trip, on an idle user's socket, its latency counted from the arrival's
scheduled time. The rows are those of any WebSocket (ws_client.py):
"WS connect /echo" for each handshake, "WS /echo" for the round trips.

The message is --message-size random bytes, sent as one binary frame, the
same bytes each time (made once per process), or --message-text as one
text frame. A reply of another type, length or content is a failure, "echo
mismatch". Each user has one message in flight at a time, so a reply can
only be the echo of the last message sent.

A user whose socket was closed opens a new one at its next round trip;
after a failed connect it first waits (10 ms, doubling up to 1 s), so that
a refused port does not make it spin.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from twincorn.load.context import WebSocketError
from twincorn.load.scenario import Scenario
from twincorn.load.users import User, task
from twincorn.load.ws_client import WebSocket
from twincorn.load.ws_connection import MISMATCH, Message

_FIRST_BACKOFF, _LAST_BACKOFF = 0.01, 1.0


@dataclass(frozen=True)
class WsEcho:
    """The echo of a ws:// URL, for the lean loop (ws_fastpath.py): where,
    what to send, the rows' name."""

    url: str
    message: Message
    headers: tuple[tuple[str, str], ...]
    name: str  # the URL's path and query: "/echo"


def mismatch(sent: Message, back: Message) -> str | None:
    """Why `back` is not the echo of `sent` (None: it is)."""
    if back == sent:
        return None
    if isinstance(back, str) != isinstance(sent, str):
        got, wanted = ("text", "binary") if isinstance(back, str) else ("binary", "text")
        return f"{MISMATCH}: a {got} message back for a {wanted} one"
    unit = "characters" if isinstance(sent, str) else "bytes"
    if len(back) != len(sent):
        return f"{MISMATCH}: {len(sent):,} {unit} sent, {len(back):,} back"
    return f"{MISMATCH}: {len(back):,} {unit} back, not those sent"


def echo_scenario(
    url: str, message_size: int, message_text: str | None, headers: tuple[str, ...]
) -> Scenario:
    """The no-file scenario of a ws:// or wss:// URL."""
    pairs = {
        name.strip(): value.strip()
        for name, _, value in (line.partition(":") for line in headers)
    }
    payload: Message = message_text if message_text is not None else os.urandom(message_size)
    what = (f"{len(message_text):,} characters of text" if message_text is not None
            else f"{message_size:,} random bytes")
    spec_text = ("1", message_text) if message_text is not None else ("0", "")
    parts = urlsplit(url)
    name = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Scenario(
        [_echo_user(url, payload, pairs)],
        ("ws", (url, str(message_size), *spec_text, *headers)),
        description=f"WebSocket echo {url} ({what})",
        ws_echo=WsEcho(url, payload, tuple(pairs.items()), name),
    )


def from_spec_args(args: tuple[str, ...]) -> Scenario:
    """echo_scenario() again from its spec's arguments (a load process)."""
    url, size, has_text, text, *headers = args
    return echo_scenario(url, int(size), text if has_text == "1" else None, tuple(headers))


def _echo_user(url: str, payload: Message, headers: dict[str, str]) -> type[User]:
    parts = urlsplit(url)
    name = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    class WebSocketEcho(User):
        host = url
        ws: WebSocket | None = None  # this user's socket, once open
        backoff = _FIRST_BACKOFF

        @task
        async def round_trip(self) -> None:
            ws = self.ws
            if ws is None or not ws.open:
                ws = self.ws = await self._connect()
            try:
                await ws.send(payload)
                back = await ws.receive()
            except WebSocketError:
                # A late echo must not pass for the next message's: this
                # socket is dropped (uncounted), the next round trip opens one.
                ws.abort()
                raise
            problem = mismatch(payload, back)
            if problem is not None:
                ws.failure(problem, kind=MISMATCH)

        async def _connect(self) -> WebSocket:
            if self.ws is not None:
                await self.ws.close()  # closed by the server: nothing is counted
                self.ws = None
            try:
                ws = await self.client.websocket(url, headers=headers, name=name)
            except WebSocketError:
                await asyncio.sleep(self.backoff)  # counted already; then a pause
                self.backoff = min(self.backoff * 2, _LAST_BACKOFF)
                raise
            self.backoff = _FIRST_BACKOFF
            return ws

    return WebSocketEcho
