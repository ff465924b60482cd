"""`twincorn serve` from start to exit: load, bind, run the worker."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from twincorn import logs
from twincorn.config import Config
from twincorn.importer import AppLoadError, detect_interface, load_app
from twincorn.server.listener import BindError, bind
from twincorn.server.worker import Worker, install_signal_handlers, new_event_loop

log = logging.getLogger("twincorn.error")


def serve(config: Config, app: Callable[..., Any] | None = None) -> int:
    """Serve until SIGINT or SIGTERM; return the process exit status."""
    logs.configure(config.log_level)
    label = config.app or str(getattr(app, "__qualname__", repr(app)))
    try:
        if app is None:
            if not config.app:
                raise AppLoadError("no application given (twincorn serve module:attribute)")
            app = load_app(config.app, app_dir=config.app_dir, factory=config.factory)
        interface = detect_interface(app, config.interface)
    except AppLoadError as exc:
        log.error("cannot load the application: %s", exc)
        if exc.details:
            sys.stderr.write(exc.details)
        return 1
    try:
        sockets = [bind(address, config.backlog) for address in config.binds]
    except BindError as exc:
        log.error("%s", exc)
        return 1
    loop, loop_name = new_event_loop(config.loop)
    log.info("event loop: %s; interface: %s (%s)", loop_name, interface,
             "given" if config.interface != "auto" else "detected")
    try:
        worker = Worker(config, app, interface, sockets, loop, label)
        install_signal_handlers(loop, worker)
        return loop.run_until_complete(worker.run())
    finally:
        for sock in sockets:
            sock.close()
        loop.close()
