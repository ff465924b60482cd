"""Server hooks: functions, given only in a config file or to twincorn.run."""

from __future__ import annotations

from dataclasses import dataclass, field

from twincorn.settings.declare import Hook, hook


@dataclass(frozen=True)
class HookSettings:
    """Server hooks: functions, given only in a config file or to twincorn.run."""

    __slots__ = ()

    # -- server hooks (config file only): each gets the arbiter, and the
    # -- worker's record where there is one (see docs/processes.md)
    on_starting: Hook | None = field(default=None, metadata=hook(
        "on_starting(arbiter): in the master, before the sockets are bound."
    ))
    when_ready: Hook | None = field(default=None, metadata=hook(
        "when_ready(arbiter): in the master, once the sockets are bound, "
        "before the first worker is forked."
    ))
    pre_fork: Hook | None = field(default=None, metadata=hook(
        "pre_fork(arbiter, worker): in the master, just before a worker is forked."
    ))
    post_fork: Hook | None = field(default=None, metadata=hook(
        "post_fork(arbiter, worker): in the new worker, just after the fork."
    ))
    worker_exit: Hook | None = field(default=None, metadata=hook(
        "worker_exit(arbiter, worker): in the worker, after it stopped serving."
    ))
    on_exit: Hook | None = field(default=None, metadata=hook(
        "on_exit(arbiter): in the master, just before it exits."
    ))
