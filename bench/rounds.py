"""Rounds, ratios and tables: how the benchmarks order their runs and sum them up.

On a shared machine a neighbour's burst of work slows whatever runs at that
moment. So the servers compared take turns, round after round, in an order
rotated each round (A B C, then B C A, then C A B): none always runs first,
or always right after the same neighbour. A comparison is then made round by
round (twincorn's figure over a peer's, both measured minutes apart at
most) and the table shows the median of those per-round ratios with their
range: a slow spell moves one ratio rather than one server's median.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def say(text: str) -> None:
    """A line of progress, on stderr (the table goes to stdout)."""
    print(text, file=sys.stderr, flush=True)


def rotated(items: Sequence[T], turn: int) -> list[T]:
    """The items, the first `turn` of them (modulo their count) moved to the end."""
    if not items:
        return []
    turn %= len(items)
    return [*items[turn:], *items[:turn]]


def rounds(
    count: int,
    groups: Sequence[Sequence[T]],
    label: Callable[[T], str],
    runs: Callable[[T], bool] = lambda item: True,
) -> Iterator[tuple[int, T]]:
    """(round, item) for `count` rounds (numbered from 1): in each round the
    groups one after the other, each group's items that still `runs` (asked
    as the group's turn comes) in an order rotated round by round. Says
    "round N/COUNT: LABEL ..." before each."""
    for turn in range(count):
        for group in groups:
            for item in rotated([item for item in group if runs(item)], turn):
                say(f"round {turn + 1}/{count}: {label(item)} ...")
                yield turn + 1, item


def ratios(ours: Sequence[float], theirs: Sequence[float]) -> list[float]:
    """Round by round, our figure over theirs (rounds where theirs is 0, or
    either is missing, left out)."""
    return [a / b for a, b in zip(ours, theirs, strict=False) if b]


def value_range(values: Sequence[float], digits: int = 2, sep: str = "-") -> str:
    """"LOW-HIGH" of two values or more, else "-"."""
    if len(values) < 2:
        return "-"
    return f"{min(values):.{digits}f}{sep}{max(values):.{digits}f}"


def median_range(values: Sequence[float], digits: int = 2, sep: str = "..") -> str:
    """"MEDIAN (LOW..HIGH)", or the median alone of one value."""
    middle = f"{statistics.median(values):.{digits}f}"
    if len(values) < 2:
        return middle
    return f"{middle} ({value_range(values, digits, sep)})"


def render(
    columns: Sequence[str],
    table: Sequence[Sequence[str]],
    markdown: bool,
    numeric: Collection[str] = (),
) -> str:
    """The table as markdown, or as text in columns padded to line up; the
    `numeric` columns aligned to the right."""
    right = [name in numeric for name in columns]
    if markdown:
        rule = "|" + "".join("---:|" if r else "---|" for r in right)
        lines = ["| " + " | ".join(columns) + " |", rule]
        return "\n".join(lines + ["| " + " | ".join(line) + " |" for line in table])
    widths = [max(len(line[i]) for line in [columns, *table]) for i in range(len(columns))]
    return "\n".join(
        "  ".join(
            text.rjust(width) if r else text.ljust(width)
            for text, width, r in zip(line, widths, right, strict=True)
        ).rstrip()
        for line in [columns, *table]
    )
