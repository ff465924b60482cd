"""The process that runs bench/apps/echo1k.py, found and questioned by GET /stats.

The memory benchmarks (bench/soak.py, bench/idle_memory.py) measure the one
process that runs the app. The app answers `GET /stats` with its pid, so a
prefork server's worker (twincorn's, gunicorn's, granian's) is found without
guessing at the process tree; it must be the server's own process or one of
its descendants. The same answer gives the app's count of answered requests
and its Python blocks (see bench/apps/echo1k.py).

Servers serving these apps are started with servers.start(..., path=[APPS]).
"""

from __future__ import annotations

import http.client
import json
import subprocess
from typing import IO, Any

import procfs
from servers import HOST, ROOT, RunFailed, wait_ready

APPS = ROOT / "bench" / "apps"


def stats(port: int, timeout: float = 10.0, query: str = "") -> dict[str, Any]:
    """The app's figures (GET /stats); query `collect`: after a full garbage
    collection in the worker; `types`: with its objects counted by type."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", f"/stats?{query}" if query else "/stats")
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RunFailed(f"GET /stats answered {response.status}")
        figures: dict[str, Any] = json.loads(body)
        return figures
    finally:
        conn.close()


def find(proc: subprocess.Popen[bytes], port: int, log: IO[bytes]) -> int:
    """Wait until the app answers; the pid of the process that runs it."""
    return wait_ready(proc, log, lambda: _worker(proc, port))


def _worker(proc: subprocess.Popen[bytes], port: int) -> int | None:
    try:
        pid = int(stats(port, timeout=2.0)["pid"])
    except (OSError, http.client.HTTPException, RunFailed, ValueError):
        return None
    if not procfs.descends_from(pid, proc.pid):
        raise RunFailed(f"the app runs in pid {pid}, not under the server's {proc.pid}")
    return pid
