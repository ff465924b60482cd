"""The command-line options the benchmark scripts share.

Each script's --help shows its whole docstring (what it measures, how to
read its table); lists of names are comma-separated; --json FILE saves the
results, --markdown prints the table as markdown.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path


def parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser whose --help starts with `doc` (a script's docstring) as written."""
    return argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def names(choices: Sequence[str]) -> Callable[[str], list[str]]:
    """An option type: comma-separated names, each among `choices`."""

    def parse(text: str) -> list[str]:
        found = [name.strip() for name in text.split(",") if name.strip()]
        if not found or any(name not in choices for name in found):
            raise argparse.ArgumentTypeError(f"choose among {', '.join(choices)}")
        return found

    return parse


def add_output(
    parser: argparse.ArgumentParser, json: str = "", markdown: str = "print a markdown table"
) -> None:
    """--json FILE (if `json`, its help) and --markdown."""
    if json:
        parser.add_argument("--json", type=Path, metavar="FILE", help=json)
    parser.add_argument("--markdown", action="store_true", help=markdown)
