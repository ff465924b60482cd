"""The error log and the access log (gunicorn's format atoms)."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from twincorn.http.request import printable

if TYPE_CHECKING:
    from twincorn.exchange import Exchange

error_log = logging.getLogger("twincorn.error")
access_log = logging.getLogger("twincorn.access")

#: Request data as a log may show it (http/request.py says how).
escape = printable


def configure(level: str, error_file: str = "-", access_file: str = "-") -> None:
    """The error log to stderr (or `error_file`), the access log to stdout
    (or `access_file`), in gunicorn-like lines. Files are opened for
    appending, so that a log rotator can move them away and send SIGUSR1."""
    fmt = logging.Formatter(
        "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s", "%Y-%m-%d %H:%M:%S %z"
    )
    targets = ((error_log, error_file, sys.stderr), (access_log, access_file, sys.stdout))
    for logger, path, stream in targets:
        for old in logger.handlers:
            if isinstance(old, logging.FileHandler):
                old.close()
        logger.handlers.clear()
        handler: logging.Handler
        if path == "-":
            handler = logging.StreamHandler(stream)
        else:
            handler = logging.FileHandler(path, mode="a", encoding="utf-8")
        handler.setFormatter(fmt if logger is error_log else logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    error_log.setLevel(level.upper())
    access_log.setLevel(logging.INFO)


def reopen() -> None:
    """SIGUSR1: close and reopen the log files (after a rotation moved them)."""
    for logger in (error_log, access_log):
        for handler in logger.handlers:
            if isinstance(handler, logging.FileHandler):
                handler.acquire()
                try:
                    handler.close()
                    handler.stream = handler._open()
                finally:
                    handler.release()


class _Atoms(Mapping[str, str]):
    """The values of one access log line, computed only when asked for."""

    def __init__(self, client: Any, exchange: Exchange, seconds: float) -> None:
        self.client = client
        self.exchange = exchange
        self.seconds = seconds

    def __getitem__(self, key: str) -> str:
        request = self.exchange.request
        if key.startswith("{") and key.endswith("}i"):
            wanted = key[1:-2].lower().encode("latin-1")
            for name, value in request.headers:
                if name == wanted:
                    return escape(value)
            return "-"
        atom = _ATOMS.get(key)
        if atom is None:
            raise KeyError(key)
        return atom(self)

    def __iter__(self) -> Any:
        return iter(_ATOMS)

    def __len__(self) -> int:
        return len(_ATOMS)


def _header(name: bytes) -> Callable[[_Atoms], str]:
    def get(a: _Atoms) -> str:
        for key, value in a.exchange.request.headers:
            if key == name:
                return escape(value)
        return "-"

    return get


_ATOMS: dict[str, Callable[[_Atoms], str]] = {
    "h": lambda a: a.client[0] if a.client else "-",
    "l": lambda a: "-",
    "u": lambda a: "-",
    "t": lambda a: time.strftime("[%d/%b/%Y:%H:%M:%S %z]"),
    "r": lambda a: (
        f"{a.exchange.request.method} {escape(a.exchange.request.target)} "
        f"HTTP/{a.exchange.request.http_version}"
    ),
    "m": lambda a: a.exchange.request.method,
    "U": lambda a: escape(a.exchange.request.path),
    "q": lambda a: escape(a.exchange.request.query),
    "H": lambda a: f"HTTP/{a.exchange.request.http_version}",
    "s": lambda a: str(a.exchange.status),
    "B": lambda a: str(a.exchange.bytes_sent),
    "b": lambda a: str(a.exchange.bytes_sent) if a.exchange.bytes_sent else "-",
    "f": _header(b"referer"),
    "a": _header(b"user-agent"),
    "T": lambda a: str(int(a.seconds)),
    "M": lambda a: str(int(a.seconds * 1000)),
    "D": lambda a: str(int(a.seconds * 1_000_000)),
    "L": lambda a: f"{a.seconds:.6f}",
    "p": lambda a: f"<{os.getpid()}>",
    # WebSockets: bytes of the frames received (b and B: sent); "-" for HTTP.
    "I": lambda a: str(getattr(a.exchange, "bytes_received", "-")),
}


def access_logger(fmt: str) -> Callable[[Any, Exchange, float], None]:
    """A function the connection calls after each response."""

    def log_access(conn: Any, exchange: Exchange, seconds: float) -> None:
        if access_log.isEnabledFor(logging.INFO):
            forwarded = exchange.request.forwarded  # a trusted proxy's word
            client = conn.client if forwarded is None else forwarded.client
            try:
                access_log.info(fmt, _Atoms(client, exchange, seconds))
            except (KeyError, ValueError, TypeError) as exc:
                error_log.error("bad access log format %r: %r", fmt, exc)

    return log_access
