"""A worker's heartbeat: two numbers in memory shared with the master.

Before forking, the master maps 16 bytes of anonymous shared memory for the
worker. The worker's event loop writes the time in the first 8 once a second
(from a loop callback, not a thread: a blocked loop must stop beating). The
master reads it: 0 means "still booting", an old time means "stuck".
CLOCK_MONOTONIC is the same clock in every process, so the two sides compare
directly. The other 8 hold the time the worker asked to be replaced (it
reached a recycling limit), 0 until then: the master starts its successor
and stops it once the successor serves, as for a reload. The last 8 are
set by the master just before it stops a worker while the server carries
on (a reload, TTOU, recycling): the worker then closes its WebSockets with
1012 (service restart, come back) rather than 1001 (going away).
"""

from __future__ import annotations

import mmap
import struct
import time

_DOUBLE = struct.Struct("d")
_BEAT, _REPLACE, _RETIRED = 0, _DOUBLE.size, 2 * _DOUBLE.size


class Heartbeat:
    def __init__(self) -> None:
        self._memory = mmap.mmap(-1, 3 * _DOUBLE.size)  # MAP_SHARED | MAP_ANONYMOUS
        for offset in (_BEAT, _REPLACE, _RETIRED):
            _DOUBLE.pack_into(self._memory, offset, 0.0)

    def beat(self) -> None:
        """In the worker: I am alive (and, the first time, ready)."""
        _DOUBLE.pack_into(self._memory, _BEAT, time.monotonic())

    def ask_replacement(self) -> None:
        """In the worker: replace me (I keep serving until told to stop)."""
        _DOUBLE.pack_into(self._memory, _REPLACE, time.monotonic())

    @property
    def last(self) -> float:
        """In the master: when the worker last beat, 0.0 if it never did."""
        return float(_DOUBLE.unpack_from(self._memory, _BEAT)[0])

    @property
    def replacement_asked(self) -> bool:
        """In the master: the worker asked to be replaced."""
        return float(_DOUBLE.unpack_from(self._memory, _REPLACE)[0]) > 0.0

    def retire(self) -> None:
        """In the master: this worker is about to be stopped while the
        server carries on."""
        _DOUBLE.pack_into(self._memory, _RETIRED, time.monotonic())

    @property
    def retired(self) -> bool:
        """In the worker: the master stops me but serves on."""
        return float(_DOUBLE.unpack_from(self._memory, _RETIRED)[0]) > 0.0

    def close(self) -> None:
        self._memory.close()
