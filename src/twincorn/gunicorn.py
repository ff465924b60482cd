"""twincorn's worker under gunicorn's master: `-k twincorn.gunicorn.Worker`.

    gunicorn app:app -w 4 -k twincorn.gunicorn.Worker

For users who keep gunicorn's arbiter (its settings, its hooks, its
deployment habits) but want twincorn's event-loop worker, for a WSGI or an
ASGI application alike. gunicorn stays an optional dependency: only this
module imports it.

gunicorn forks the worker and loads the application (`self.wsgi`, whatever
its interface); this class then hands both to twincorn's own worker
(server/worker.py), mapping gunicorn's settings onto twincorn's, and lets
the event loop do what gunicorn's base worker would: beat the heartbeat
(gunicorn's temporary file) once a second, stop when the master is gone,
stop gracefully on TERM and quickly on INT and QUIT. gunicorn's loggers
take twincorn's log lines, so both go where gunicorn's --error-logfile and
--access-logfile say.
"""

from __future__ import annotations

import faulthandler
import logging
import signal
import sys
from typing import Any

from gunicorn.workers.base import Worker as GunicornWorker

from twincorn import config as settings
from twincorn.server.worker import run_worker


class Worker(GunicornWorker):  # type: ignore[misc]  # gunicorn is untyped
    """A gunicorn worker class that runs twincorn's event-loop worker."""

    def init_signals(self) -> None:
        # twincorn's loop installs its own handlers (TERM, INT, QUIT, USR1);
        # gunicorn's Python-level ones would fire outside the loop.
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        # gunicorn sends SIGABRT to a worker that missed its --timeout:
        # write every thread's stack to the log before dying.
        faulthandler.enable(all_threads=True)

    def run(self) -> None:
        cfg = self.cfg
        self._share_loggers()
        access_on = bool(cfg.accesslog)
        # The log level is gunicorn's: its loggers' handlers filter our lines.
        config = settings.validate(settings.Config(
            threads=max(1, int(cfg.threads)),
            worker_connections=int(cfg.worker_connections),
            timeout_keep_alive=float(cfg.keepalive),
            graceful_timeout=float(cfg.graceful_timeout),
            limit_request_line=int(cfg.limit_request_line),
            limit_request_fields=int(cfg.limit_request_fields),
            limit_request_field_size=int(cfg.limit_request_field_size),
            max_requests=int(cfg.max_requests),
            max_requests_jitter=int(cfg.max_requests_jitter),
            access_log=access_on,
            access_log_format=cfg.access_log_format,
            # gunicorn's v1, v2 and auto: twincorn reads either version.
            proxy_protocol=str(cfg.proxy_protocol) not in ("off", "False"),
            proxy_allow_ips=",".join(cfg.proxy_allow_ips),
        ))
        status = run_worker(
            config,
            self.wsgi,
            [s.sock for s in self.sockets],
            heartbeat=self.notify,
            parent_pid=self.ppid,
        )
        # 3 is also gunicorn's "worker failed to boot": it stops the master.
        sys.exit(status)

    def _share_loggers(self) -> None:
        """twincorn's error and access lines go through gunicorn's handlers."""
        pairs: list[tuple[str, Any]] = [
            ("twincorn.error", self.log.error_log),
            ("twincorn.access", self.log.access_log),
        ]
        for name, source in pairs:
            target = logging.getLogger(name)
            target.handlers = list(source.handlers)
            target.setLevel(source.level)
            target.propagate = False
