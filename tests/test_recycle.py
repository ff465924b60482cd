"""Recycling: workers that retire by themselves, and the master replacing them."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from master_support import Master, get
from twincorn.server.recycle import Recycler, resident_bytes

PID_APP = (
    "import os\n"
    "def app(environ, start_response):\n"
    "    start_response('200 OK', [])\n"
    "    return [str(os.getpid()).encode()]\n"
)


def test_limits_are_jittered_within_bounds() -> None:
    rng = random.Random(7)
    for _ in range(200):
        r = Recycler.jittered(100, 20, 60.0, 1000, rng)
        assert 100 <= r.max_requests <= 120
        assert 60.0 <= r.max_lifetime <= 66.0
        assert 1000 <= r.max_memory <= 1050
    none = Recycler.jittered(0, 20, 0.0, 0, rng)
    assert not none.active and none.reason(10**9, 10**9) is None
    spread = {Recycler.jittered(100, 50, 0, 0, rng).max_requests for _ in range(50)}
    assert len(spread) > 10  # workers do not all restart together


def test_reasons() -> None:
    assert "requests" in (Recycler(max_requests=5).reason(5, 0) or "")
    assert Recycler(max_requests=5).reason(4, 0) is None
    assert "lifetime" in (Recycler(max_lifetime=2).reason(0, 2.5) or "")
    assert resident_bytes() > 1 << 20
    assert "memory" in (Recycler(max_memory=1024).reason(0, 0) or "")
    assert Recycler(max_memory=1 << 40).reason(0, 0) is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the master needs fork")
@pytest.mark.parametrize(
    "limit", [("--max-requests", "5"), ("--max-worker-lifetime", "1"),
              ("--max-worker-memory", "1k")],
)
def test_worker_is_recycled_without_failures(
    master_factory: type[Master], tmp_path: Path, limit: tuple[str, str]
) -> None:
    (tmp_path / "pidapp.py").write_text(PID_APP)
    master = master_factory("pidapp:app", "--app-dir", str(tmp_path), "-w", "1", *limit)
    pids: set[int] = set()
    failures = 0
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and len(pids) < 3:
        status, body = get(master.port)
        if status == 200:
            pids.add(int(body))
        else:
            failures += 1
        time.sleep(0.05)
    assert len(pids) >= 3, master.output()
    assert failures == 0, master.output()
    output = master.output()
    # The master starts the successor first, then stops the old worker.
    assert "recycling this worker" in output and "starting its successor" in output
    assert "died" not in output
