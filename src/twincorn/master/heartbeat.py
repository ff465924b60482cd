"""A worker's heartbeat: a number in memory shared with the master.

Before forking, the master maps 8 bytes of anonymous shared memory for the
worker. The worker's event loop writes the time there once a second (from a
loop callback, not a thread: a blocked loop must stop beating). The master
reads it: 0 means "still booting", an old time means "stuck". CLOCK_MONOTONIC
is the same clock in every process, so the two sides compare directly.
"""

from __future__ import annotations

import mmap
import struct
import time

_DOUBLE = struct.Struct("d")


class Heartbeat:
    def __init__(self) -> None:
        self._memory = mmap.mmap(-1, _DOUBLE.size)  # MAP_SHARED | MAP_ANONYMOUS
        _DOUBLE.pack_into(self._memory, 0, 0.0)

    def beat(self) -> None:
        """In the worker: I am alive (and, the first time, ready)."""
        _DOUBLE.pack_into(self._memory, 0, time.monotonic())

    @property
    def last(self) -> float:
        """In the master: when the worker last beat, 0.0 if it never did."""
        return float(_DOUBLE.unpack_from(self._memory, 0)[0])

    def close(self) -> None:
        self._memory.close()
