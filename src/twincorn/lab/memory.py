"""How much memory a server's processes hold, from /proc (Linux, proc(5)).

Two figures per process, in KiB:

* RSS (VmRSS in /proc/<pid>/status): its pages in RAM, shared ones
  included, so a worker forked from its master counts the pages they still
  share;
* USS (unique set size: Private_Clean + Private_Dirty in
  /proc/<pid>/smaps_rollup, Linux 4.14 and later): the pages that are its
  own, what ending it would give back.

A server is a process group (servers.py starts each in its own session):
twincorn's master and its worker, uvicorn's one process. Its memory is the
sum over the group; what a thousand sockets add lands in the process that
holds them. Memory the kernel keeps for the sockets (their buffers, its
socket and file structures) is in no process's RSS: this is the server's
own memory, what its code allocates per socket.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from twincorn.lab.cpu import group_stats

_PROC = Path("/proc")


@dataclass(frozen=True)
class Memory:
    """A process group's memory, summed over its processes (KiB); `uss`
    None where smaps_rollup is missing or unreadable for any of them."""

    rss: int
    uss: int | None
    processes: int

    @property
    def best(self) -> int:
        """USS where known (a process's own pages), else RSS."""
        return self.rss if self.uss is None else self.uss

    @property
    def kind(self) -> str:
        return "RSS" if self.uss is None else "USS"


def _fields(text: str) -> dict[str, int]:
    """'Name:   1234 kB' lines -> {"Name": 1234} (the values in kB)."""
    found = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            found[name.strip()] = int(parts[0])
    return found


def process_memory(pid: int, proc: Path = _PROC) -> tuple[int, int | None] | None:
    """(RSS, USS) of one process in KiB, USS None where /proc does not
    give it; None if the process is gone."""
    try:
        status = _fields((proc / str(pid) / "status").read_text())
    except OSError:
        return None
    rss = status.get("VmRSS", 0)  # a zombie, or a kernel thread, has none
    try:
        rollup = _fields((proc / str(pid) / "smaps_rollup").read_text())
    except OSError:
        return rss, None
    if "Private_Clean" not in rollup or "Private_Dirty" not in rollup:
        return rss, None
    return rss, rollup["Private_Clean"] + rollup["Private_Dirty"]


def group_memory(pgid: int, proc: Path = _PROC) -> Memory | None:
    """The memory of process group `pgid`; None where /proc cannot tell,
    or when the group has no process left."""
    members = group_stats(pgid, proc)
    if not members:
        return None
    rss, uss, counted = 0, 0, 0
    unique_known = True
    for pid in sorted(members):
        found = process_memory(pid, proc)
        if found is None:  # it ended while we looked
            continue
        counted += 1
        rss += found[0]
        if found[1] is None:
            unique_known = False
        else:
            uss += found[1]
    if not counted:
        return None
    return Memory(rss, uss if unique_known else None, counted)
