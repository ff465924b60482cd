"""Helpers for the tests: a real server on a loopback port, raw clients."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from twincorn import config as config_module
from twincorn.importer import detect_interface
from twincorn.server.listener import bind
from twincorn.server.worker import Worker, new_event_loop
from twincorn.testing import Response as Response
from twincorn.testing import parse_responses as parse_responses


class RunningServer:
    """A twincorn worker serving `app` in a thread, on 127.0.0.1:<free port>.

    Use as a context manager. `settings` are twincorn settings by name.
    """

    def __init__(self, app: Callable[..., Any], **settings: Any) -> None:
        settings.setdefault("bind", ["127.0.0.1:0"])
        settings.setdefault("access_log", False)
        self.config = config_module.build(**settings)
        self.app = app
        self.interface = detect_interface(app, self.config.interface)
        self.sockets = [bind(a, self.config.backlog) for a in self.config.binds]
        self.port: int = self.sockets[0].getsockname()[1]
        self.host = self.sockets[0].getsockname()[0]
        self.loop, _ = new_event_loop(self.config.loop)
        self.worker = Worker(self.config, app, self.interface, self.sockets, self.loop, "test")
        self.exit_status: int | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.config.certfile else "http"
        return f"{scheme}://{host}:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.call_soon(self._ready.set)
            self.exit_status = self.loop.run_until_complete(self.worker.run())
        except BaseException as exc:
            self.error = exc
        finally:
            self._ready.set()
            for sock in self.sockets:
                sock.close()
            self.loop.close()

    def start(self) -> RunningServer:
        self._thread.start()
        self._ready.wait(10)
        time.sleep(0.02)  # lifespan startup
        return self

    def stop(self, timeout: float = 10) -> None:
        if self._thread.is_alive():
            try:
                self.loop.call_soon_threadsafe(self.worker.stop)
            except RuntimeError:
                pass
            self._thread.join(timeout)
        if self.error is not None:
            raise self.error

    def __enter__(self) -> RunningServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def connect(port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    return sock


def read_until_close(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes (or `timeout` passes)."""
    sock.settimeout(timeout)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return b"".join(chunks)  # a reset closes too (an aborted response)
        if not data:
            return b"".join(chunks)
        chunks.append(data)
    raise TimeoutError(f"server did not close; got {b''.join(chunks)[:300]!r}")


def exchange(port: int, data: bytes, *, shutdown: bool = True, timeout: float = 5.0) -> bytes:
    """Send raw bytes, half-close, and read until the server closes."""
    with connect(port) as sock:
        sock.sendall(data)
        if shutdown:
            sock.shutdown(socket.SHUT_WR)
        return read_until_close(sock, timeout)


class ErrorLog(logging.Handler):
    """Collects what the server writes to the twincorn.error log."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, level: int = logging.DEBUG) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= level]

    def errors(self) -> list[str]:
        """The errors logged so far, taken: they are expected, not reported."""
        taken = [r.getMessage() for r in self.records if r.levelno >= logging.ERROR]
        self.records = [r for r in self.records if r.levelno < logging.ERROR]
        return taken

    def app_failed(self) -> bool:
        return any(m.startswith("exception in WSGI application, serving ")
                   for m in self.errors())

    @classmethod
    @contextmanager
    def attached(cls, strict: bool = True) -> Iterator[ErrorLog]:
        """Collect the error log (debug lines too); when `strict`, fail if an
        error is left that the test did not take (an exception in an app's
        close(), say)."""
        handler = cls()
        logger = logging.getLogger("twincorn.error")
        old_level = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        try:
            yield handler
        finally:
            logger.removeHandler(handler)
            logger.setLevel(old_level)
        if strict:
            left = handler.errors()
            assert not left, f"unexpected errors in the log: {left}"
