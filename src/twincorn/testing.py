"""Fakes for driving the connection driver and the adapters without sockets.

twincorn's own tests use them, and so does its fuzzer (fuzz/driver.py);
they ship with the package, as trio ships trio.testing, for anyone who
wants to drive a connection the same way. h11's `ConnectionPair` is the
model: both ends of a connection joined by a fake network, in one thread,
with nothing left to chance. Here:

- `FakeTransport` is the server's end of the network: what the driver writes
  is kept in `written`; reading, writing and closing are flags a test reads
  (and sets: `fill()` plays a client that stopped reading).
- `FakeWorker` is one worker's shared state over a real asyncio loop (the
  ASGI Tasks run on it), with an injected clock: `advance(seconds)` moves
  WorkerState.now and runs the deadline sweep, so timeout tests run
  instantly and exactly. `connect()` gives a `Link`.
- `Link` is one connection seen from the client's side: `send` bytes, `fin`
  (shut down the sending side), `reset`, read `responses()`; `lose()`
  delivers connection_lost once the server closed its end. What the client
  sends while the server does not read waits, as in a socket, and arrives
  once reading resumes (the FIN after it).
- `FakeChannel` is the Channel an exchange talks to, for the adapters alone.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

import httptools

from twincorn.asgi import ASGIAdapter
from twincorn.asgi_websocket import WebSocketOptions
from twincorn.exchange import Adapter, WebSocketSession
from twincorn.http import Request, RequestPolicy
from twincorn.server.protocol import Deadline, HttpConnection, Phase
from twincorn.server.state import Timeouts, WorkerState
from twincorn.ws import Backend
from twincorn.wsgi import WSGIAdapter


class FakeTransport:
    """The server's end of a fake network (an asyncio.Transport's methods)."""

    def __init__(self, sock: socket.socket | None = None,
                 peer: Any = ("127.0.0.1", 50000)) -> None:
        self.peer = peer  # the peername: ("10.0.0.1", 4711), or "" for a unix: socket's
        self.written = bytearray()
        self.closing = False  # close() or abort() was called
        self.aborted = False
        self.eof_written = False
        self.reading = True
        self.buffered = 0  # bytes "not yet sent": fill() sets it
        self.sock = sock  # a real socket for get_extra_info("socket"), if any
        self.protocol: Any = None  # who gets the bytes (set_protocol: a WebSocket)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {
            "peername": self.peer,
            "sockname": ("127.0.0.1", 8000),
            "socket": self.sock,
        }.get(name, default)

    def write(self, data: bytes) -> None:
        assert not self.eof_written, "write after write_eof"
        if not self.closing:
            self.written += data

    def write_eof(self) -> None:
        self.eof_written = True

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = self.aborted = True

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol


class Link:
    """One connection, driven from the client's side."""

    def __init__(self, worker: FakeWorker, sock: socket.socket | None = None,
                 peer: Any = ("127.0.0.1", 50000)) -> None:
        self.worker = worker
        self.transport = FakeTransport(sock, peer)
        self.conn = HttpConnection(worker.state)
        self.transport.protocol = self.conn
        self.conn.connection_made(self.transport)  # type: ignore[arg-type]
        self.lost = False
        self._inbox: list[bytes] = []  # sent, not yet read by the server
        self._fin = False  # the client's FIN, behind the inbox
        worker.links.append(self)

    # -- the client acts --------------------------------------------------

    def send(self, data: bytes, *, bytewise: bool = False) -> None:
        """Bytes reach the server (one read, or one read per byte; held
        while it does not read); the loop runs after each read."""
        self.send_pieces([data[i:i + 1] for i in range(len(data))] if bytewise else [data])

    def send_pieces(self, pieces: list[bytes]) -> None:
        self._inbox.extend(p for p in pieces if p)
        self.pump()

    def fin(self) -> None:
        """The client shuts down its sending side (its FIN arrives after
        what it sent)."""
        self._fin = True
        self.pump()

    def pump(self) -> None:
        """Deliver what waits while the server reads (FakeWorker.run calls it)."""
        while self._inbox and self.transport.reading and not self.lost \
                and not self.transport.closing:
            self.transport.protocol.data_received(self._inbox.pop(0))
            self.worker.turn()
        if self._fin and not self._inbox and self.transport.reading and not self.lost \
                and not self.transport.closing:
            self._fin = False
            self.transport.protocol.eof_received()
        self.worker.turn()

    def reset(self) -> None:
        """The client is gone (its RST arrives)."""
        self.lose(ConnectionResetError("reset by peer"))

    def fill(self) -> None:
        """The client stops reading: the socket's buffer fills up."""
        self.transport.buffered = 1 << 20
        self.transport.protocol.pause_writing()
        self.worker.run()

    def drain(self) -> None:
        """The client reads again: the buffer empties."""
        self.transport.buffered = 0
        self.transport.protocol.resume_writing()
        self.worker.run()

    def lose(self, exc: Exception | None = None) -> None:
        """The network delivers connection_lost (after a close, or a reset)."""
        if not self.lost:
            self.lost = True
            self.transport.protocol.connection_lost(exc)
            self.worker.links.remove(self)
            self.worker.run()

    # -- what the client sees -----------------------------------------------

    @property
    def data(self) -> bytes:
        return bytes(self.transport.written)

    def responses(self) -> list[Response]:
        """Every complete response written so far (1xx included)."""
        return [r for r in parse_responses(self.data) if r.complete]

    def statuses(self) -> list[int]:
        return [r.status for r in self.responses() if r.status >= 200]

    @property
    def closed(self) -> bool:
        """The server ended its side: FIN written, or the transport closed."""
        return self.transport.eof_written or self.transport.closing

    @property
    def phase(self) -> Phase:
        return self.conn._phase

    @property
    def deadline(self) -> Deadline:
        return self.conn._deadline_kind


class FakeWorker:
    """One worker's state over a real loop, with the clock in the test's hands."""

    def __init__(self, app: Callable[..., Any], interface: str, *, threads: int = 1,
                 ws: WebSocketOptions | None = None, **settings: Any) -> None:
        self.loop = asyncio.new_event_loop()
        adapter: Adapter
        if interface == "asgi":
            adapter = ASGIAdapter(app, self.loop, server_header=b"twincorn", lifespan="off",
                                  websocket=ws)
        else:
            adapter = WSGIAdapter(app, self.loop, threads=threads, server_header=b"twincorn")
        self.adapter = adapter
        timeouts = {k: settings.pop(k) for k in list(settings) if k in Timeouts.__slots__}
        self.state = WorkerState(loop=self.loop, adapter=adapter, policy=RequestPolicy(),
                                 timeouts=Timeouts(**timeouts), now=1000.0, **settings)
        self.links: list[Link] = []

    def connect(self, sock: socket.socket | None = None,
                peer: Any = ("127.0.0.1", 50000)) -> Link:
        """A client connects (from `peer`, the transport's peername)."""
        link = Link(self, sock, peer)
        self.run()
        return link

    def turn(self, turns: int = 10) -> None:
        """Let the loop run what is ready (ASGI Tasks, call_soon hand-offs)."""
        for _ in range(turns):
            self.loop.run_until_complete(asyncio.sleep(0))

    def run(self, turns: int = 10) -> None:
        """Run the loop, and deliver what clients sent once the server reads."""
        self.turn(turns)
        for link in self.links:
            if link._inbox or link._fin:
                link.pump()

    def advance(self, seconds: float) -> None:
        """Move the clock and run the sweep, as the worker's timer would."""
        self.state.sweep(self.state.now + seconds)
        self.run()

    def settle(self, seconds: float = 0.25) -> None:
        """Real time passes (for the 0.2 s "fresh connection" timer)."""
        self.loop.run_until_complete(asyncio.sleep(seconds))

    def close(self) -> None:
        for task in asyncio.all_tasks(self.loop):
            task.cancel()
        self.run()
        if isinstance(self.adapter, WSGIAdapter) and self.adapter.pool is not None:
            self.adapter.pool.shutdown(wait=True)
        self.loop.close()


@contextmanager
def fake_worker(app: Callable[..., Any], interface: str, **settings: Any) -> Iterator[FakeWorker]:
    worker = FakeWorker(app, interface, **settings)
    try:
        yield worker
    finally:
        worker.close()


class FakeDrains:
    """A fake send buffer: `write_paused` set by the test, drain() waits
    until release_writes() (the client read)."""

    loop: asyncio.AbstractEventLoop
    write_paused: bool
    _drains: list[asyncio.Future[None]]

    def drain(self) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = self.loop.create_future()
        if self.write_paused:
            self._drains.append(waiter)
        else:
            waiter.set_result(None)
        return waiter

    def release_writes(self) -> None:
        """The client read: writing may go on."""
        self.write_paused = False
        for waiter in self._drains:
            if not waiter.done():
                waiter.set_result(None)
        self._drains.clear()


def turn(loop: asyncio.AbstractEventLoop, times: int = 5) -> None:
    """Let a loop run what is ready, `times` turns."""
    for _ in range(times):
        loop.run_until_complete(asyncio.sleep(0))


class FakeChannel(FakeDrains):
    """The Channel an exchange talks to, recording what it is asked."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.client: tuple[str, int] | None = ("127.0.0.1", 50000)
        self.server: tuple[str, int] | None = ("127.0.0.1", 8000)
        self.scheme = "http"
        self.adapter_state: Any = None
        self.keep_alive = True
        self.written = bytearray()
        self.continues = 0
        self.paused = False  # the exchange asked to stop reading
        self.write_paused = False
        self.completed: list[bool] = []  # keep_alive of each response_complete
        self.aborted = False
        self.socket: FakeSocket | None = None  # once upgraded to a WebSocket
        self._drains: list[asyncio.Future[None]] = []

    def send_continue(self) -> None:
        self.continues += 1

    def write(self, data: bytes) -> None:
        self.written += data

    async def sendfile(self, file: IO[bytes], offset: int, count: int) -> None:
        file.seek(offset)
        self.written += file.read(count)

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def response_complete(self, keep_alive: bool) -> None:
        self.completed.append(keep_alive)

    def abort(self) -> None:
        self.aborted = True

    def upgrade(self, backend: Backend, session: WebSocketSession) -> FakeSocket:
        """The exchange became a WebSocket: the backend's 101 is written
        here, and a FakeSocket stands for the connection from now on."""
        self.written += backend.output()
        self.socket = FakeSocket(self.loop, backend, session)
        return self.socket


class FakeSocket(FakeDrains):
    """The WebSocketChannel a session talks to once upgraded: records the
    messages sent, the close asked for and the reading state; `receive`
    plays the client's messages and `closed` the end of the socket."""

    def __init__(self, loop: asyncio.AbstractEventLoop, backend: Backend,
                 session: WebSocketSession) -> None:
        self.loop = loop
        self.backend = backend
        self.session = session
        self.sent: list[str | bytes] = []
        self.closes: list[tuple[int, str]] = []
        self.paused = False
        self.write_paused = False
        self._drains: list[asyncio.Future[None]] = []

    def send(self, data: str | bytes) -> None:
        self.sent.append(data)

    def close(self, code: int, reason: str) -> None:
        self.closes.append((code, reason))

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def receive(self, data: str | bytes) -> None:
        self.session.on_message(data)

    def closed(self, code: int, reason: str = "") -> None:
        self.session.on_closed(code, reason)
        self.release_writes()


@dataclass
class Response:
    """One response as the client read it."""

    status: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    complete: bool = False

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class _Reader:
    """httptools' response callbacks, gathering Responses."""

    def __init__(self) -> None:
        self.responses: list[Response] = []
        self.parser = httptools.HttpResponseParser(self)

    def on_message_begin(self) -> None:
        self.responses.append(Response(0))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.responses[-1].headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.responses[-1].status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.responses[-1].body += body

    def on_message_complete(self) -> None:
        self.responses[-1].complete = True


def parse_responses(data: bytes) -> list[Response]:
    """Split the bytes a server sent into responses (1xx included); a last
    body that only the close of the connection ends counts as complete."""
    reader = _Reader()
    try:
        reader.parser.feed_data(data)
    except httptools.HttpParserUpgrade:
        pass
    last = reader.responses[-1] if reader.responses else None
    if last is not None and not last.complete and last.header(b"content-length") is None \
            and last.header(b"transfer-encoding") is None:
        last.complete = True
    return reader.responses


def request(method: str = "GET", path: bytes = b"/", *, body_length: int | None = None,
            chunked: bool = False, headers: list[tuple[bytes, bytes]] | None = None) -> Request:
    """A Request as the parser would make it."""
    r = Request()
    r.method = method
    r.target = r.path = path
    r.headers = headers or [(b"host", b"t")]
    r.host = b"t"
    r.content_length = body_length
    r.chunked = chunked
    return r
