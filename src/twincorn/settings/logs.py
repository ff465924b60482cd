"""The error log and the access log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from twincorn.settings.declare import setting


@dataclass(frozen=True)
class LogSettings:
    """The error log and the access log."""

    __slots__ = ()

    # -- logging
    log_level: Literal["critical", "error", "warning", "info", "debug"] = setting(
        "info", "How much the error log says.", section="logging"
    )
    access_log: bool = setting(True, "Write an access log line per request.", section="logging")
    access_log_format: str = setting(
        '%(h)s "%(r)s" %(s)s %(b)s %(M)sms',
        "Access log line, with gunicorn's atoms (see docs/logging.md).",
        section="logging",
        metavar="FORMAT",
    )

    trace: bool = setting(
        False,
        "Log, per request, what the server hands the application and what it hands "
        "back (WSGI environ, start_response and body; ASGI scope, receive and send), "
        "with timings. For learning and debugging: it is slow.",
        section="logging",
    )
    error_log_file: str = setting(
        "-",
        "File the error log is written to; - for stderr. Reopened on SIGUSR1.",
        "--error-logfile",
        section="logging",
        metavar="FILE",
    )
    access_log_file: str = setting(
        "-",
        "File the access log is written to; - for stdout. Reopened on SIGUSR1.",
        "--access-logfile",
        section="logging",
        metavar="FILE",
    )
