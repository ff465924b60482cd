"""twincorn: one server for WSGI and ASGI apps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__version__ = "0.1.0"


def run(app: str | Callable[..., Any], **settings: Any) -> None:
    """Serve `app` (a callable or "module:attribute") until stopped.

    Takes the same settings as `twincorn serve`, by their Python names
    (`host`, `port`, `threads`, `interface`, ...). Raises SystemExit with a
    non-zero status if the server cannot start.
    """
    from twincorn import config
    from twincorn.main import serve

    if isinstance(app, str):
        settings["app"] = app
        status = serve(config.build(**settings), rebuild=lambda: config.build(**settings))
    else:
        status = serve(config.build(**settings), app, lambda: config.build(**settings))
    if status:
        raise SystemExit(status)


__all__ = ["__version__", "run"]
