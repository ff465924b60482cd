"""What the benchmarks read of other processes, from /proc (Linux).

Every reader raises ProcessLookupError ("process N is gone") when the process
has ended, except the questions (alive, descends_from, children), which
answer no for a process that is gone.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def read(pid: int, name: str) -> str:
    """The text of /proc/PID/NAME."""
    try:
        return Path(f"/proc/{pid}/{name}").read_text()
    except OSError as exc:
        raise ProcessLookupError(f"process {pid} is gone") from exc


def status_field(pid: int, name: str) -> str:
    """A field of /proc/PID/status (e.g. "VmRSS", "PPid"), as written there."""
    for line in read(pid, "status").splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise LookupError(f"no {name} in /proc/{pid}/status")


def rss_kib(pid: int) -> int:
    """Resident memory of one process, in KiB (VmRSS)."""
    value, unit = status_field(pid, "VmRSS").split()
    assert unit == "kB", unit
    return int(value)


def stat_fields(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command's name (which may hold
    spaces and parentheses): the state first, then the parent's pid..."""
    return read(pid, "stat").rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    """True while the process runs (a zombie does not)."""
    try:
        return stat_fields(pid)[0] != "Z"
    except OSError:
        return False


def descends_from(pid: int, ancestor: int) -> bool:
    """True if `pid` is `ancestor` or one of its descendants."""
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            pid = int(status_field(pid, "PPid").split()[0])
        except OSError:
            return False
    return False


def children(pid: int) -> set[int]:
    """The live child processes of `pid`."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = stat_fields(int(entry.name))
                if int(fields[1]) == pid and fields[0] != "Z":
                    found.add(int(entry.name))
    return found


def command_line(pid: int) -> bytes:
    """/proc/PID/cmdline: the arguments, each ended by a NUL byte."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError as exc:
        raise ProcessLookupError(f"process {pid} is gone") from exc


def cpu_seconds(pid: int) -> float:
    """CPU time the process has used, user and system, in seconds."""
    fields = stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def nofile_limit(pid: int) -> str:
    """The process's "Max open files" as "soft/hard"; "?" if unknown."""
    try:
        for line in read(pid, "limits").splitlines():
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return f"{soft}/{hard}"
    except OSError:
        pass
    return "?"
