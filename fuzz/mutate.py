"""Byte-level mutations: what a generator builds, or a corpus case, broken.

Each mutation is small and aimed where HTTP parsers go wrong: a flipped
bit, a CR, LF, NUL, SP or HTAB inserted (most often beside an existing line
end), a cut, a repeated or dropped piece, a line swapped, a number changed.
`mutate` applies one to four of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from fuzz.generate import SPECIAL
from fuzz.source import Source, choice

_DIGITS = re.compile(rb"[0-9]+")
EDGE = (b"\r", b"\n", b"\r\n", b"\x00", b" ", b"\t", b"\r\n ", b"\r\n\r\n", b"\x7f", b"\x80")


def _flip(src: Source, data: bytearray) -> None:
    if data:
        data[src.integer(0, len(data) - 1)] ^= 1 << src.integer(0, 7)


def _set(src: Source, data: bytearray) -> None:
    if data:
        data[src.integer(0, len(data) - 1)] = choice(src, SPECIAL)


def _position(src: Source, data: bytearray) -> int:
    """Anywhere, or (half the time) at or just after a line end."""
    at = src.integer(0, len(data))
    if src.chance(0.5):
        end = data.find(b"\n", at)
        if end >= 0:
            return max(min(end + src.integer(-1, 1), len(data)), 0)
    return at


def _insert(src: Source, data: bytearray) -> None:
    at = _position(src, data)
    data[at:at] = choice(src, EDGE) if src.chance(0.8) else src.raw(4)


def _delete(src: Source, data: bytearray) -> None:
    if data:
        at = src.integer(0, len(data) - 1)
        del data[at : at + src.integer(1, 8)]


def _truncate(src: Source, data: bytearray) -> None:
    del data[src.integer(0, len(data)) :]


def _duplicate(src: Source, data: bytearray) -> None:
    if data:
        at = src.integer(0, len(data) - 1)
        piece = data[at : at + src.integer(1, 64)]
        data[at:at] = piece * src.integer(1, 3)


def _lines(src: Source, data: bytearray) -> None:
    """Swap two lines, drop one or repeat one."""
    lines = bytes(data).split(b"\r\n")
    if len(lines) < 2:
        return
    i, j = src.integer(0, len(lines) - 1), src.integer(0, len(lines) - 1)
    how = src.integer(0, 2)
    if how == 0:
        lines[i], lines[j] = lines[j], lines[i]
    elif how == 1:
        del lines[i]
    else:
        lines.insert(i, lines[j])
    data[:] = b"\r\n".join(lines)


def _number(src: Source, data: bytearray) -> None:
    """Change a run of digits (a length, a chunk size, a version)."""
    found = _DIGITS.search(data, src.integer(0, len(data)))
    if found is not None:
        at = found.start()
        new = choice(src, (b"0", b"1", b"9", b"00", b"65536", b"4294967296", b"-1", b"1e3"))
        data[at : found.end()] = new


MUTATIONS: tuple[Callable[[Source, bytearray], None], ...] = (
    _flip, _set, _insert, _insert, _insert, _delete, _truncate, _duplicate, _lines, _number,
)


def mutate(src: Source, data: bytes, most: int = 4) -> bytes:
    out = bytearray(data)
    for _ in range(src.integer(1, most)):
        choice(src, MUTATIONS)(src, out)
    return bytes(out)
