"""The contract between the connection driver and the two adapters.

The server (server/protocol.py) owns the socket. For each request it parses
it creates an Exchange through the adapter (asgi.py or wsgi.py), pushes the
request body into it, and tells it when the client is gone. The adapter runs
the application and talks back through the Channel it was given: bytes to
write, back-pressure, and the end of the response. Neither side knows the
other's class; these two Protocols are all they share.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from dataclasses import dataclass
from typing import IO, Any, Protocol

from twincorn.http import Request
from twincorn.ws import Backend

#: The exchange whose application code is running, and since when (monotonic
#: seconds): set by the adapters when they call the app (in the ASGI Task's
#: own context; around an inline WSGI call). A stuck worker reads it to say
#: which request blocks it (server/worker.py, report_stuck).
SERVING: ContextVar[tuple[Exchange, float] | None] = ContextVar("serving", default=None)


@dataclass(frozen=True, slots=True)
class TlsInfo:
    """A TLS connection as the adapters show it, made once per connection
    (server/tls.py) and shared by its requests."""

    #: The ASGI TLS extension (scope["extensions"]["tls"]): server_cert,
    #: client_cert_chain, client_cert_name, client_cert_error, tls_version,
    #: cipher_suite.
    scope: dict[str, Any]
    #: The WSGI environ's keys, named after Apache mod_ssl's: HTTPS,
    #: SSL_PROTOCOL, SSL_CIPHER, SSL_CLIENT_VERIFY and, with a client
    #: certificate, SSL_CLIENT_S_DN, SSL_CLIENT_I_DN, SSL_CLIENT_CERT.
    environ: dict[str, str]


class Channel(Protocol):
    """What an exchange may ask of the connection it belongs to."""

    #: (host, port) of the peer and of our socket; None for a UNIX socket peer.
    client: tuple[str, int] | None
    server: tuple[str, int] | None
    #: "http", or "https" over TLS (WebSocket scopes make them ws and wss).
    scheme: str
    #: What the TLS handshake settled; None for plain HTTP.
    tls: TlsInfo | None
    #: Free for the adapter: what it computes once per connection rather than
    #: once per request (the WSGI adapter keeps the connection's environ here).
    adapter_state: Any

    @property
    def keep_alive(self) -> bool:
        """May the response now starting leave the connection open, as far
        as the connection is concerned? (The request and the application
        have their say in ResponseWriter.) Read when the response starts."""
        ...

    def send_continue(self) -> None:
        """The application wants the request body: send 100 Continue if the
        client waits for it (RFC 9110 section 10.1.1). Once at most; never
        after the response started (the exchange calls it only before)."""
        ...

    @property
    def write_paused(self) -> bool:
        """True while the socket's send buffer is above its high-water mark."""
        ...

    def write(self, data: bytes) -> None:
        """Queue bytes for the socket (never blocks, never raises)."""
        ...

    def drain(self) -> asyncio.Future[None]:
        """Wait until writing is no longer paused, or the client is gone."""
        ...

    async def sendfile(self, file: IO[bytes], offset: int, count: int) -> None:
        """Send `count` bytes of `file` from `offset`, with back-pressure."""
        ...

    def pause_reading(self) -> None:
        """Stop reading the request body: the exchange has enough buffered."""
        ...

    def resume_reading(self) -> None: ...

    def response_complete(self, keep_alive: bool) -> None:
        """The response is fully written; the connection may carry on."""
        ...

    def abort(self) -> None:
        """Close the connection at once, losing what is not yet written."""
        ...

    def upgrade(self, backend: Backend, session: WebSocketSession) -> WebSocketChannel:
        """Hand the connection over to a WebSocket (RFC 6455): the backend
        has queued its 101 response; from now on the socket's bytes go to
        the backend, its messages to the session, and this request's
        exchange is over. Called at most once, on the current exchange."""
        ...


class Exchange(Protocol):
    """One request-response pair, as the adapter runs it."""

    request: Request
    #: The status sent (0 until the response starts) and the body bytes sent.
    status: int
    bytes_sent: int

    def start(self) -> None:
        """It is this request's turn: run the application."""
        ...

    def feed_body(self, data: bytes) -> None:
        """A piece of the decoded request body arrived."""
        ...

    def body_complete(self) -> None:
        """The request body ended (possibly empty)."""
        ...

    def client_gone(self) -> None:
        """The connection was lost, or the body was cut short by the client:
        nothing more is read or written."""
        ...

    def input_closed(self) -> None:
        """The client shut its sending side after complete requests: no
        more input comes. Responses are still written (a half-close is not
        a departure), but an application waiting for input hears that the
        client is done (ASGI: http.disconnect)."""
        ...


class WebSocketChannel(Protocol):
    """What a WebSocket session may ask of the connection that carries it
    (server/websocket.py), once the handshake is done."""

    @property
    def write_paused(self) -> bool: ...

    def drain(self) -> asyncio.Future[None]:
        """Wait until writing is no longer paused, or the socket is gone."""
        ...

    def send(self, data: str | bytes) -> None:
        """Send one message: text for str, binary for bytes."""
        ...

    def close(self, code: int, reason: str) -> None:
        """Begin the closing handshake; the session hears on_closed when
        it is over (or the socket is lost)."""
        ...

    def pause_reading(self) -> None:
        """The session holds enough unread messages: read no more frames."""
        ...

    def resume_reading(self) -> None: ...


class WebSocketSession(Protocol):
    """What the connection tells the application's side of a WebSocket."""

    def on_message(self, data: str | bytes) -> None: ...

    def on_closed(self, code: int, reason: str) -> None:
        """The WebSocket is over (the close handshake, a failure, or the
        socket lost: 1006). Called once; nothing more is sent or received."""
        ...

    def on_finished(self, seconds: float, bytes_in: int, bytes_out: int) -> None:
        """The socket is closed: what it carried, for the access log."""
        ...


class Adapter(Protocol):
    """Creates exchanges for one application; one per worker."""

    #: Shown in the startup log: "asgi", or "wsgi" with its thread count.
    description: str

    @property
    def busy(self) -> bool:
        """True while the worker should stop accepting connections."""
        ...

    def new_exchange(self, request: Request, channel: Channel) -> Exchange: ...

    async def startup(self) -> None:
        """Before the first connection is accepted (ASGI lifespan startup)."""

    async def shutdown(self) -> None:
        """After the last connection is closed (ASGI lifespan shutdown)."""
