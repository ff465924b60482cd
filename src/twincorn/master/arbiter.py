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
take it down. Before it binds, it looks at the application's source without
running it (importer.check): a missing module, a SyntaxError or a missing
attribute ends the command there, before any socket or worker exists.

Supervision rests on the heartbeat (heartbeat.py): a worker that has never
beaten is booting; one whose last beat is older than --timeout is stuck. It
first gets SIGUSR2 (it logs the request it is serving: `report_stuck` in
server/worker.py), then SIGABRT (its faulthandler writes every thread's
stack to the log), and is replaced. A worker that dies before its first
beat failed to boot: if no worker ever booted, the whole server stops with
that worker's exit status (with --reload it waits for the next change
instead).

USR2 forks a new master that execs the same command line with the listening
sockets inherited (their numbers in TWINCORN_FDS): both masters serve side
by side until the operator stops the old one with TERM, as with gunicorn.
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

from twincorn import __version__, logs
from twincorn.config import UPGRADE_ENV, Config, ConfigError
from twincorn.importer import AppLoadError, app_label, prepare
from twincorn.master.child import MASTER_SIGNALS, worker_main
from twincorn.master.heartbeat import Heartbeat
from twincorn.master.reloader import Reloader, ReloadUnavailable, require_watchfiles
from twincorn.master.title import set_title
from twincorn.server.listener import (
    BindError,
    describe,
    hand_over,
    open_sockets,
    reclaim,
    release,
)
from twincorn.server.tls_context import TlsError, TlsSetup
from twincorn.server.tls_context import load as load_tls

log = logging.getLogger("twincorn.error")

# After SIGUSR2, how long a stuck worker gets to name its request; after
# SIGABRT, how long it gets to write its stacks and die.
_REPORT_GRACE = 0.5
_ABORT_GRACE = 2.0
# The main loop's pace: a second when all is calm, faster while workers boot,
# a reload is under way or a worker is being killed.
_CALM, _BUSY = 1.0, 0.05
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
    stuck_at: float = 0.0  # found stuck: sent SIGUSR2 to report its request
    aborted_at: float = 0.0  # then sent SIGABRT

    @property
    def ready(self) -> bool:
        return self.heartbeat.last > 0.0


class Arbiter:
    """The master process: `Arbiter(config).run()` returns the exit status."""

    def __init__(
        self,
        config: Config,
        app: Callable[..., Any] | None = None,
        rebuild: Callable[[], Config] | None = None,
    ) -> None:
        self.config = config
        self.app = app
        self.rebuild = rebuild  # HUP: the settings read again from their sources
        self.target = config.workers
        self.workers: dict[int, WorkerRecord] = {}
        self.sockets: list[socket.socket] = []
        self.pid = os.getpid()
        self._signals: deque[int] = deque()
        self._wakeup: tuple[int, int] | None = None
        self._ages = 0
        self._ever_ready = False
        # Workers being replaced one by one (a HUP, a reload, a recycling limit).
        self._to_replace: list[int] = []
        self._deaths: deque[float] = deque()
        self._spawn_delay = 0.0
        self._next_spawn = 0.0
        self._stop_deadline: float | None = None  # set once a stop began
        self._exit_status = 0
        self._reloader: Reloader | None = None
        self._waiting_for_fix = False  # --reload: no worker boots; wait for an edit
        self._new_master = 0  # USR2: the pid of the master replacing us
        self._pid_file = config.pid
        #: The TLS context the workers are forked with (None: plain HTTP):
        #: made at start, again on HUP (server/tls_context.py).
        self.tls: TlsSetup | None = None

    # -- the main loop ------------------------------------------------------

    def run(self) -> int:
        config = self.config
        try:
            if config.reload:
                require_watchfiles()
            self.app = prepare(config, self.app)
        except AppLoadError as exc:
            exc.report()
            return exc.status
        except ReloadUnavailable as exc:
            log.error("%s", exc)
            return 1
        try:
            self.tls = load_tls(config)
        except TlsError as exc:
            log.error("%s", exc)
            return 1
        self.hook("on_starting", self)
        try:
            self.sockets = open_sockets(config.binds, config.backlog,
                                        reuse_port=config.reuse_port, unix_mode=config.unix_mode)
        except BindError as exc:
            log.error("%s", exc)
            return 1
        self._install_signals()
        try:
            if config.reload:
                assert self._wakeup is not None
                self._reloader = Reloader(config.reload_dir or (config.app_dir,),
                                          config.reload_include, config.reload_exclude,
                                          self._wakeup[1])
                self._reloader.start()
                log.info("reload: watching %s", ", ".join(self._reloader.folders))
        except ReloadUnavailable as exc:
            log.error("%s", exc)
            self._restore_signals()
            self._close_sockets()
            return 1
        self._write_pid()
        set_title(f"master [{app_label(config, self.app)}]")
        bound = ", ".join(describe(s, self.tls is not None) for s in self.sockets)
        log.info("twincorn %s master, pid %d, bound to %s: booting %d worker%s", __version__,
                 self.pid, bound, self.target, "" if self.target == 1 else "s")
        self.hook("when_ready", self)
        try:
            self._maintain()
            while True:
                self._sleep(_BUSY if self._busy() else _CALM)
                while self._signals:
                    self._dispatch(self._signals.popleft())
                self._reap()
                if self._stop_deadline is not None:
                    if not self.workers:
                        return self._exit_status
                    self._enforce_stop()
                    continue
                self._check_reload()
                self._check_heartbeats()
                self._maintain()
        finally:
            if self._reloader is not None:
                self._reloader.stop()
            self._restore_signals()
            self._close_sockets()
            self._remove_pid()
            self.hook("on_exit", self)

    @property
    def wakeup_fds(self) -> tuple[int, ...]:
        """The signal wake-up pipe: a forked worker closes it (child.py)."""
        return self._wakeup or ()

    def _busy(self) -> bool:
        """Is something under way that the loop should follow closely?"""
        return bool(self._to_replace) or any(
            not r.ready or r.stuck_at or r.retiring for r in self.workers.values()
        )

    def hook(self, name: str, *args: Any) -> None:
        """Call a server hook from the config file; its errors are logged
        (here and, for post_fork and worker_exit, in the worker)."""
        function = getattr(self.config, name)
        if function is None:
            return
        try:
            function(*args)
        except Exception:
            log.exception("the %s hook failed", name)

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
        """Read the settings again, then replace the workers one by one, each
        new one ready before an old one stops (new code, unless preloaded)."""
        if self._stop_deadline is not None:
            return
        self._reload_config()
        self._reload_tls()
        self._replace_all("HUP")

    def _reload_config(self) -> None:
        if self.rebuild is None:
            return
        try:
            config = self.rebuild()
        except ConfigError as exc:
            log.error("HUP: the settings were not reloaded (%s); keeping the old ones", exc)
            return
        if config.binds != self.config.binds:
            log.warning("HUP: --bind changed; sockets change only on a restart or USR2")
        self.config = config
        self.target = config.workers
        logs.configure(config.log_level, config.error_log_file, config.access_log_file)

    def _reload_tls(self) -> None:
        """Read the certificate and key again (renewed ones are served by
        the new workers); a file that cannot be used keeps the old ones."""
        try:
            self.tls = load_tls(self.config)
        except TlsError as exc:
            log.error("HUP: %s; keeping the TLS files read before", exc)

    def _replace_all(self, why: str) -> None:
        self._to_replace = sorted(
            (r.pid for r in self.workers.values() if not r.retiring),
            key=lambda pid: self.workers[pid].age,
        )
        count = len(self._to_replace)
        log.info("%s: replacing %s", why,
                 "the worker" if count == 1 else f"{count} workers one by one")

    def handle_ttin(self) -> None:
        self.target += 1
        log.info("TTIN: %d worker%s", self.target, "" if self.target == 1 else "s")

    def handle_ttou(self) -> None:
        if self.target > 1:
            self.target -= 1
        log.info("TTOU: %d worker%s", self.target, "" if self.target == 1 else "s")

    def handle_usr1(self) -> None:
        """Reopen the log files, here and in every worker."""
        logs.reopen()
        log.info("USR1: log files reopened")
        for record in self.workers.values():
            self._kill(record.pid, signal.SIGUSR1)

    def handle_usr2(self) -> None:
        """Upgrade: exec a new master on the same sockets, beside this one."""
        if self._stop_deadline is not None:
            return
        if self._new_master:
            log.warning("USR2: a new master (pid %d) is already running", self._new_master)
            return
        if self._pid_file:
            old = self._pid_file + ".oldbin"
            with contextlib.suppress(OSError):
                os.replace(self._pid_file, old)
                self._pid_file = old
        environ = dict(os.environ, **{UPGRADE_ENV: hand_over(self.sockets)})
        for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
            environ.pop(name, None)
        # sys.orig_argv is the command line as typed, `-m twincorn` included.
        argv = [sys.executable, *sys.orig_argv[1:]]
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            try:
                self._restore_signals()
                os.execve(sys.executable, argv, environ)
            finally:
                os._exit(127)
        self._new_master = pid
        log.info("USR2: new master started, pid %d, on the same sockets; stop this "
                 "one (pid %d) with TERM once it serves", pid, self.pid)

    def handle_winch(self) -> None:
        """Ignored, as gunicorn does outside daemon mode."""

    # -- workers ----------------------------------------------------------------

    def _spawn(self) -> None:
        self._ages += 1
        record = WorkerRecord(0, Heartbeat(), self._ages)
        self.hook("pre_fork", self, record)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            record.pid = os.getpid()
            worker_main(self, record)
        record.pid = pid
        self.workers[pid] = record
        log.info("booting worker, pid %d", pid)

    def _retire(self, pid: int, sig: int = signal.SIGTERM) -> None:
        record = self.workers.get(pid)
        if record is not None and not record.retiring:
            record.retiring = True
            record.heartbeat.retire()  # the server carries on: WebSockets get 1012
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
            elif pid == self._new_master:
                self._new_master_exited(status)

    def _new_master_exited(self, status: int) -> None:
        log.error("USR2: the new master, pid %d, exited (%s); this one carries on",
                  self._new_master, _how(os.waitstatus_to_exitcode(status)))
        self._new_master = 0
        reclaim(self.sockets)
        if self._pid_file and self.config.pid and self._pid_file != self.config.pid:
            with contextlib.suppress(OSError):
                os.replace(self._pid_file, self.config.pid)
                self._pid_file = self.config.pid

    def _worker_exited(self, record: WorkerRecord, status: int) -> None:
        expected = record.retiring or self._stop_deadline is not None
        self._ever_ready = self._ever_ready or record.ready
        code = os.waitstatus_to_exitcode(status)
        how = _how(code)
        if code == -signal.SIGKILL and not expected and not record.aborted_at:
            how += " (not sent by the master: the kernel's out-of-memory killer is a likely cause)"
        if expected:
            log.info("worker %d stopped (%s)", record.pid, how)
            return
        if code == 0 and record.ready and not record.aborted_at:
            log.info("worker %d retired by itself (recycled): replacing it", record.pid)
            return
        if record.aborted_at:
            log.error("worker %d, stuck, is gone (%s): replacing it", record.pid, how)
        elif not record.ready:
            if not self._ever_ready and self._reloader is not None:
                log.error("worker %d failed to boot (%s): fix the error above; the "
                          "next change to a watched file tries again", record.pid, how)
                self._waiting_for_fix = True
                return
            if not self._ever_ready:
                # Exit statuses 1 and 3 are the worker's own report (the
                # app did not load, or its startup failed): it logged why.
                level = logging.INFO if code in (1, 3) else logging.ERROR
                log.log(level, "worker %d failed to boot (%s): stopping", record.pid, how)
                self._exit_status = code if code > 0 else 1
                self._stop(signal.SIGTERM, 0.0)
                return
            log.error("worker %d failed to boot (%s); the others keep serving%s",
                      record.pid, how,
                      " the old code until the next change" if self._reloader else "")
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

    def _check_reload(self) -> None:
        if self._reloader is None:
            return
        changed = self._reloader.take()
        if not changed:
            return
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        shown = ", ".join(changed[:3]) + more
        if self._waiting_for_fix:
            log.info("reload: %s changed; booting a worker again", shown)
            self._waiting_for_fix = False
            return
        self._replace_all(f"reload: {shown} changed")

    def _check_heartbeats(self) -> None:
        now = time.monotonic()
        timeout = self.config.timeout
        for record in list(self.workers.values()):
            if record.ready:
                self._ever_ready = True
            if (record.heartbeat.replacement_asked and not record.retiring
                    and record.pid not in self._to_replace):
                log.info("worker %d reached a recycling limit: starting its successor",
                         record.pid)
                self._to_replace.append(record.pid)
            if record.aborted_at:
                if now - record.aborted_at > _ABORT_GRACE:
                    self._kill(record.pid, signal.SIGKILL)
                continue
            if record.stuck_at:
                if now - record.stuck_at > _REPORT_GRACE:
                    record.aborted_at = now
                    self._kill(record.pid, signal.SIGABRT)
                continue
            if record.retiring or not timeout:
                continue
            since = record.heartbeat.last or record.born
            silent = now - since
            if silent > timeout:
                state = "serving" if record.ready else "booting"
                log.error(
                    "worker %d timed out: its event loop has been blocked for %.1f s "
                    "(while %s; --timeout %g); what it serves and its stacks follow, "
                    "then it is replaced",
                    record.pid, silent, state, timeout,
                )
                record.stuck_at = now
                self._kill(record.pid, signal.SIGUSR2)

    def _maintain(self) -> None:
        """Fork or retire workers until the count is right; carry on a HUP."""
        if self._waiting_for_fix:
            return
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
        # The workers take what waits in the listen queue, then close their
        # copies of the sockets; once ours is closed too, a client that
        # connects now is refused at once instead of waiting in a queue that
        # nobody reads, to be reset when the master exits. (After USR2 the
        # new master holds the sockets: it serves on.)
        self._close_sockets()

    def _enforce_stop(self) -> None:
        assert self._stop_deadline is not None
        if time.monotonic() > self._stop_deadline:
            for record in self.workers.values():
                log.warning("worker %d did not stop in time: killed", record.pid)
                self._kill(record.pid, signal.SIGKILL)
            self._stop_deadline = time.monotonic() + 5.0

    # -- files --------------------------------------------------------------------

    def _write_pid(self) -> None:
        if self._pid_file:
            with open(self._pid_file, "w") as f:
                f.write(f"{self.pid}\n")

    def _remove_pid(self) -> None:
        if self._pid_file:
            with contextlib.suppress(OSError):
                os.unlink(self._pid_file)

    def _close_sockets(self) -> None:
        for sock in self.sockets:
            release(sock)  # the master owns the unix: socket files
        self.sockets = []


def _how(code: int) -> str:
    """An exit code from os.waitstatus_to_exitcode, in words."""
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
