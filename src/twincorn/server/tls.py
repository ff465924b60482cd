"""TLS connections: from an accepted socket to an HTTP connection over TLS.

The listener (server/listener.py) hands each connection accepted on a TCP
socket to `TlsAcceptor.accept` when TLS is on. Its way, step by step:

1. The connection counts against --worker-connections from now on
   (WorkerState.handshakes), as any connection: at the limit, room is made
   as for any newcomer, or the newcomer is closed.
2. The first bytes are peeked at (MSG_PEEK: they stay in the socket). A TLS
   record of a handshake begins with 0x16 (RFC 8446 section 5.1); a letter
   is a plain-HTTP request sent to the TLS port, answered 400 as nginx does
   ("The plain HTTP request was sent to HTTPS port") and closed; anything
   else is closed at once. Usually the ClientHello is there already when
   the connection is accepted: one recv() system call is the whole cost.
3. asyncio's own TLS transport (uvloop's, under uvloop) does the handshake:
   `loop.connect_accepted_socket(..., ssl=context)`. The handshake deadline
   (--tls-handshake-timeout) runs from the accept, across steps 2 and 3:
   a client that connects and stalls, before or during its ClientHello,
   holds its place that long at most.
4. The HTTP connection (`TlsConnection`) then starts as any other, with its
   scheme "https" and what the handshake settled (TlsInfo) for the adapters.

With --proxy-protocol, a peer in --proxy-allow-ips sends its PROXY header
before the TLS handshake (the balancer relays TCP; HAProxy's send-proxy on
a TLS backend does the same). Before step 2 the header is read from the
socket itself, exactly: what follows it is the ClientHello, left for the
TLS transport. A missing or malformed header closes the connection with
nothing written, as for plain HTTP (server/protocol.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import TYPE_CHECKING

from twincorn.http.proxy_protocol import ProxyHeader, ProxyHeaderError, parse_header
from twincorn.http.response import encode_error_response
from twincorn.server.protocol import HttpConnection

if TYPE_CHECKING:
    from twincorn.server.state import WorkerState
    from twincorn.server.tls_context import TlsSetup

log = logging.getLogger("twincorn.error")

#: The first byte of a TLS record that carries a handshake (ClientHello).
_HANDSHAKE_RECORD = 0x16
#: nginx's words for the same mistake, as clients and people know them.
PLAIN_HTTP_REFUSAL = encode_error_response(400, "The plain HTTP request was sent to HTTPS port")
# How much of a plain-HTTP request is read (and dropped) before the answer:
# unread bytes left in the socket would make its close a reset, and the
# client could lose the answer.
_PLAIN_READ = 1 << 16
#: How long closing a TLS connection waits for the client's close_notify
#: (asyncio's default is 30 s: many clients never send it).
SHUTDOWN_TIMEOUT = 2.0


class TlsConnection(HttpConnection):
    """An HTTP connection over TLS: the driver, once the handshake is done."""

    #: Its PROXY header, if any, came before TLS: TlsAcceptor read it.
    reads_proxy_header = False

    def __init__(self, state: WorkerState, setup: TlsSetup,
                 proxied: ProxyHeader | None = None) -> None:
        super().__init__(state)
        self.setup = setup
        self.handshaken = False
        self.proxied = proxied

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Called by the TLS transport once the handshake is done: from now on
        # this connection counts among state.connections instead.
        self.handshaken = True
        self.state.handshakes -= 1
        self.scheme = "https"
        self.tls = self.setup.info(transport.get_extra_info("ssl_object"))
        super().connection_made(transport)
        proxied = self.proxied
        if proxied is not None and proxied.source is not None:
            self.client, self.server = proxied.source, proxied.destination
            self.trust()  # judged again, of the real client

    def eof_received(self) -> bool:
        # The client's close_notify: asyncio's TLS transport closes the
        # connection after it whatever we say (no half-close over TLS), and
        # warns if asked to keep it open. Responses still owed are lost, as
        # the client said it reads no more.
        super().eof_received()
        return False


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class TlsAcceptor:
    """Takes accepted sockets through the TLS handshake (see the module's
    docstring); `setup` is replaced when the worker gets a new one."""

    def __init__(self, state: WorkerState, setup: TlsSetup) -> None:
        self.state = state
        self.loop = state.loop
        self.setup = setup

    async def accept(self, conn: socket.socket) -> None:
        """Serve `conn` over TLS; closes it on any failure before HTTP."""
        state, loop, setup = self.state, self.loop, self.setup
        # For the log, read now: once the transport failed, the socket is gone.
        peer = _peer(conn) if log.isEnabledFor(logging.DEBUG) else ""
        state.handshakes += 1
        protocol: TlsConnection | None = None
        try:
            if state.full and not state.make_room():
                log.debug("connection limit (%d) reached, every connection busy: "
                          "TLS connection closed", state.max_connections)
                conn.close()
                return
            deadline = loop.time() + setup.handshake_timeout
            proxied = None
            peers = state.proxy_peers
            if peers is not None and _peer_ip(conn) in peers:
                proxied = await self._read_proxy_header(conn, deadline)
                if proxied is None:
                    return
            first = await self._peek(conn, deadline)
            if not first or first[0] != _HANDSHAKE_RECORD:
                self._not_tls(conn, first)
                return

            def made() -> TlsConnection:
                nonlocal protocol
                protocol = TlsConnection(state, setup, proxied)
                return protocol

            await loop.connect_accepted_socket(
                made, conn, ssl=setup.context,
                ssl_handshake_timeout=max(0.001, deadline - loop.time()),
                ssl_shutdown_timeout=SHUTDOWN_TIMEOUT,
            )
        except OSError as exc:  # failed, or timed out (TimeoutError is an OSError)
            log.debug("TLS handshake with %s failed: %s", peer, exc or type(exc).__name__)
            conn.close()
        finally:
            if protocol is None or not protocol.handshaken:
                state.handshakes -= 1

    async def _read_proxy_header(self, conn: socket.socket,
                                 deadline: float) -> ProxyHeader | None:
        """The PROXY header in front of the TLS handshake, taken out of the
        socket and no byte more; None (the socket closed) if there is none
        or it is malformed. While it is incomplete every byte received is
        the header's, so they are taken as they come."""
        taken = b""
        while True:
            data = await self._peek(conn, deadline, 4096)
            if not data:
                log.debug("connection from %s closed before its PROXY header", _peer(conn))
                conn.close()
                return None
            try:
                header = parse_header(taken + data)
            except ProxyHeaderError as exc:
                log.info("closed %s (--proxy-protocol, a peer in --proxy-allow-ips): %s",
                         _peer(conn), exc)
                conn.close()
                return None
            if header is not None:
                conn.recv(header.length - len(taken))  # peeked: it is there
                return header
            taken += conn.recv(len(data))

    async def _peek(self, conn: socket.socket, deadline: float, size: int = 16) -> bytes:
        """The first bytes the client sent, left in the socket; b"" if it
        closed. TimeoutError if none came by `deadline`."""
        loop = self.loop
        while True:
            try:
                return conn.recv(size, socket.MSG_PEEK)
            except (BlockingIOError, InterruptedError):
                pass
            if loop.time() >= deadline:
                raise TimeoutError("no TLS handshake came in time")
            waiter: asyncio.Future[None] = loop.create_future()
            fd = conn.fileno()
            loop.add_reader(fd, _wake, waiter)
            timer = loop.call_at(deadline, _wake, waiter)
            try:
                await waiter
            finally:
                loop.remove_reader(fd)
                timer.cancel()

    def _not_tls(self, conn: socket.socket, first: bytes) -> None:
        """Not a TLS handshake: a plain-HTTP request is answered 400 (as
        nginx does), anything else just closed."""
        if first[:1].isalpha():
            log.debug("plain HTTP request from %s on a TLS port: 400", _peer(conn))
            with contextlib.suppress(OSError):
                conn.recv(_PLAIN_READ)
                conn.send(PLAIN_HTTP_REFUSAL)
                conn.shutdown(socket.SHUT_WR)
        else:
            log.debug("connection from %s closed: %s", _peer(conn),
                      "it closed first" if not first else "not a TLS handshake")
        conn.close()


def _peer_ip(conn: socket.socket) -> str | None:
    """The peer's address as --proxy-allow-ips lists it (None: no address)."""
    try:
        return str(conn.getpeername()[0])
    except (OSError, IndexError, TypeError):
        return None


def _peer(conn: socket.socket) -> str:
    try:
        host, port = conn.getpeername()[:2]
    except (OSError, ValueError):
        return "a client"
    return f"{host}:{port}"
