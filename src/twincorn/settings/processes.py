"""The master's workers: how many, when they are replaced, the pid file."""

from __future__ import annotations

from dataclasses import dataclass

from twincorn.settings.declare import setting


@dataclass(frozen=True)
class ProcessSettings:
    """The master's workers: how many, when they are replaced, the pid file."""

    __slots__ = ()

    # -- processes
    workers: int = setting(
        1,
        "Worker processes, each with its own event loop. WEB_CONCURRENCY sets it "
        "too; gunicorn's advice for blocking apps is (2 x cores) + 1.",
        "-w",
        section="processes",
        metavar="N",
    )
    timeout: float = setting(
        30.0,
        "A worker whose event loop is silent this long (a blocked loop, a stuck "
        "WSGI call) has its stacks logged, is killed and replaced.",
        section="processes",
        metavar="TIME",
        unit="duration",
    )
    preload: bool = setting(
        False,
        "Import the application in the master, before forking the workers.",
        section="processes",
    )
    max_requests: int = setting(
        0,
        "A worker retires gracefully after this many requests (0: never); a new "
        "one takes its place. Guards against slow leaks.",
        section="processes",
        metavar="N",
    )
    max_requests_jitter: int = setting(
        0,
        "Up to this many requests added at random to --max-requests, per worker, "
        "so that workers do not restart together.",
        section="processes",
        metavar="N",
    )
    max_worker_lifetime: float = setting(
        0.0,
        "A worker retires gracefully after this long (0: never), up to 10% "
        "later at random.",
        section="processes",
        metavar="TIME",
        unit="duration",
    )
    max_worker_memory: int = setting(
        0,
        "A worker retires gracefully once its resident memory passes this size "
        "(0: never; e.g. 512m), up to 5% later at random.",
        section="processes",
        metavar="SIZE",
        unit="size",
    )
    pid: str | None = setting(
        None, "Write the master's process id to this file.", section="processes",
        metavar="FILE",
    )
