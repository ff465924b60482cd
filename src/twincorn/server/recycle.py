"""When a worker should retire by itself: gunicorn's recycling limits.

Each limit is jittered per worker, so that workers started together do not
all restart together. The worker checks `Recycler.reason` once a second and,
given a reason, stops gracefully; the master sees a worker that exited 0 by
itself and starts a new one.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """This process's resident set size (Linux /proc), 0 where unknown."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


@dataclass(frozen=True, slots=True)
class Recycler:
    max_requests: int = 0  # 0: no limit
    max_lifetime: float = 0.0  # seconds
    max_memory: int = 0  # bytes of resident memory

    @classmethod
    def jittered(
        cls, max_requests: int, requests_jitter: int, max_lifetime: float, max_memory: int,
        rng: random.Random | None = None,
    ) -> Recycler:
        """The limits for one worker: requests get up to `requests_jitter`
        more (gunicorn's rule), lifetime up to 10% more, memory up to 5%."""
        rng = rng or random.Random()
        return cls(
            max_requests + rng.randint(0, requests_jitter) if max_requests else 0,
            max_lifetime * (1 + rng.uniform(0, 0.1)) if max_lifetime else 0.0,
            int(max_memory * (1 + rng.uniform(0, 0.05))) if max_memory else 0,
        )

    @property
    def active(self) -> bool:
        return bool(self.max_requests or self.max_lifetime or self.max_memory)

    def reason(self, served: int, age: float) -> str | None:
        """Why the worker should retire now, or None."""
        if self.max_requests and served >= self.max_requests:
            return f"served {served} request{'' if served == 1 else 's'} (--max-requests)"
        if self.max_lifetime and age >= self.max_lifetime:
            return f"has run {age:.0f} s (--max-worker-lifetime)"
        if self.max_memory:
            rss = resident_bytes()
            if rss > self.max_memory:
                return f"uses {rss >> 20} MiB (--max-worker-memory)"
        return None
