"""The terminal's final tables laid out in a given width: text_table.py fed
cells, and terminal.final_report() fed a Results built by hand (no
terminal, no server)."""

from __future__ import annotations

import io

import pytest

from twincorn.load.results import Results
from twincorn.load.stats import ErrorCount, Tally
from twincorn.load.terminal import ellipsis_for, final_report
from twincorn.load.text_table import (
    DEFAULT_WIDTH,
    MIN_FLEXIBLE,
    RULE,
    TextColumn,
    layout,
    shorten_middle,
    table_width,
)

LONG = "/api/v1/customers/{customer_id}/orders/{order_id}/line-items/{item_id}/refunds"


@pytest.mark.parametrize(
    ("text", "width", "expected"),
    [
        ("/short", 10, "/short"),
        ("/abcdefghij", 11, "/abcdefghij"),
        ("/abcdefghij", 10, "/abcd…ghij"),
        ("/abcdefghij", 5, "/a…ij"),
        ("/abcdefghij", 2, "/…"),
        ("/abcdefghij", 1, "…"),
    ],
)
def test_shorten_middle(text: str, width: int, expected: str) -> None:
    assert shorten_middle(text, width) == expected
    assert len(shorten_middle(text, width)) <= width


def test_shorten_middle_with_three_dots() -> None:
    assert shorten_middle("/abcdefghij", 9, "...") == "/ab...hij"
    assert shorten_middle("/abcdefghij", 2, "...") == "/a"


COLUMNS = (
    TextColumn("Type", left=True),
    TextColumn("Name", left=True, flexible=True),
    TextColumn("# reqs"),
    TextColumn("Avg", bar=True),
)


def test_columns_are_as_wide_as_their_cells() -> None:
    lines = layout(COLUMNS, [["GET", "/", "12", "1001"], RULE, ["", "Aggregated", "12", "3.25"]])
    assert lines == [
        "Type Name       # reqs |  Avg",
        "-----------------------------",
        "GET  /              12 | 1001",
        "-----------------------------",
        "     Aggregated     12 | 3.25",
    ]


def test_a_long_name_is_shortened_in_the_middle_to_fit() -> None:
    rows = [["POST", LONG, "5", "13860"]]
    wide = layout(COLUMNS, rows, width=200)
    assert LONG in wide[2] and len(wide[2]) == 4 + 1 + len(LONG) + 1 + 6 + 3 + 5
    narrow = layout(COLUMNS, rows, width=40)
    assert all(len(line) <= 40 for line in narrow)
    assert len(narrow[1]) == 40  # the rule: as wide as the table
    name = narrow[2].split()[1]
    assert name == "/api/v1/cu…}/refunds" and len(name) == 40 - 4 - 1 - 1 - 6 - 3 - 5


def test_a_table_that_cannot_fit_keeps_names_readable() -> None:
    lines = layout(COLUMNS, [["POST", LONG, "5", "13860"]], width=10)
    assert len(lines[2].split()[1]) == MIN_FLEXIBLE  # wider than asked, not unreadable


def test_the_width_is_100_unless_the_terminal_is_wider() -> None:
    assert table_width(80) == DEFAULT_WIDTH == 100
    assert table_width(132) == 132


def test_the_ellipsis_falls_back_where_the_output_cannot_encode_it() -> None:
    ascii_out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    assert ellipsis_for(ascii_out) == "..."
    assert ellipsis_for(io.TextIOWrapper(io.BytesIO(), encoding="utf-8")) == "…"


def results(names: list[str]) -> Results:
    tallies = []
    total = Tally("", "Aggregated")
    for name in names:
        tally = Tally("GET", name)
        for us in (999, 2_500, 40_000, 1_000_000, 13_860_000):
            tally.hist.record(us)
        tally.failures = 1
        tallies.append(tally)
        total.merge(tally)
    errors = [ErrorCount("GET", names[-1], "HTTP 500 Internal Server Error " * 5, "http", 1)]
    return Results("closed", 10.0, total, tallies, errors=errors, stopped_by="run-time")


def _cells_under_titles(lines: list[str], title_line: int, row_line: int) -> dict[str, str]:
    """The cell under each right-aligned title, found by the title's right edge."""
    head, row = lines[title_line], lines[row_line]
    out = {}
    for title in ("50%", "95%", "99.99%", "100%", "# reqs"):
        end = head.index(title) + len(title)
        start = row.rfind(" ", 0, end) + 1
        out[title] = row[start:end]
    return out


@pytest.mark.parametrize("width", [100, 120, 160])
def test_final_report_fits_the_width(width: int) -> None:
    text = final_report(results(["/", LONG]), width=width, ellipsis="…")
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    tables = text[:text.index("Error report")]
    assert (LONG in tables) == (width >= 160)  # the name fits whole when there is room
    assert ("…" in tables) == (width < 160)
    # The whole message is shown in the error report, wrapped rather than cut.
    report = text[text.index("Error report"):]
    assert " ".join(report.split()).count("HTTP 500 Internal Server Error") == 5
    # The figures stay under their titles.
    start = lines.index("Response time percentiles (ms)")
    total = next(i for i in range(start, len(lines)) if "Aggregated" in lines[i])
    assert _cells_under_titles(lines, start + 1, total) == {
        "50%": "40.1", "95%": "13860", "99.99%": "13860", "100%": "13860", "# reqs": "10"
    }


def test_final_report_of_short_names_is_narrow() -> None:
    text = final_report(results(["/", "/items"]), width=200)
    assert max(len(line) for line in text.splitlines()) < 100  # the error report too
    assert "| req/s failures/s" in text.splitlines()[0]
