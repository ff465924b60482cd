"""`twincorn serve --trace`: the application seen as the callable it is.

From the server's side an application is only a callable with a standard
signature: `app(environ, start_response)` for WSGI (PEP 3333), `await
app(scope, receive, send)` for ASGI. With --trace the worker wraps the
callable and logs, per request, what the server hands it and what it hands
back, with the time since the call began:

    [trace #3] WSGI: app(environ, start_response)
      environ = {'REQUEST_METHOD': 'GET', 'PATH_INFO': '/', ...}
      +0.04 ms  start_response('200 OK', [('Content-Type', 'text/plain')])
      +0.05 ms  app returned a list
      +0.06 ms  body chunk 1: b'Hello, world!\\n' (14 bytes)
      +0.07 ms  done: 1 chunk, 14 bytes

The wrappers stand between the server and the application and change
nothing they pass on; they cost time (the log lines), so tracing is for
learning and debugging, not for serving load.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any

from twincorn.logs import escape

log = logging.getLogger("twincorn.error")

_BYTES_SHOWN = 60
_HEADERS_SHOWN = 12
# The environ keys shown first, in this order (the CGI ones of PEP 3333);
# wsgi.* follow; the HTTP_ headers last.
_CGI_KEYS = (
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
    "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR",
    "REMOTE_PORT",
)


def wrap(app: Callable[..., Any], interface: str) -> Callable[..., Any]:
    """The application, wrapped so that each call is traced."""
    return trace_asgi(app) if interface == "asgi" else trace_wsgi(app)


def show(value: Any) -> str:
    """A value as Python would print it, with long bytes and lists abridged."""
    if isinstance(value, bytes | bytearray):
        if len(value) <= _BYTES_SHOWN:
            return repr(bytes(value))
        return f"{bytes(value[:_BYTES_SHOWN])!r}... ({len(value)} bytes)"
    if isinstance(value, str):
        return repr(value) if len(value) <= _BYTES_SHOWN else repr(value[:_BYTES_SHOWN]) + "..."
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: {show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        items = [show(v) for v in value[:_HEADERS_SHOWN]]
        if len(value) > _HEADERS_SHOWN:
            items.append(f"... ({len(value)} items)")
        if isinstance(value, tuple):
            return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
        return "[" + ", ".join(items) + "]"
    return escape(repr(value))


class _Call:
    """One traced call: its number and its clock."""

    _numbers = itertools.count(1)

    def __init__(self, kind: str, signature: str) -> None:
        self.number = next(self._numbers)
        self.started = time.perf_counter()
        log.info("[trace #%d] %s: %s", self.number, kind, signature)

    def say(self, text: str) -> None:
        elapsed = (time.perf_counter() - self.started) * 1000
        log.info("[trace #%d]   +%.2f ms  %s", self.number, elapsed, text)


# -- ASGI ------------------------------------------------------------------------

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


def trace_asgi(app: ASGIApp) -> ASGIApp:
    async def traced(scope: Any, receive: Any, send: Any) -> None:
        call = _Call("ASGI", "await app(scope, receive, send)")
        log.info("[trace #%d]   scope = %s", call.number, show(_abridged_scope(scope)))

        async def traced_receive() -> Any:
            message = await receive()
            call.say(f"await receive() -> {show(message)}")
            return message

        async def traced_send(message: Any) -> None:
            call.say(f"await send({show(message)})")
            await send(message)

        try:
            await app(scope, traced_receive, traced_send)
        except BaseException as exc:
            call.say(f"app raised {type(exc).__name__}: {exc}")
            raise
        call.say("app returned")

    return traced


def _abridged_scope(scope: Mapping[str, Any]) -> dict[str, Any]:
    # The lifespan state and the asgi versions are the same on every call.
    return {k: v for k, v in scope.items() if k not in ("state", "asgi")}


# -- WSGI ------------------------------------------------------------------------

def trace_wsgi(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    def traced(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        call = _Call("WSGI", "app(environ, start_response)")
        log.info("[trace #%d]   environ = %s", call.number, show(_abridged_environ(environ)))

        def traced_start_response(status: str, headers: list[tuple[str, str]],
                                  exc_info: Any = None) -> Callable[[bytes], Any]:
            extra = ", exc_info" if exc_info else ""
            call.say(f"start_response({status!r}, {show(headers)}{extra})")
            write = start_response(status, headers, exc_info)

            def traced_write(data: bytes) -> Any:
                call.say(f"write({show(data)})")
                return write(data)

            return traced_write

        try:
            result = app(environ, traced_start_response)
        except BaseException as exc:
            call.say(f"app raised {type(exc).__name__}: {exc}")
            raise
        call.say(f"app returned {_kind(result)}")
        return _TracedBody(result, call)

    return traced


def _abridged_environ(environ: Mapping[str, Any]) -> dict[str, Any]:
    shown = {k: environ[k] for k in _CGI_KEYS if k in environ}
    shown.update((k, v) for k, v in environ.items() if k.startswith("wsgi."))
    shown.update((k, v) for k, v in environ.items() if k.startswith("HTTP_"))
    return shown


def _kind(result: object) -> str:
    if isinstance(result, list):
        return f"a list of {len(result)} chunk{'s' if len(result) != 1 else ''}"
    return f"an iterable ({type(result).__name__})"


class _TracedBody:
    """The application's iterable, each chunk traced as the server takes it."""

    def __init__(self, result: Iterable[bytes], call: _Call) -> None:
        self.result = result
        self.call = call
        self.chunks = 0
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.result:
            self.chunks += 1
            self.size += len(chunk)
            self.call.say(f"body chunk {self.chunks}: {show(chunk)}")
            yield chunk

    def close(self) -> None:
        close = getattr(self.result, "close", None)
        if close is not None:
            close()
            self.call.say("close() called on the iterable")
        plural = "s" if self.chunks != 1 else ""
        self.call.say(f"done: {self.chunks} chunk{plural}, {self.size} bytes")
