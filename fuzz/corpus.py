"""Seeds: the HTTP/1.x request corpus of tests/data/http1-requests/."""

from __future__ import annotations

import functools
from pathlib import Path

from fuzz.mutate import mutate
from fuzz.source import Source, choice

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "http1-requests"


@functools.cache
def seeds() -> tuple[bytes, ...]:
    """Every case's bytes, valid and invalid, in a fixed order."""
    return tuple(p.read_bytes() for kind in ("valid", "invalid")
                 for p in sorted((CORPUS / kind).glob("*.http")))


def corpus_input(src: Source) -> bytes:
    """A corpus case, mutated (now and then spliced with another first)."""
    cases = seeds()
    data = choice(src, cases)
    if src.chance(0.1):
        other = choice(src, cases)
        data = data[: src.integer(0, len(data))] + other[src.integer(0, len(other)) :]
    return mutate(src, data) if src.chance(0.9) else data
