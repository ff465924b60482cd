"""wrk, run on the load CPU, and what its output says.

    result = wrk.run(["-t1", "-c64", "-d10s", "--latency", url], seconds=10)
    result.rps, result.errors, result.latency_ms(99)

Errors are wrk's socket errors (connect, read, write, timeout) plus its
non-2xx or 3xx responses: what should be 0 in a sound run.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from machine import LOAD_CPU, pinned
from servers import RunFailed

_DONE = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b")
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_PERCENTILE = r"^\s*{}%\s+([\d.]+)(us|ms|s|m)\s*$"
_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class Result:
    """One wrk run: requests completed in how many seconds, wrk's own
    requests per second, errors, and its whole output."""

    requests: int
    seconds: float
    rps: float
    errors: int
    output: str

    def latency_ms(self, percent: int) -> float:
        """A latency percentile of wrk --latency (50, 75, 90 or 99), in ms."""
        match = re.search(_PERCENTILE.format(percent), self.output, re.MULTILINE)
        if match is None:
            raise RunFailed(f"no {percent}% latency in wrk's output")
        return float(match.group(1)) * _MS[match.group(2)]


def run(args: Sequence[str], seconds: float) -> Result:
    """Run `wrk ARGS` (which last `seconds`) pinned to LOAD_CPU; RunFailed
    if it fails or runs 30 s too long."""
    argv = pinned(LOAD_CPU, ["wrk", *args])
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        raise RunFailed(f"wrk did not finish within {seconds + 30:g}s") from None
    if done.returncode != 0:
        raise RunFailed(f"wrk exited with code {done.returncode}: {done.stderr.strip()}")
    return parse(done.stdout)


def parse(output: str) -> Result:
    """What wrk's output says; RunFailed if it has no count of requests."""
    done, rps = _DONE.search(output), _RPS.search(output)
    if done is None or rps is None:
        raise RunFailed(f"no request count in wrk's output: {output.strip()!r}")
    socket_errors = _SOCKET_ERRORS.search(output)
    non_2xx = _NON_2XX.search(output)
    errors = sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    errors += int(non_2xx.group(1)) if non_2xx else 0
    seconds = float(done.group(2)) * _SECONDS[done.group(3)]
    return Result(int(done.group(1)), seconds, float(rps.group(1)), errors, output)
