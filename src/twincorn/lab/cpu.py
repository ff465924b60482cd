"""Who used the CPU during a measurement: the load generator, the server,
the machine as a whole.

A run of the hello apps (no wait) measures whatever runs out first, and on
a small machine that is often the CPU, not the server's design: twincorn
load runs inside the lab's own process, on one core, beside the server on
the same machine. So the lab measures it rather than guessing, over the
wall time of each run:

* the load generator: the CPU time of the lab's own process (all its
  threads), from time.process_time();
* the server: the CPU time of its process group (the master and its
  workers), from /proc/<pid>/stat;
* the machine: how busy all its cores were, from /proc/stat, whoever used
  them (another program on a shared machine too).

The first two are shares of one core (1.0: one core busy the whole time),
the third a share of all the cores. /proc is Linux's (proc(5)); elsewhere
the server's and the machine's shares are None.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

#: A process, or the machine, at this share or more was the limit: it had
#: nothing more to give (the rest is the scheduler's own time and rounding).
SATURATED = 0.9

_PROC = Path("/proc")


def _ticks_per_second() -> int:
    return os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def group_stats(pgid: int, proc: Path = _PROC) -> dict[int, list[str]] | None:
    """The live processes of process group `pgid`: pid -> the fields of its
    /proc/<pid>/stat from the third on (the state); None where /proc cannot
    tell."""
    if not (proc / "self" / "stat").is_file():
        return None
    found = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        # The command name (field 2) is in parentheses and may hold spaces:
        # the fields are counted from its last ")".
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:  # field 5, pgrp
            found[int(entry.name)] = fields
    return found


def group_cpu_seconds(pgid: int, proc: Path = _PROC) -> float | None:
    """CPU seconds (user + system) used so far by the live processes of
    process group `pgid`; None where /proc cannot tell."""
    members = group_stats(pgid, proc)
    if members is None:
        return None
    # Fields 14 and 15: utime, stime.
    total = sum(int(fields[11]) + int(fields[12]) for fields in members.values())
    return total / _ticks_per_second()


def machine_ticks(proc: Path = _PROC) -> tuple[int, int, int] | None:
    """(busy, all, cores): clock ticks of every core so far, busy and in
    all, from /proc/stat's "cpu" line; None where there is none."""
    try:
        lines = (proc / "stat").read_text().splitlines()
    except OSError:
        return None
    cores = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    for line in lines:
        if line.startswith("cpu "):
            ticks = [int(x) for x in line.split()[1:]]
            # user nice system idle iowait irq softirq steal (guest is in user)
            idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
            everything = sum(ticks[:8])
            return everything - idle, everything, cores
    return None


@dataclass(frozen=True)
class CpuShares:
    """Over one measurement's wall time: the load generator's and the
    server's shares of one core, the machine's share of all its cores."""

    load_generator: float
    server: float | None = None
    machine: float | None = None
    cores: int | None = None


class CpuWatch:
    """`with CpuWatch(server_pgid) as watch: ...`, then `watch.shares`."""

    def __init__(self, server_pgid: int | None, proc: Path = _PROC) -> None:
        self.server_pgid = server_pgid
        self.proc = proc
        self.shares = CpuShares(0.0)
        self._wall = self._own = 0.0
        self._server: float | None = None
        self._machine: tuple[int, int, int] | None = None

    def _server_now(self) -> float | None:
        if self.server_pgid is None:
            return None
        return group_cpu_seconds(self.server_pgid, self.proc)

    def __enter__(self) -> CpuWatch:
        self._server = self._server_now()
        self._machine = machine_ticks(self.proc)
        self._own = time.process_time()
        self._wall = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = max(time.monotonic() - self._wall, 1e-9)
        own = time.process_time() - self._own
        server_after, machine_after = self._server_now(), machine_ticks(self.proc)
        server = machine = None
        cores = None
        if server_after is not None and self._server is not None:
            server = round((server_after - self._server) / wall, 3)
        if machine_after is not None and self._machine is not None:
            busy = machine_after[0] - self._machine[0]
            every = machine_after[1] - self._machine[1]
            machine = round(busy / every, 3) if every > 0 else None
            cores = machine_after[2]
        self.shares = CpuShares(round(own / wall, 3), server, machine, cores)
