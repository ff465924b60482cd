"""How a setting is declared: `setting()` gives a `Config` field its default
and the metadata every front end reads (help, flags, section, unit)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import field
from typing import Any, Literal


def setting(
    default: Any,
    help: str,
    *flags: str,
    section: str = "server",
    metavar: str | None = None,
    positional: bool = False,
    file_only: bool = False,
    unit: Literal["size", "duration"] | None = None,
    shown: str = "",
    parse: Callable[[object], Any] | None = None,
) -> Any:
    """Declare one setting (used as the default of a Config field).

    `file_only` settings (the server hooks: functions) have no flag and no
    environment variable; a config file or `twincorn.run` gives them.
    A `unit` setting reads and shows sizes (64k, 100m) or durations (30s,
    2m); `shown` says what an empty default (None, no value) stands for,
    in --help and docs/settings.md (or words for one that reads badly
    alone). `parse` reads a value given as text (or a number, from a config
    file) that the type alone cannot (other spellings of a choice). The
    help text itself names no default: the declaration is its one source.
    """
    meta = {
        "help": help,
        "flags": flags,
        "section": section,
        "metavar": metavar,
        "positional": positional,
        "file_only": file_only,
        "unit": unit,
        "shown": shown,
        "parse": parse,
    }
    if isinstance(default, list | dict):
        frozen = tuple(default) if isinstance(default, list) else default
        return field(default=frozen, metadata=meta)
    return field(default=default, metadata=meta)


Hook = Callable[..., Any]


def hook(help: str) -> Mapping[str, Any]:
    """The metadata of a server hook's field: declared by setting() like every
    other, with no flag and no environment variable. (The fields themselves
    are written `field(default=None, metadata=hook(...))`, which linters know
    for a dataclass field.)"""
    declared: dataclasses.Field[Any] = setting(None, help, section="server hooks",
                                               file_only=True)
    return declared.metadata

