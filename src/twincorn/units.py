"""Sizes and durations, read from the command line and written in --help.

One reader and one writer for each, shared by `twincorn serve`
(config.py) and `twincorn load` (load/plan.py), so that what --help shows
as a default (`100m`, `30s`) is also what the flag accepts.
"""

from __future__ import annotations

import re

_SIZE = re.compile(r"\s*(\d+)\s*([kmg]i?b?|b)?\s*")
_SCALE = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|h|m|s)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}


def parse_size(text: str) -> int:
    """Bytes from "64k", "1m", "2g", "1MiB" or a plain number of bytes."""
    m = _SIZE.fullmatch(text.lower())
    if m is None:
        raise ValueError(f"expected a size, got {text!r} (e.g. 8190, 64k, 100m)")
    return int(m.group(1)) * _SCALE[(m.group(2) or "")[:1]]


def format_size(size: int) -> str:
    """The shortest exact spelling parse_size reads back: 100m, 64k, 4094."""
    for suffix in ("g", "m", "k"):
        scale = _SCALE[suffix]
        if size and size % scale == 0:
            return f"{size // scale}{suffix}"
    return str(size)


def parse_duration(text: str) -> float:
    """Seconds from "30s", "2m", "1h10m", "1.5s", "250ms" or a plain number."""
    text = text.strip().lower()
    try:
        return float(text)
    except ValueError:
        pass
    pos = 0
    total = 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"expected a duration, got {text!r} (e.g. 30, 30s, 2m, 1h10m, 250ms)")
    return total


def format_duration(seconds: float) -> str:
    """A duration as parse_duration reads it back: 30s, 1m30s, 2h, 250ms, 0."""
    if seconds == 0:
        return "0"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts)
