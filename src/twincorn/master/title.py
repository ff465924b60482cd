"""Process titles (`twincorn: master [app]`), as ps and top show them.

Uses the setproctitle package when it is installed (the `titles` extra);
without it the titles stay as they are and nothing else changes.
"""

from __future__ import annotations

import importlib


def set_title(text: str) -> None:
    try:
        module = importlib.import_module("setproctitle")
    except ImportError:
        return
    module.setproctitle(f"twincorn: {text}")
