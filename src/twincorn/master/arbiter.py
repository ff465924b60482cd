"""The arbiter: the master process of the prefork model.

Theory of operation
-------------------
The master binds the listening sockets, then forks `workers` worker
processes which inherit them (each runs its own event loop: see child.py).
After that the master does only three things, in one loop:

    sleep until a signal arrives or a second passes
    dispatch the queued signals: handle_term, handle_hup, ...
    reap dead workers, kill stuck ones, fork or retire to keep the count

Signal handlers only append to a queue (the wake-up pipe makes the sleep end
at once); all the work happens in the loop, where no other code is
interrupted halfway. The master never imports the application (unless
--preload) and never runs an event loop, so nothing an application does can
take it down.

Supervision rests on the heartbeat (heartbeat.py): a worker that has never
beaten is booting; one whose last beat is older than --timeout is stuck,
gets SIGABRT (its faulthandler writes every thread's stack to the log) and
is replaced. A worker that dies before its first beat failed to boot: if no
worker ever booted, the whole server stops with that worker's exit status.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twincorn import __version__
from twincorn.config import Config
from twincorn.importer import AppLoadError, app_label, load
from twincorn.master.child import MASTER_SIGNALS, worker_main
from twincorn.master.heartbeat import Heartbeat
from twincorn.master.title import set_title
from twincorn.server.listener import BindError, describe, open_sockets, release

log = logging.getLogger("twincorn.error")

# After SIGABRT, how long a stuck worker gets to write its stacks and die.
_ABORT_GRACE = 2.0
# Respawn back-off: after this many unexpected deaths within the window,
# wait before forking again, doubling up to the maximum.
_DEATHS, _WINDOW, _MAX_DELAY = 5, 10.0, 30.0


@dataclass
class WorkerRecord:
    """What the master knows of one worker process."""

    pid: int
    heartbeat: Heartbeat
    age: int  # order of birth: the oldest is retired first
    born: float = field(default_factory=time.monotonic)
    retiring: bool = False  # sent TERM (or QUIT): on its way out
    aborted_at: float = 0.0  # sent SIGABRT as stuck

    @property
    def ready(self) -> bool:
        return self.heartbeat.last > 0.0


class Arbiter:
    """The master process: `Arbiter(config).run()` returns the exit status."""

    def __init__(self, config: Config, app: Callable[..., Any] | None = None) -> None:
        self.config = config
        self.app = app
        self.target = config.workers
        self.workers: dict[int, WorkerRecord] = {}
        self.sockets: list[socket.socket] = []
        self.pid = os.getpid()
        self._signals: deque[int] = deque()
        self._wakeup: tuple[int, int] | None = None
        self._ages = 0
        self._ever_ready = False
        self._to_replace: list[int] = []  # workers a HUP is replacing, oldest first
        self._deaths: deque[float] = deque()
        self._spawn_delay = 0.0
        self._next_spawn = 0.0
        self._stop_deadline: float | None = None  # set once a stop began
        self._exit_status = 0

    # -- the main loop ------------------------------------------------------

    def run(self) -> int:
        config = self.config
        try:
            self.sockets = open_sockets(config.binds, config.backlog,
                                        reuse_port=config.reuse_port, unix_mode=config.unix_mode)
        except BindError as exc:
            log.error("%s", exc)
            return 1
        try:
            if self.config.preload or self.app is not None:
                self.app, _ = load(self.config, self.app)
        except AppLoadError as exc:
            exc.report()
            self._close_sockets()
            return 1
        self._install_signals()
        self._write_pid()
        set_title(f"master [{app_label(config, self.app)}]")
        log.info("twincorn %s master, pid %d: %d worker%s on %s", __version__, self.pid,
                 self.target, "" if self.target == 1 else "s",
                 ", ".join(describe(s) for s in self.sockets))
        try:
            self._maintain()
            while True:
                self._sleep(1.0)
                while self._signals:
                    self._dispatch(self._signals.popleft())
                self._reap()
                if self._stop_deadline is not None:
                    if not self.workers:
                        return self._exit_status
                    self._enforce_stop()
                    continue
                self._check_heartbeats()
                self._maintain()
        finally:
            self._restore_signals()
            self._close_sockets()
            self._remove_pid()

    def _sleep(self, seconds: float) -> None:
        assert self._wakeup is not None
        if self._signals:
            return
        with contextlib.suppress(InterruptedError):
            ready, _, _ = select.select([self._wakeup[0]], [], [], seconds)
            if ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wakeup[0], 4096)

    # -- signals: the handlers only queue -------------------------------------

    def _install_signals(self) -> None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        self._wakeup = (read_fd, write_fd)
        signal.set_wakeup_fd(write_fd)
        for name in MASTER_SIGNALS:
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), self._queue_signal)

    def _queue_signal(self, signum: int, frame: object) -> None:
        self._signals.append(signum)

    def _restore_signals(self) -> None:
        if self._wakeup is None:
            return
        signal.set_wakeup_fd(-1)
        for name in MASTER_SIGNALS:
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_DFL)
        for fd in self._wakeup:
            os.close(fd)
        self._wakeup = None

    def _dispatch(self, signum: int) -> None:
        name = signal.Signals(signum).name[3:].lower()
        handler = getattr(self, f"handle_{name}", None)
        if handler is not None:
            handler()

    def handle_chld(self) -> None:
        """A worker exited: reaped by the main loop."""

    def handle_term(self) -> None:
        """Graceful stop: workers finish their requests, bounded by --graceful-timeout."""
        self._stop(signal.SIGTERM, self.config.graceful_timeout)

    def handle_int(self) -> None:
        """Quick stop."""
        self._stop(signal.SIGQUIT, 0.0)

    handle_quit = handle_int

    def handle_hup(self) -> None:
        """Replace the workers one by one, each new one ready before an old one stops."""
        if self._stop_deadline is not None:
            return
        self._to_replace = sorted(
            (r.pid for r in self.workers.values() if not r.retiring),
            key=lambda pid: self.workers[pid].age,
        )
        log.info("HUP: replacing %d workers one by one", len(self._to_replace))

    def handle_ttin(self) -> None:
        self.target += 1
        log.info("TTIN: %d workers", self.target)

    def handle_ttou(self) -> None:
        if self.target > 1:
            self.target -= 1
        log.info("TTOU: %d workers", self.target)

    def handle_usr1(self) -> None:
        """Reopen log files: the logs go to stdout and stderr, nothing to reopen."""
        log.info("USR1: no log files to reopen")

    def handle_usr2(self) -> None:
        log.warning("USR2 (upgrade by re-executing the master) is not supported yet")

    def handle_winch(self) -> None:
        """Ignored, as gunicorn does outside daemon mode."""

    # -- workers ----------------------------------------------------------------

    def _spawn(self) -> None:
        heartbeat = Heartbeat()
        self._ages += 1
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            assert self._wakeup is not None
            worker_main(self.config, self.app, self.sockets, heartbeat, self.pid, self._wakeup)
        self.workers[pid] = WorkerRecord(pid, heartbeat, self._ages)
        log.info("booting worker, pid %d", pid)

    def _retire(self, pid: int, sig: int = signal.SIGTERM) -> None:
        record = self.workers.get(pid)
        if record is not None and not record.retiring:
            record.retiring = True
            self._kill(pid, sig)

    def _kill(self, pid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            record = self.workers.pop(pid, None)
            if record is not None:
                self._worker_exited(record, status)
                record.heartbeat.close()

    def _worker_exited(self, record: WorkerRecord, status: int) -> None:
        expected = record.retiring or self._stop_deadline is not None
        self._ever_ready = self._ever_ready or record.ready
        code = os.waitstatus_to_exitcode(status)
        if code < 0:
            how = f"killed by {signal.Signals(-code).name}"
            if -code == signal.SIGKILL and not expected:
                how += (
                    " (not sent by the master: the kernel's out-of-memory killer"
                    " is a likely cause)"
                )
        else:
            how = f"exit status {code}"
        if expected:
            log.info("worker %d stopped (%s)", record.pid, how)
            return
        if code == 0 and record.ready and not record.aborted_at:
            log.info("worker %d retired by itself (recycled): replacing it", record.pid)
            return
        if record.aborted_at:
            log.error("worker %d, stuck, is gone (%s): replacing it", record.pid, how)
        elif not record.ready:
            if not self._ever_ready:
                # Exit statuses 1 and 3 are the worker's own report (the
                # app did not load, or its startup failed): it logged why.
                level = logging.INFO if code in (1, 3) else logging.ERROR
                log.log(level, "worker %d failed to boot (%s): stopping", record.pid, how)
                self._exit_status = code if code > 0 else 1
                self._stop(signal.SIGTERM, 0.0)
                return
            log.error("worker %d failed to boot (%s); the others keep serving",
                      record.pid, how)
            self._to_replace = []  # a reload in progress stops here
        else:
            log.error("worker %d died (%s): replacing it", record.pid, how)
        self._note_death()

    def _note_death(self) -> None:
        now = time.monotonic()
        self._deaths.append(now)
        while self._deaths and self._deaths[0] < now - _WINDOW:
            self._deaths.popleft()
        if len(self._deaths) >= _DEATHS:
            self._spawn_delay = min(_MAX_DELAY, max(1.0, self._spawn_delay * 2))
            log.warning("workers keep dying: next one in %.0f s", self._spawn_delay)
        else:
            self._spawn_delay = 0.0
        self._next_spawn = now + self._spawn_delay

    def _check_heartbeats(self) -> None:
        now = time.monotonic()
        timeout = self.config.timeout
        for record in list(self.workers.values()):
            if record.ready:
                self._ever_ready = True
            if record.aborted_at:
                if now - record.aborted_at > _ABORT_GRACE:
                    self._kill(record.pid, signal.SIGKILL)
                continue
            if record.retiring or not timeout:
                continue
            since = record.heartbeat.last or record.born
            silent = now - since
            if silent > timeout:
                state = "serving" if record.ready else "booting"
                log.error(
                    "worker %d timed out: its event loop has been blocked for %.1f s "
                    "(while %s; --timeout %g); its stacks follow, then it is replaced",
                    record.pid, silent, state, timeout,
                )
                record.aborted_at = now
                self._kill(record.pid, signal.SIGABRT)

    def _maintain(self) -> None:
        """Fork or retire workers until the count is right; carry on a HUP."""
        active = [r for r in self.workers.values() if not r.retiring]
        if self._to_replace:
            self._to_replace = [p for p in self._to_replace
                                if p in self.workers and not self.workers[p].retiring]
        if self._to_replace:
            if any(not r.ready for r in active):
                return  # one new worker at a time, and it must be ready first
            if len(active) > self.target:
                self._retire(self._to_replace.pop(0))
            elif time.monotonic() >= self._next_spawn:
                self._spawn()
            return
        if len(active) < self.target and time.monotonic() >= self._next_spawn:
            for _ in range(self.target - len(active)):
                self._spawn()
        elif len(active) > self.target:
            for record in sorted(active, key=lambda r: r.age)[: len(active) - self.target]:
                self._retire(record.pid)

    # -- stopping -----------------------------------------------------------------

    def _stop(self, sig: int, grace: float) -> None:
        if self._stop_deadline is None:
            log.info("stopping %s", "gracefully" if grace else "now")
            self._stop_deadline = time.monotonic() + grace + 1.0
        else:
            self._stop_deadline = min(self._stop_deadline, time.monotonic() + grace + 1.0)
        for record in self.workers.values():
            record.retiring = True
            self._kill(record.pid, sig)

    def _enforce_stop(self) -> None:
        assert self._stop_deadline is not None
        if time.monotonic() > self._stop_deadline:
            for record in self.workers.values():
                log.warning("worker %d did not stop in time: killed", record.pid)
                self._kill(record.pid, signal.SIGKILL)
            self._stop_deadline = time.monotonic() + 5.0

    # -- files --------------------------------------------------------------------

    def _write_pid(self) -> None:
        if self.config.pid:
            with open(self.config.pid, "w") as f:
                f.write(f"{self.pid}\n")

    def _remove_pid(self) -> None:
        if self.config.pid:
            with contextlib.suppress(OSError):
                os.unlink(self.config.pid)

    def _close_sockets(self) -> None:
        for sock in self.sockets:
            release(sock)  # the master owns the unix: socket files
        self.sockets = []
