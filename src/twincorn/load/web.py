"""`twincorn load --web`: the web UI, an ASGI app served by twincorn itself.

Locust's web UI in spirit: a start form, a header with the run's state,
users, requests/s and failure ratio, Stop / Reset / New, and tabs with the
statistics table, live charts, the failures and the downloads. The page is
static/web_page.html with web.js; this module serves it and its API:

    GET  /                    the page
    GET  /static/<file>       its script, styles and uPlot (static_files.SERVED)
    GET  /api/state           everything so far, as one JSON object
    GET  /api/events          Server-Sent Events: a snapshot, then a tick a second
    POST /api/start           start a run (the form, urlencoded or JSON)
    POST /api/stop            stop it (its results stay)
    POST /api/reset           reset its statistics, or forget a finished run
                              (each POST answers with the new state, as
                              /api/state; web_control.py on why it must)
    GET  /download/<file>     stats.csv, stats_history.csv, failures.csv,
                              exceptions.csv, results.json, report.html

The run's history is kept on the server (web_control.RunControl), and the
page asks for all of it when it loads, so a reload loses nothing. Live
updates are one event stream per page, fed once a second, and no polling.

`serve_ui` runs it all on one event loop: the load run and the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from twincorn.load import output_csv
from twincorn.load.plan import LoadPlan
from twincorn.load.report_html import finite, render_html
from twincorn.load.static_files import SERVED, content_type, read_static
from twincorn.load.web_control import Busy, RunControl, RunFactory
from twincorn.load.web_form import FormError
from twincorn.server.embedded import EmbeddedServer
from twincorn.server.listener import BindError
from twincorn.server.worker import new_event_loop

log = logging.getLogger("twincorn.load")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_FORM = 64 * 1024  # bytes of a start form; more is refused (413)
KEEPALIVE = 15.0  # seconds between comments on a quiet event stream

JSON = "application/json"
CSV = "text/csv; charset=utf-8"


class WebUI:
    """The ASGI application of the web UI, over one RunControl."""

    def __init__(self, control: RunControl, *, keepalive: float = KEEPALIVE) -> None:
        self.control = control
        self.keepalive = keepalive
        self.streams = 0  # event streams open now
        self.routes: dict[tuple[str, str], Callable[[Receive, Send], Awaitable[None]]] = {
            ("GET", "/"): self.page,
            ("GET", "/api/state"): self.state,
            ("GET", "/api/events"): self.events,
            ("POST", "/api/start"): self.start,
            ("POST", "/api/stop"): self.stop,
            ("POST", "/api/reset"): self.reset,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if method == "HEAD" and path != "/api/events":
            method = "GET"  # the server leaves the body out
        handler = self.routes.get((method, path))
        if handler is not None:
            await handler(receive, send)
        elif method == "GET" and path.startswith("/static/") and path[8:] in SERVED:
            name = path[8:]
            await respond(send, 200, read_static(name).encode(), content_type(name),
                          cache="max-age=3600")
        elif method == "GET" and path.startswith("/download/"):
            await self.download(path[10:], send)
        elif any(p == path for _, p in self.routes):
            allow = ", ".join(m for m, p in self.routes if p == path)
            await respond(send, 405, b"method not allowed\n", "text/plain",
                          extra=[(b"allow", allow.encode())])
        else:
            await respond(send, 404, b"not found\n", "text/plain")

    # -- the page and its API ----------------------------------------------

    async def page(self, receive: Receive, send: Send) -> None:
        await respond(send, 200, read_static("web_page.html").encode(), content_type(".html"))

    async def state(self, receive: Receive, send: Send) -> None:
        await respond_json(send, 200, self.control.current())

    async def start(self, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        if body is None:
            await respond_json(send, 413, {"error": "The form is too large"})
            return
        try:
            view = self.control.start(parse_form(body))
        except FormError as exc:
            await respond_json(send, 400, {"error": str(exc), "field": exc.field})
            return
        except Busy as exc:
            await respond_json(send, 409, {"error": str(exc), "field": None})
            return
        await respond_json(send, 200, view)

    async def stop(self, receive: Receive, send: Send) -> None:
        await respond_json(send, 200, self.control.stop())

    async def reset(self, receive: Receive, send: Send) -> None:
        try:
            view = self.control.reset()
        except Busy as exc:
            await respond_json(send, 409, {"error": str(exc)})
            return
        await respond_json(send, 200, view)

    async def download(self, name: str, send: Send) -> None:
        results = self.control.results()
        if name == "results.json":
            body = json.dumps(finite(results), indent=2).encode()
            kind = JSON
        elif name == "report.html":
            body = render_html(results).encode()
            kind = content_type(".html")
        elif name in CSV_FILES:
            body = csv_text(name, results).encode()
            kind = CSV
        else:
            await respond(send, 404, b"not found\n", "text/plain")
            return
        disposition = f'attachment; filename="twincorn_{name}"'.encode()
        await respond(send, 200, body, kind, extra=[(b"content-disposition", disposition)])

    # -- the event stream ---------------------------------------------------

    async def events(self, receive: Receive, send: Send) -> None:
        """A snapshot, then every frame the run publishes, until the client
        goes (http.disconnect) or the UI closes."""
        hub = self.control.hub
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-store"),
        ]})
        gone = asyncio.ensure_future(wait_for_disconnect(receive))
        self.streams += 1
        try:
            seq = hub.seq
            await send_frame(send, b"retry: 2000\n\n" + self.control.snapshot_frame())
            while not hub.closed:
                event = hub.event  # taken before waiting: no publish slips between
                frames = hub.since(seq)
                seq = hub.seq
                if frames is None:  # too far behind: start again from everything
                    frames = [self.control.snapshot_frame()]
                for frame in frames:
                    await send_frame(send, frame)
                if frames:
                    continue
                waiter = asyncio.ensure_future(event.wait())
                done, _ = await asyncio.wait({waiter, gone}, timeout=self.keepalive,
                                             return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if gone.done():
                    return
                if not done:
                    await send_frame(send, b": still here\n\n")
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            return  # the client went while we were writing to it
        finally:
            gone.cancel()
            self.streams -= 1


async def send_frame(send: Send, frame: bytes) -> None:
    await send({"type": "http.response.body", "body": frame, "more_body": True})


async def wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_body(receive: Receive, limit: int = MAX_FORM) -> bytes | None:
    """The request body; None if it is longer than `limit`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def parse_form(body: bytes) -> dict[str, str]:
    """The start form: urlencoded (a plain <form>) or a JSON object."""
    text = body.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise FormError("The form is not valid JSON") from None
        if not isinstance(data, dict):
            raise FormError("The form must be a JSON object")
        return {str(k): "" if v is None else str(v) for k, v in data.items()}
    return dict(parse_qsl(text, keep_blank_values=True))


CSV_FILES: dict[str, Callable[[dict[str, Any]], str]] = {
    "stats.csv": output_csv.stats_csv,
    "stats_history.csv": output_csv.history_csv,
    "failures.csv": output_csv.failures_csv,
    "exceptions.csv": output_csv.exceptions_csv,
}


def csv_text(name: str, results: dict[str, Any]) -> str:
    """One of the CSV files of `--csv PREFIX`, with Locust's columns."""
    return CSV_FILES[name](results)


async def respond(
    send: Send, status: int, body: bytes, kind: str, *, cache: str = "no-store",
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", kind.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", cache.encode()),
        (b"x-content-type-options", b"nosniff"),
        *(extra or ()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def respond_json(send: Send, status: int, data: Any) -> None:
    body = json.dumps(finite(data), separators=(",", ":"), default=str).encode()
    await respond(send, status, body, JSON)


# -- serving it ------------------------------------------------------------


#: After the UI closes, how long its connections get to finish what they send.
_IDLE_GRACE = 1.0


class WebUIServer:
    """The web UI and its load runs on one event loop (the running one)."""

    def __init__(
        self, plan: LoadPlan, scenario: Any, loop: asyncio.AbstractEventLoop, *,
        host: str = "127.0.0.1", port: int = 8089, make_run: RunFactory | None = None,
    ) -> None:
        self.control = RunControl(plan, scenario, make_run)
        self.loop = loop
        bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.app = WebUI(self.control)
        self.server = EmbeddedServer(self.app, loop, bind=bind, label="twincorn load web UI")
        self.stopping: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return self.server.url

    async def serve(self) -> int:
        """Serve until shut down (shutdown(), or Ctrl-C under serve_ui)."""
        return await self.server.serve()

    def shutdown(self) -> None:
        """Stop the run (its results are kept), end the event streams, then
        the server. Call it on the loop's thread; a second call (Ctrl-C
        again) closes the connections without waiting."""
        if self.stopping is None:
            self.stopping = self.loop.create_task(self._shutdown())
        else:
            self.server.stop(quick=True)

    async def _shutdown(self) -> None:
        await self.control.close()
        self.server.stop()
        # The streams have ended: what is left are idle keep-alive
        # connections, which a graceful stop would keep for their whole
        # keep-alive time. Nobody will use them again: close them soon.
        self.loop.call_later(_IDLE_GRACE, self.server.stop, True)


def serve_ui(plan: LoadPlan, scenario: Any, host: str = "127.0.0.1", port: int = 8089) -> int:
    """Serve the web UI until Ctrl-C (or SIGTERM); the exit status."""
    loop, _ = new_event_loop("auto")
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_serve_ui(plan, scenario, host, port))
    finally:
        asyncio.set_event_loop(None)
        loop.close()


async def _serve_ui(plan: LoadPlan, scenario: Any, host: str, port: int) -> int:
    loop = asyncio.get_running_loop()
    try:
        ui = WebUIServer(plan, scenario, loop, host=host, port=port)
    except BindError as exc:
        print(f"twincorn load: {exc}", file=sys.stderr)
        return 1
    print(f"twincorn load: web UI on {ui.url} (Ctrl-C stops)", flush=True)
    signals = [signal.SIGINT, signal.SIGTERM]
    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, ui.shutdown)
    try:
        return await ui.serve()
    finally:
        for sig in signals:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
