"""One worker: an event loop serving the application on its sockets."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from twincorn import __version__, logs, trace
from twincorn.asgi import ASGIAdapter, ASGIExchange, LifespanFailure
from twincorn.asgi_websocket import WebSocketExchange, WebSocketOptions
from twincorn.config import Config
from twincorn.exchange import SERVING, Adapter
from twincorn.http.forwarded import ProxyHeaders
from twincorn.importer import AppLoadError, app_label, load
from twincorn.logs import access_logger, escape
from twincorn.server.listener import Listener, describe, raise_descriptor_limit
from twincorn.server.protocol import HttpConnection
from twincorn.server.recycle import Recycler
from twincorn.server.state import Timeouts, WorkerState
from twincorn.server.tls import TlsAcceptor
from twincorn.server.tls_context import TlsSetup
from twincorn.server.tls_context import load as load_tls
from twincorn.server.websocket import WebSocketTimeouts
from twincorn.trusted import TrustedPeers
from twincorn.ws.core import (
    CLOSE_GOING_AWAY,
    CLOSE_SERVICE_RESTART,
    Limits,
    opener,
    resolve,
)
from twincorn.wsgi import WSGIAdapter

log = logging.getLogger("twincorn.error")

# Allocations between young-generation collections (Python's default: 700).
_YOUNG_THRESHOLD = 20_000
# A worker that asked its master for a successor (recycling) and is still
# running this many seconds later stops by itself all the same.
_REPLACEMENT_PATIENCE = 30.0


def new_event_loop(choice: str) -> tuple[asyncio.AbstractEventLoop, str]:
    """uvloop where wanted and installed (not on Windows), else asyncio."""
    if choice in ("auto", "uvloop") and sys.platform != "win32":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise
        else:
            return uvloop.new_event_loop(), "uvloop"
    # The listener accepts through add_reader, which Windows' default
    # (proactor) loop lacks; the selector loop has it everywhere.
    return asyncio.SelectorEventLoop(), "asyncio"


class Worker:
    """Serves one application until asked to stop."""

    def __init__(
        self,
        config: Config,
        app: Callable[..., Any],
        interface: str,
        sockets: list[socket.socket],
        loop: asyncio.AbstractEventLoop,
        label: str = "",
        heartbeat: Callable[[], None] | None = None,
        parent_pid: int | None = None,
        ask_replacement: Callable[[], None] | None = None,
        replaced: Callable[[], bool] | None = None,
        tls: TlsSetup | None = None,
    ) -> None:
        self.config = config
        self.app = app
        self.interface = interface
        self.sockets = sockets
        self.loop = loop
        self.label = label
        self.heartbeat = heartbeat  # called once a second by the loop itself
        self.parent_pid = parent_pid  # the master: if it dies, so do we
        #: At a recycling limit: ask the master for a successor rather than
        #: stop at once (no master: None, the worker stops by itself).
        self.ask_replacement = ask_replacement
        self._replacement_asked = 0.0
        #: True if the master stops this worker while the server carries on
        #: (a reload, fewer workers, recycling), read when the stop begins.
        self.replaced = replaced or (lambda: False)
        self.stopped = asyncio.Event()
        self.quick = False
        self.recycler = Recycler.jittered(
            config.max_requests, config.max_requests_jitter,
            config.max_worker_lifetime, config.max_worker_memory,
        )
        self.started = loop.time()
        server_header = b"twincorn" if config.server_header else b""
        adapter: Adapter
        if interface == "asgi":
            adapter = ASGIAdapter(
                app, loop, root_path=config.root_path, server_header=server_header,
                lifespan=config.lifespan, websocket=websocket_options(config),
            )
        else:
            adapter = WSGIAdapter(
                app, loop, threads=config.threads, root_path=config.root_path,
                server_header=server_header, spool_size=config.wsgi_spool_size,
            )
        self.adapter = adapter
        self.state = WorkerState(
            loop=loop,
            adapter=adapter,
            policy=config.request_policy(),
            timeouts=Timeouts(
                keep_alive=config.timeout_keep_alive,
                request_head=config.timeout_request_head,
                request_body=config.timeout_request_body,
                send=config.timeout_send,
                min_body_rate=config.min_request_body_rate,
            ),
            websocket=WebSocketTimeouts(
                ping_interval=config.ws_ping_interval, ping_timeout=config.ws_ping_timeout,
            ),
            server_header=server_header,
            max_connections=config.worker_connections,
            drain_limit=config.drain_limit,
            access_log=access_logger(config.access_log_format) if config.access_log else None,
            proxy_peers=TrustedPeers(config.proxy_allow_ips) if config.proxy_protocol else None,
            proxy_headers=(ProxyHeaders(TrustedPeers(config.forwarded_allow_ips))
                           if config.proxy_headers else None),
            now=loop.time(),
        )
        # The master's TLS setup (read at start, again on HUP); made here
        # for a worker with no master (twincorn.server.embedded).
        tls = tls if tls is not None or not config.certfile else load_tls(config)
        self.tls = TlsAcceptor(self.state, tls) if tls is not None else None
        self.listener = Listener(loop, sockets, lambda: HttpConnection(self.state), self._busy,
                                 self.state.make_room, self.tls)
        if isinstance(adapter, WSGIAdapter):
            adapter.on_release = self.state.on_room = self.listener.resume

    def _busy(self) -> bool:
        """True while this worker should leave new connections to the others.

        A WSGI slot is spoken for by a call running or waiting, and also by a
        connection just accepted whose first request has not come yet (for
        up to FRESH_SECONDS: it is most likely on its way). Without that, a
        free worker would take a whole batch of waiting clients and serve
        them one by one while its siblings idle.
        """
        adapter = self.adapter
        if not isinstance(adapter, WSGIAdapter):
            return False
        claimed = adapter.running + len(adapter.waiting) + len(self.listener.pending)
        return claimed + self.state.fresh >= adapter.threads

    async def run(self) -> int:
        """Serve until stopped; the exit status (0, or 3 if startup failed)."""
        try:
            await self.adapter.startup()
        except LifespanFailure as exc:
            log.error("application startup failed: %s", exc)
            return 3
        settle_memory()
        self.listener.start()
        self._tick()
        for sock in self.sockets:
            log.info("listening on %s", describe(sock, self.tls is not None))
        log.info(
            "serving %s (%s) with twincorn %s, pid %d",
            self.label or self.app, self.adapter.description, __version__, os.getpid(),
        )
        await self.stopped.wait()
        await self._drain()
        await self.adapter.shutdown()
        return 0

    def stop(self, quick: bool = False) -> None:
        """Begin a stop (from a signal handler or a test): graceful, or
        `quick` (connections closed without waiting for their requests)."""
        self.quick = self.quick or quick
        if not self.stopped.is_set():
            log.info("stopping%s", "" if quick else ": finishing in-flight requests")
            self.stopped.set()
        elif quick and self.state.connections:
            for conn in list(self.state.connections):
                conn.abort()

    def _tick(self) -> None:
        # Runs while the worker drains too: deadlines still expire then.
        self.state.sweep(self.loop.time())
        if self.heartbeat is not None:
            self.heartbeat()
        if not self.stopped.is_set():
            self.listener.resume()  # in case room came back unannounced
            if self.recycler.active:
                self._check_recycling()
        if self.parent_pid is not None and os.getppid() != self.parent_pid and not self.quick:
            log.error("the master process is gone: stopping")
            self.stop(quick=True)
        self.loop.call_later(1.0, self._tick)

    def _check_recycling(self) -> None:
        now = self.loop.time()
        if self._replacement_asked:
            if now - self._replacement_asked > _REPLACEMENT_PATIENCE:
                log.warning("no successor came in %.0f s: stopping all the same",
                            _REPLACEMENT_PATIENCE)
                self.stop()
            return
        reason = self.recycler.reason(self.state.served, now - self.started)
        if reason is None:
            return
        if self.ask_replacement is None:
            log.info("recycling this worker: it %s", reason)
            self.stop()
        else:
            # Serving on until the successor serves: with one worker, no
            # connection waits in the listen queue meanwhile.
            log.info("recycling this worker: it %s; its successor is on the way", reason)
            self._replacement_asked = now
            self.ask_replacement()

    async def _drain(self) -> None:
        state = self.state
        state.stopping = True  # from now on every response says Connection: close
        if not self.quick:
            self.listener.take_backlog()
        self.listener.close()
        await self.listener.settle()
        # Nothing is cut here (docs/processes.md, "Restarts lose nothing"):
        # each connection's next response says Connection: close, and an idle
        # one is closed when its keep-alive deadline passes, as always. An
        # open WebSocket is sent a close frame: 1012 (service restart) when
        # the server carries on without this worker, 1001 (going away) else.
        code = state.going_away = (
            CLOSE_SERVICE_RESTART if self.replaced() else CLOSE_GOING_AWAY)
        for conn in list(state.connections):
            conn.going_away(code)
        deadline = self.loop.time() + (0 if self.quick else self.config.graceful_timeout)
        while state.connections and self.loop.time() < deadline:
            await asyncio.sleep(0.05)
        if state.connections:
            count = len(state.connections)
            log.warning("graceful timeout: closing %d connection%s", count,
                        "" if count == 1 else "s")
        for conn in list(state.connections):
            conn.abort()
        # Applications still running (their clients are gone now) are
        # cancelled, so that nothing is left pending when the loop closes.
        # Only this worker's own tasks, found by their coroutine's code (no
        # bookkeeping per request): the loop may run other work too (an
        # embedded server); the lifespan task is still to hear its shutdown.
        leftover = [t for t in asyncio.all_tasks()
                    if getattr(t.get_coro(), "cr_code", None) in _OWN_TASKS]
        for task in leftover:
            task.cancel()
        if leftover:
            await asyncio.wait(leftover, timeout=5)


#: The coroutines of the tasks a worker starts: an ASGI request, an accept,
#: a file being sent (WSGI's file_wrapper).
_OWN_TASKS = (
    ASGIExchange._run.__code__, Listener._connect.__code__, HttpConnection.sendfile.__code__,
    WebSocketExchange._run.__code__, TlsAcceptor.accept.__code__,
)


def websocket_options(config: Config) -> WebSocketOptions | None:
    """What the ASGI adapter needs of the --ws-* settings; None for --ws none
    (or auto with neither library installed)."""
    backend = resolve(config.ws.removesuffix("-sansio"))
    if backend == "none":
        return None
    return WebSocketOptions(
        backend=backend,
        open=opener(backend),
        limits=Limits(max_size=config.ws_max_size or None,
                      per_message_deflate=config.ws_per_message_deflate),
        max_queue=max(1, config.ws_max_queue),
        handshake_timeout=config.ws_handshake_timeout,
    )


def settle_memory() -> None:
    """Tune the garbage collector for serving, once the app is loaded.

    Everything alive now (the application, its modules, lifespan state)
    lives as long as the worker: `gc.freeze` moves it out of the collector's
    sight, so that full collections stop walking it again and again — they
    were the worker's longest pauses, and its p99 latency. Requests leave
    little cyclic garbage, so the young generation is collected less often.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(_YOUNG_THRESHOLD, middle, old)


def run_worker(
    config: Config,
    app: Callable[..., Any] | None,
    sockets: list[socket.socket],
    *,
    heartbeat: Callable[[], None] | None = None,
    parent_pid: int | None = None,
    ask_replacement: Callable[[], None] | None = None,
    replaced: Callable[[], bool] | None = None,
    tls: TlsSetup | None = None,
) -> int:
    """Load the application (unless given) and run one worker on a new
    event loop until it stops; its exit status (1 if the app did not load)."""
    label = app_label(config, app)
    descriptors = raise_descriptor_limit()
    if descriptors and descriptors < config.worker_connections + 64:
        log.warning("this process may open only %d files: fewer than --worker-connections "
                    "(%d) can be served; raise the limit (ulimit -n, LimitNOFILE=)",
                    descriptors, config.worker_connections)
    try:
        app, interface = load(config, app)
    except AppLoadError as exc:
        exc.report()
        return 1
    if config.trace:
        app = trace.wrap(app, interface)
    loop, loop_name = new_event_loop(config.loop)
    log.info(
        "event loop: %s; interface: %s (%s)", loop_name, interface,
        "given" if config.interface != "auto" else "detected",
    )
    try:
        worker = Worker(config, app, interface, sockets, loop, label, heartbeat, parent_pid,
                        ask_replacement, replaced, tls)
        install_signal_handlers(loop, worker)
        return loop.run_until_complete(worker.run())
    finally:
        loop.close()


#: Stop signals that came while the worker was booting (hold_stop_signals).
_held: list[int] = []
_STOPS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGQUIT")
               if hasattr(signal, name))


def hold_stop_signals() -> None:
    """Until the worker's loop takes its signals over, TERM, INT and QUIT are
    remembered rather than fatal: a worker told to stop while it imports the
    application stops once booted, as after any stop (its lifespan shutdown
    and worker_exit hook run). Called in a forked worker (master/child.py)."""
    for sig in _STOPS:
        signal.signal(sig, lambda signum, frame: _held.append(signum))


def install_signal_handlers(loop: asyncio.AbstractEventLoop, worker: Worker) -> None:
    """TERM: graceful stop. INT, QUIT: quick stop. USR1: reopen the log
    files (gunicorn's meanings). A stop signal held during boot is acted on now."""
    handlers: list[tuple[int, Callable[[], None]]] = [
        (signal.SIGTERM, worker.stop),
        (signal.SIGINT, lambda: worker.stop(quick=True)),
    ]
    if hasattr(signal, "SIGQUIT"):
        handlers.append((signal.SIGQUIT, lambda: worker.stop(quick=True)))
    if hasattr(signal, "SIGUSR1"):
        handlers.append((signal.SIGUSR1, logs.reopen))
    for sig, handler in handlers:
        try:
            loop.add_signal_handler(sig, handler)
        except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
            pass
    held = dict(handlers)
    for sig in _held:
        held[sig]()
    _held.clear()


def report_stuck(signum: int, frame: object) -> None:
    """SIGUSR2 from the master: this worker's loop is blocked. Say which
    request it is serving.

    A Python signal handler runs in the main thread between two bytecodes of
    whatever is blocking it (even inside time.sleep, PEP 475), and in that
    code's context: so SERVING holds the exchange being run, ASGI task or
    inline WSGI call, without any bookkeeping on the way.
    """
    current = SERVING.get()
    if current is None:
        log.error("stuck worker %d: no request is being run (the loop itself is blocked)",
                  os.getpid())
        return
    exchange, started = current
    request = exchange.request
    target = escape(request.target)[:200]
    log.error("stuck worker %d: serving %s %s HTTP/%s for %.1f s", os.getpid(),
              request.method, target, request.http_version, time.monotonic() - started)

