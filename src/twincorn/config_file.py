"""Reading a Python configuration file (`-c twincorn.conf.py`).

As in gunicorn, the file is plain Python, run once: each top-level name it
defines is a setting (`workers = 4`, `bind = ["unix:/run/app.sock"]`) or a
server hook (`def post_fork(arbiter, worker): ...`). Modules it imports and
names that begin with an underscore are its own business and ignored, and
so are functions and classes it imports (`from os import cpu_count`); any
other name must be a setting, so that a typo (`worker = 4`) is an error
rather than a silently ignored line. config.py checks the names.
"""

from __future__ import annotations

import os
import runpy
import traceback
import types
from typing import Any

#: Read when present and no other file is named (gunicorn reads gunicorn.conf.py).
DEFAULT_FILE = "twincorn.conf.py"
_RUN_NAME = "__twincorn_config__"


class ConfigFileError(ValueError):
    """The file is missing or does not run."""


def read_config_file(path: str) -> tuple[dict[str, Any], set[str]]:
    """The names the file defines, with their values, and which of them
    are functions or classes imported from elsewhere (ignored if unknown)."""
    if not os.path.isfile(path):
        raise ConfigFileError(f"config file {path!r} not found")
    try:
        namespace = runpy.run_path(path, run_name=_RUN_NAME)
    except Exception as exc:
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" (line {last[0].lineno})" if last and last[0].filename == path else ""
        if isinstance(exc, SyntaxError):
            where = f" (line {exc.lineno})"
        raise ConfigFileError(
            f"config file {path!r} failed{where}: {type(exc).__name__}: {exc}"
        ) from None
    names = {
        name: value
        for name, value in namespace.items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    imported = {
        name for name, value in names.items()
        if callable(value) and getattr(value, "__module__", _RUN_NAME) != _RUN_NAME
    }
    return names, imported
