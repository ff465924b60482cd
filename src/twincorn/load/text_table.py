"""Tables in plain text for the terminal, laid out to fit a given width.

Each column is as wide as its widest cell (or its title), so short figures
make a narrow table. When the table is still wider than the width it must
fit, the flexible columns (the request names) give up the difference: a
name too long for its column keeps its beginning and its end, with an
ellipsis in the middle (`/api/v1/users/…/orders/42`), since both ends of a
URL path tell paths apart. Nothing here asks the terminal anything: the
width is an argument (terminal.py asks `shutil.get_terminal_size`), so the
tests lay tables out at any width without one.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass

#: Tables fit in this many columns unless the terminal is wider.
DEFAULT_WIDTH = 100
#: A flexible column is never shortened below this ("Aggregated" fits).
MIN_FLEXIBLE = 10
ELLIPSIS = "…"

#: A row that is drawn as a horizontal rule.
RULE = None
Rows = Sequence[Sequence[str] | None]


@dataclass(frozen=True)
class TextColumn:
    title: str
    left: bool = False  # aligned to the left (text), not to the right (figures)
    flexible: bool = False  # shortened in the middle when the table is too wide
    bar: bool = False  # a "|" before this column, as Locust separates its groups


def table_width(columns: int | None = None) -> int:
    """The width tables are laid out in: DEFAULT_WIDTH, or the terminal's
    (given, or asked of stdout; $COLUMNS first) when it is wider."""
    if columns is None:
        columns = shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    return max(DEFAULT_WIDTH, columns)


def shorten_middle(text: str, width: int, ellipsis: str = ELLIPSIS) -> str:
    """`text` in at most `width` characters: its two ends around `ellipsis`."""
    if len(text) <= width:
        return text
    keep = width - len(ellipsis)
    if keep < 0:
        return text[:width]
    head = (keep + 1) // 2
    return text[:head] + ellipsis + text[len(text) - (keep - head):]


def _gap(column: TextColumn, first: bool) -> str:
    if first:
        return ""
    return " | " if column.bar else " "


def column_widths(columns: Sequence[TextColumn], rows: Rows, width: int) -> list[int]:
    """Each column's width: its widest cell, the flexible ones narrowed
    (down to MIN_FLEXIBLE) until the table fits in `width`, if it can."""
    widths = [
        max([len(c.title), *(len(row[i]) for row in rows if row is not None)])
        for i, c in enumerate(columns)
    ]
    total = sum(widths) + sum(len(_gap(c, i == 0)) for i, c in enumerate(columns))
    excess = total - width
    for i, column in enumerate(columns):
        if excess <= 0:
            break
        if column.flexible:
            floor = max(MIN_FLEXIBLE, len(column.title))
            cut = min(excess, max(0, widths[i] - floor))
            widths[i] -= cut
            excess -= cut
    return widths


def layout(
    columns: Sequence[TextColumn], rows: Rows, width: int = DEFAULT_WIDTH,
    ellipsis: str = ELLIPSIS,
) -> list[str]:
    """The lines of a table: the titles, a rule, then the rows (RULE rows
    are rules too). Lines carry no trailing spaces."""
    widths = column_widths(columns, rows, width)

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, (column, cell) in enumerate(zip(columns, cells, strict=True)):
            w = widths[i]
            if column.flexible:
                cell = shorten_middle(cell, w, ellipsis)
            out.append(_gap(column, i == 0) + (f"{cell:<{w}}" if column.left else f"{cell:>{w}}"))
        return "".join(out).rstrip()

    head = line([c.title for c in columns])
    rule = "-" * sum(len(_gap(c, i == 0)) + widths[i] for i, c in enumerate(columns))
    return [head, rule, *(rule if row is None else line(row) for row in rows)]
