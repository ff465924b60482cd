"""The worker process: what runs after fork (the worker contract).

Before fork, in the master: the listening sockets are bound, a Heartbeat is
mapped for the worker, stdout and stderr are flushed (so that nothing
buffered is written twice), and, with --preload, the application is already
imported.

After fork, in the worker, `worker_main`:
1. forgets the master's signal handling (handlers back to the defaults, the
   master's wake-up pipe closed) and arms faulthandler, so that a SIGABRT from
   the master writes the stack of every thread to stderr before the worker dies;
   SIGUSR2 from the master ("you are stuck") logs the request being served;
   TERM, INT and QUIT are held until the loop serves (a stop asked during
   boot happens once booted, hooks and all);
2. runs the post_fork hook, then imports the application unless it was
   preloaded — a failure here is a boot failure: exit status 1 (3 if the
   ASGI lifespan startup fails);
3. runs one event-loop Worker on the inherited sockets. Its loop beats the
   heartbeat once a second from the start of serving, and stops the worker
   if the master disappears. TERM stops it gracefully; INT and QUIT quickly;
   USR1 reopens the log files. At a recycling limit it asks the master,
   through the heartbeat, for a successor, and serves on until the master
   stops it (TERM) once the successor serves;
4. runs the worker_exit hook.

The worker never returns into the master's code: `worker_main` ends in
os._exit with the worker's exit status.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import traceback
from typing import TYPE_CHECKING

from twincorn.importer import app_label
from twincorn.master.title import set_title
from twincorn.server.worker import hold_stop_signals, report_stuck, run_worker

if TYPE_CHECKING:
    from twincorn.master.arbiter import Arbiter, WorkerRecord

log = logging.getLogger("twincorn.error")

#: The signals the master handles; a worker starts with their defaults.
MASTER_SIGNALS = ("SIGHUP", "SIGQUIT", "SIGINT", "SIGTERM", "SIGTTIN", "SIGTTOU",
                  "SIGUSR1", "SIGUSR2", "SIGCHLD", "SIGWINCH")


def worker_main(arbiter: Arbiter, record: WorkerRecord) -> None:
    """The body of a forked worker; never returns."""
    status = 1
    config, app = arbiter.config, arbiter.app
    try:
        signal.set_wakeup_fd(-1)
        for name in MASTER_SIGNALS:
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_DFL)
        for fd in arbiter.wakeup_fds:
            os.close(fd)
        faulthandler.enable(all_threads=True)
        signal.signal(signal.SIGUSR2, report_stuck)
        hold_stop_signals()
        set_title(f"worker [{app_label(config, app)}]")
        arbiter.hook("post_fork", arbiter, record)
        status = run_worker(
            config, app, arbiter.sockets, heartbeat=record.heartbeat.beat,
            parent_pid=arbiter.pid, ask_replacement=record.heartbeat.ask_replacement,
            replaced=lambda: record.heartbeat.retired, tls=arbiter.tls,
        )
        arbiter.hook("worker_exit", arbiter, record)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
