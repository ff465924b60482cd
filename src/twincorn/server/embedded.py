"""Serving an ASGI application on an event loop that does other work too.

`twincorn load --web` serves its page on the loop that generates the load,
so that the page reads the run's statistics without locks or copies.
`EmbeddedServer` is a Worker (server/worker.py) over sockets bound here,
with no master, no signal handlers and no new loop:

    server = EmbeddedServer(app, loop, bind="127.0.0.1:8089")
    print("open", server.url)
    status = await server.serve()   # until server.stop()

When it stops, the worker cancels only the tasks it started (requests
still running, connections being set up); the loop's other work goes on.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from twincorn import config as config_module
from twincorn.server.listener import describe, open_sockets, release
from twincorn.server.worker import Worker


class EmbeddedServer:
    """Serves one ASGI application on `loop` until stopped.

    Binding happens here, so that a busy port is reported (BindError)
    before anything else starts. `settings` are twincorn settings by name.
    """

    def __init__(
        self,
        app: Callable[..., Any],
        loop: asyncio.AbstractEventLoop,
        *,
        bind: str = "127.0.0.1:0",
        label: str = "",
        **settings: Any,
    ) -> None:
        settings.setdefault("access_log", False)
        # Only these settings: no TWINCORN_* variable, no twincorn.conf.py.
        self.config = config_module.build(environ={}, config=None, bind=[bind], **settings)
        self.sockets: list[socket.socket] = open_sockets(self.config.binds, self.config.backlog)
        self.worker = Worker(self.config, app, "asgi", self.sockets, loop, label)

    @property
    def url(self) -> str:
        """Where to point a browser (the first socket's address)."""
        return describe(self.sockets[0])

    @property
    def port(self) -> int:
        port: int = self.sockets[0].getsockname()[1]
        return port

    async def serve(self) -> int:
        """Serve until stop(); the worker's exit status (0, or 3 if the
        application's lifespan startup failed)."""
        try:
            return await self.worker.run()
        finally:
            for sock in self.sockets:
                release(sock)

    def stop(self, quick: bool = False) -> None:
        """Begin a stop: graceful (finish the requests going on) or quick."""
        self.worker.stop(quick)
