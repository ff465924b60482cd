"""`twincorn serve` from start to exit: load, bind, run the worker."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from twincorn import logs
from twincorn.config import Config
from twincorn.importer import AppLoadError, prepare
from twincorn.server.listener import BindError, open_sockets, release
from twincorn.server.tls_context import TlsError
from twincorn.server.tls_context import load as load_tls
from twincorn.server.worker import run_worker

log = logging.getLogger("twincorn.error")


def serve(
    config: Config,
    app: Callable[..., Any] | None = None,
    rebuild: Callable[[], Config] | None = None,
) -> int:
    """Serve until stopped; return the process exit status.

    Where the system can fork, a prefork master runs `config.workers`
    worker processes (twincorn.master.arbiter); `rebuild` reads the settings
    again from their sources, for a reload (HUP). Elsewhere one process serves.
    """
    logs.configure(config.log_level, config.error_log_file, config.access_log_file)
    if hasattr(os, "fork"):
        from twincorn.master.arbiter import Arbiter

        return Arbiter(config, app, rebuild).run()
    return serve_single(config, app)


def serve_single(config: Config, app: Callable[..., Any] | None = None) -> int:
    """One process: check, bind, load, run a worker (where there is no fork)."""
    try:
        app = prepare(config, app)
    except AppLoadError as exc:
        exc.report()
        return exc.status
    try:
        tls = load_tls(config)
    except TlsError as exc:
        log.error("%s", exc)
        return 1
    try:
        sockets = open_sockets(config.binds, config.backlog, reuse_port=config.reuse_port,
                               unix_mode=config.unix_mode)
    except BindError as exc:
        log.error("%s", exc)
        return 1
    try:
        return run_worker(config, app, sockets, tls=tls)
    finally:
        for sock in sockets:
            release(sock)
