"""The send side's back-pressure, one copy for both drivers.

asyncio tells a protocol when the socket's send buffer passes its
high-water mark (`pause_writing`) and when it drained (`resume_writing`).
A producer (an ASGI app's send, a WSGI body, a WebSocket message) checks
`write_paused` and waits in `drain()` meanwhile; the client has
--timeout-send to read again, checked by the worker's sweep
(`_send_due`), after which the connection is aborted.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twincorn.server.state import WorkerState

#: WorkerState.now is the time of the last sweep, up to one sweep interval
#: (a second) behind the real time. Deadlines are counted from one interval
#: later, so that a timeout never fires early (timeout_keep_alive=1 would
#: otherwise close a connection idle for a tenth of a second); a deadline
#: may fire up to two intervals late instead. (Both drivers use it.)
LAG = 1.0


class WriteFlow:
    """Mixed into HttpConnection and WebSocketConnection (asyncio Protocols)."""

    state: WorkerState
    transport: asyncio.Transport | None
    _write_paused: bool
    _drain_waiters: list[asyncio.Future[None]]
    _send_due: float  # 0: writing is not paused

    def pause_writing(self) -> None:
        self._write_paused = True
        send = self.state.timeouts.send
        if send:
            self._send_due = self.state.now + LAG + send

    def resume_writing(self) -> None:
        self._write_paused = False
        self._send_due = 0.0
        self._wake_drainers()

    @property
    def write_paused(self) -> bool:
        # A transport that is closing (the client reset the connection, or
        # it was aborted) drops what it is given and never pauses: until
        # connection_lost runs, a producer must wait in drain(), not spin.
        transport = self.transport
        return self._write_paused or (transport is not None and transport.is_closing())

    def drain(self) -> asyncio.Future[None]:
        """Wait until writing is no longer paused, or the socket is gone."""
        waiter: asyncio.Future[None] = self.state.loop.create_future()
        if self.transport is not None and self.write_paused:
            self._drain_waiters.append(waiter)
        else:
            waiter.set_result(None)
        return waiter

    def _wake_drainers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
