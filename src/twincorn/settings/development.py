"""Development: reloading on code changes."""

from __future__ import annotations

from dataclasses import dataclass

from twincorn.settings.declare import setting


@dataclass(frozen=True)
class DevelopmentSettings:
    """Development: reloading on code changes."""

    __slots__ = ()

    # -- development
    reload: bool = setting(
        False,
        "Restart the workers when a watched file changes (needs the watchfiles "
        "package: pip install 'twincorn[reload]', or pip install -e '.[reload]' in a "
        "checkout). For development.",
        section="development",
    )
    reload_dir: tuple[str, ...] = setting(
        [],
        "Folder to watch with --reload; repeat for more.",
        section="development",
        metavar="DIR",
        shown="--app-dir",
    )
    reload_include: tuple[str, ...] = setting(
        [],
        "Glob pattern of file names to watch besides *.py; repeat for more.",
        section="development",
        metavar="GLOB",
    )
    reload_exclude: tuple[str, ...] = setting(
        [],
        "Glob pattern of file or folder names not to watch, besides hidden ones, "
        "*.py[cod], *~ and __pycache__; repeat for more.",
        section="development",
        metavar="GLOB",
    )
