"""What the benchmarks need of the machine, and what software they measured.

The server under test runs on SERVER_CPU, whatever makes the load (wrk,
slowhttptest, a script's client threads, a load tester) on LOAD_CPU, both
pinned: `taskset` for the programs started, `use_load_cpu()` for the
script's own threads. ready() says, before a script starts, what it would
lack (missing_tools()), and gives the script, and every process it starts,
as many file descriptors as it may have (raise_nofile()).
"""

from __future__ import annotations

import importlib.metadata
import os
import resource
import shutil
import sys
import time
from collections.abc import Iterable, Sequence

SERVER_CPU = 0
LOAD_CPU = 1

# How to install the system programs the scripts run (Debian, Ubuntu).
INSTALL = {
    "taskset": "it is in util-linux (`apt-get install util-linux`)",
    "wrk": "install it with `apt-get install wrk` (Debian, Ubuntu)",
    "slowhttptest": "install it with `apt-get install slowhttptest` (Debian, Ubuntu)",
}


def pinned(cpu: int, argv: Sequence[str]) -> list[str]:
    """`argv` run on one CPU only (taskset execs it: the pid stays the same)."""
    return ["taskset", "-c", str(cpu), *argv]


def use_load_cpu() -> None:
    """Pin this process to LOAD_CPU: the threads and programs it starts next
    inherit it."""
    os.sched_setaffinity(0, {LOAD_CPU})


def missing_tools(*programs: str) -> list[str]:
    """What keeps a benchmark from running: taskset, SERVER_CPU and LOAD_CPU
    (two CPUs this process may use), and `programs`; [] if nothing."""
    problems = [
        f"{name} not found: {INSTALL[name]}."
        for name in (*programs, "taskset")
        if shutil.which(name) is None
    ]
    if shutil.which("taskset") and not {SERVER_CPU, LOAD_CPU} <= os.sched_getaffinity(0):
        problems.append(
            f"needs CPUs {SERVER_CPU} and {LOAD_CPU}: one for the server, one for the load."
        )
    return problems


def ready(*programs: str, nofile: int = 0) -> bool:
    """True if a benchmark can run (missing_tools(); with `nofile`, that
    many file descriptors: raise_nofile()); else says why not, on stderr."""
    problems = missing_tools(*programs)
    limit = raise_nofile(nofile) if nofile else ""
    if limit:
        problems.append(limit)
    if problems:
        print("\n".join(problems), file=sys.stderr)
    return not problems


def raise_nofile(needed: int) -> str:
    """Raise this process's open-files limit to its hard limit (the servers,
    clients and load generators started next inherit it), or to `needed` if
    the hard limit is lower and this process may raise it (root); '' if the
    limit is then at least `needed`, else what to do."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
        except (ValueError, OSError):
            return (
                f"open files limit is {hard} (hard); {needed} are needed: raise the hard limit"
                " (e.g. `ulimit -Hn 65536` as root, or LimitNOFILE= in a systemd unit)"
            )
        return ""
    target = max(soft, needed) if hard == resource.RLIM_INFINITY else hard
    if soft != target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return ""


def version(distribution: str) -> str | None:
    """The installed version of a distribution (e.g. "uvicorn"), or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def software(distributions: Iterable[str]) -> str:
    """Python's version, the distributions' (those installed, each once),
    uvloop's and httptools', and today's date: a line for under a table."""
    python = ".".join(map(str, sys.version_info[:3]))
    found = {name: version(name) for name in dict.fromkeys([*distributions, "uvloop", "httptools"])}
    versions = ", ".join(f"{name} {v}" for name, v in found.items() if v)
    return f"Python {python}; {versions}; {time.strftime('%Y-%m-%d')}"
