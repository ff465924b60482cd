"""Loading the application from "module:attribute" and telling its interface."""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twincorn.config import Config


class AppLoadError(Exception):
    """The application could not be loaded.

    `str(error)` is one line for the user; `details` is the application's
    own traceback where there is one (an import that raised).
    """

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details

    def report(self) -> None:
        """Log the one line, then write the application's traceback."""
        logging.getLogger("twincorn.error").error("cannot load the application: %s", self)
        if self.details:
            sys.stderr.write(self.details)
            sys.stderr.flush()


def load_app(spec: str, *, app_dir: str = ".", factory: bool = False) -> Callable[..., Any]:
    """Import `spec` ("pkg.mod:attr", "mod:attr.sub" or "mod:make_app()")."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise AppLoadError(f"application {spec!r} must be given as module:attribute")
    call = attr.endswith("()")
    if call:
        attr = attr[:-2]
    if app_dir and app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AppLoadError(
                f"module {exc.name!r} not found (from {spec!r}; looked in {app_dir!r} "
                "and sys.path; --app-dir sets the folder)"
            ) from None
        raise AppLoadError(f"importing {module_name!r} raised {exc!r}", _trace()) from None
    except BaseException as exc:
        raise AppLoadError(f"importing {module_name!r} raised {exc!r}", _trace()) from None
    app: Any = module
    for part in attr.split("."):
        try:
            app = getattr(app, part)
        except AttributeError:
            raise AppLoadError(f"module {module_name!r} has no attribute {attr!r}") from None
    if call or factory:
        if not callable(app):
            raise AppLoadError(f"factory {spec!r} is not callable")
        try:
            app = app()
        except BaseException as exc:
            raise AppLoadError(f"factory {spec!r} raised {exc!r}", _trace()) from None
    if not callable(app):
        raise AppLoadError(f"{spec!r} is not callable (it is a {type(app).__name__})")
    return app  # type: ignore[no-any-return]


def _trace() -> str:
    return traceback.format_exc()


def _required_positional(func: Callable[..., Any]) -> int | None:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    count = 0
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            return None  # *args: the signature says nothing
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def detect_interface(app: Callable[..., Any], requested: str = "auto") -> str:
    """"asgi" or "wsgi", or AppLoadError when the signature does not say.

    An `async def` callable of three arguments (or an object whose
    `__call__` is one) is ASGI; a plain callable of two arguments is WSGI.
    """
    if requested in ("asgi", "wsgi"):
        return requested
    target: Any = app
    if not (inspect.isfunction(app) or inspect.ismethod(app)) and not inspect.isclass(app):
        target = getattr(app, "__call__", app)  # noqa: B004 - an instance's method
    is_async = inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(app)
    count = _required_positional(target)
    if is_async and count == 3:
        return "asgi"
    if not is_async and count == 2:
        return "wsgi"
    kind = "async " if is_async else ""
    shown = "an unknown number of" if count is None else str(count)
    raise AppLoadError(
        f"cannot tell whether the application is ASGI or WSGI: it is a {kind}callable "
        f"of {shown} positional arguments; pass --interface asgi or --interface wsgi"
    )


def app_label(config: Config, app: Callable[..., Any] | None) -> str:
    """How the logs and process titles name the application."""
    return config.app or str(getattr(app, "__qualname__", repr(app)))


def load(config: Config, app: Callable[..., Any] | None = None) -> tuple[Callable[..., Any], str]:
    """The application the settings name (or `app` itself) and its interface."""
    if app is None:
        if not config.app:
            raise AppLoadError("no application given (twincorn serve module:attribute)")
        app = load_app(config.app, app_dir=config.app_dir, factory=config.factory)
    return app, detect_interface(app, config.interface)
