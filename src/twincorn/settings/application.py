"""Where the settings come from, and the application: what to load and how to call it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from twincorn.config_file import DEFAULT_FILE
from twincorn.settings.declare import setting


@dataclass(frozen=True)
class ApplicationSettings:
    """Where the settings come from, and the application: what to load and how to call it."""

    __slots__ = ()

    # -- where the settings come from
    config: str | None = setting(
        None,
        "Python config file: its top-level names are settings and server hooks "
        "(gunicorn's convention).",
        "-c",
        section="configuration",
        metavar="FILE",
        shown=f"./{DEFAULT_FILE} if it exists",
    )
    # -- the application
    app: str | None = setting(
        None,
        "The application, as module:attribute (e.g. examples.asgi.app:app).",
        section="application",
        positional=True,
        metavar="APP",
    )
    factory: bool = setting(
        False,
        "Treat APP as a factory: call it with no arguments to get the application.",
        section="application",
    )
    app_dir: str = setting(
        ".",
        "Folder put first on sys.path before APP is imported.",
        section="application",
        metavar="DIR",
    )
    interface: Literal["auto", "asgi", "wsgi"] = setting(
        "auto",
        "The application's interface; auto detects it from the callable's signature.",
        section="application",
    )
    lifespan: Literal["auto", "on", "off"] = setting(
        "auto",
        "ASGI lifespan: on requires it, off skips it, auto uses it if the app supports it.",
        section="application",
    )
    root_path: str = setting(
        "",
        "Path the application is mounted at (ASGI root_path, WSGI SCRIPT_NAME).",
        section="application",
        metavar="PATH",
    )
    threads: int = setting(
        1,
        "WSGI calls at once per worker: 1 calls the app inline on the event loop, "
        "one request at a time (gunicorn's sync worker); N>1 uses a thread pool.",
        section="application",
        metavar="N",
    )
