"""Loading the application from "module:attribute" and telling its interface."""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from twincorn.app_source import SourceProblem, look

if TYPE_CHECKING:
    from twincorn.config import Config


class AppLoadError(Exception):
    """The application could not be loaded.

    `str(error)` is one line for the user; `details` is the application's
    own traceback where there is one (an import that raised), or the line
    of a SyntaxError with its caret. `status` is the exit status: 1, or 2
    when APP itself is missing or malformed (a command-line mistake).
    """

    status = 1

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details

    def report(self) -> None:
        """Log the one line, then write the application's traceback."""
        logging.getLogger("twincorn.error").error("cannot load the application: %s", self)
        if self.details:
            sys.stderr.write(self.details)
            sys.stderr.flush()


class AppSpecError(AppLoadError):
    """APP is missing or not of the form module:attribute."""

    status = 2


class AppSpec(NamedTuple):
    module: str
    attribute: str  # dotted: "obj.app"
    call: bool  # "make_app()": a factory


def parse_spec(spec: str | None) -> AppSpec:
    """"pkg.mod:attr", "mod:attr.sub" or "mod:make_app()", or AppSpecError."""
    if not spec:
        raise AppSpecError("no application given: twincorn serve MODULE:ATTRIBUTE, "
                           "e.g. twincorn serve examples.wsgi.app:app")
    module, sep, attr = spec.partition(":")
    if module.endswith(".py") or "/" in module or os.sep in module:
        dotted = module.removesuffix(".py").replace(os.sep, ".").replace("/", ".").strip(".")
        raise AppSpecError(f"{spec!r} names a file: give the module and the attribute, "
                           f"e.g. {dotted}:{attr or 'app'} (run from the folder above it, "
                           "or set --app-dir)")
    if not sep or not module or not attr:
        example = f"{module or 'module'}:{attr or 'app'}"
        raise AppSpecError(f"application {spec!r} must be given as module:attribute, "
                           f"e.g. {example}")
    call = attr.endswith("()")
    return AppSpec(module, attr[:-2] if call else attr, call)


def check(config: Config, *, source: bool = True) -> None:
    """The master's look before it binds (app_source.py): APP is well formed,
    its module is found and, with `source`, compiles and defines the
    attribute. Runs none of the application's code; AppLoadError if not."""
    spec = parse_spec(config.app)
    try:
        look(spec.module, spec.attribute.split(".")[0], config.app_dir, source=source)
    except SourceProblem as exc:
        raise AppLoadError(str(exc), exc.details) from None


def load_app(spec: str | None, *, app_dir: str = ".", factory: bool = False) -> Callable[..., Any]:
    """Import `spec` ("pkg.mod:attr", "mod:attr.sub" or "mod:make_app()")."""
    module_name, attr, call = parse_spec(spec)
    if app_dir and app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AppLoadError(_missing(module_name, app_dir)) from None
        raise AppLoadError(f"importing {module_name!r} raised {exc!r}", _trace(exc)) from None
    except SyntaxError as exc:
        where = f"{exc.filename}, line {exc.lineno}" if exc.lineno else str(exc.filename)
        raise AppLoadError(f"SyntaxError in {where}: {exc.msg}", _trace(exc)) from None
    except BaseException as exc:
        raise AppLoadError(f"importing {module_name!r} raised {exc!r}", _trace(exc)) from None
    app: Any = module
    for part in attr.split("."):
        try:
            app = getattr(app, part)
        except AttributeError:
            public = [n for n in dir(app) if not n.startswith("_")]
            close = difflib.get_close_matches(part, public, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise AppLoadError(f"module {module_name!r} has no attribute {attr!r}{hint}") from None
    if call or factory:
        if not callable(app):
            raise AppLoadError(f"factory {spec!r} is not callable")
        try:
            app = app()
        except BaseException as exc:
            raise AppLoadError(f"factory {spec!r} raised {exc!r}", _trace(exc)) from None
    if not callable(app):
        raise AppLoadError(f"{spec!r} is not callable (it is {_a(type(app).__name__)})")
    return app  # type: ignore[no-any-return]


def _a(noun: str) -> str:
    """"an int", "a list": the article, by the first letter's sound."""
    return f"{'an' if noun[:1].lower() in 'aeio' else 'a'} {noun}"


def _missing(module: str, app_dir: str) -> str:
    try:
        look(module, "", app_dir, source=False)
    except SourceProblem as exc:
        return str(exc)
    return f"module {module!r} not found (looked in {app_dir!r} and sys.path)"


def _trace(exc: BaseException) -> str:
    """The application's traceback, without the frames of importlib and of
    this module: they are the same for every import and hide the culprit."""
    tb = exc.__traceback__
    ours = {os.path.normcase(__file__), os.path.normcase(importlib.__file__ or "")}
    while tb is not None and (
        tb.tb_frame.f_code.co_filename.startswith("<frozen importlib")
        or os.path.normcase(tb.tb_frame.f_code.co_filename) in ours
    ):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


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
    kind = "an async" if is_async else "a"
    shown = ("an unknown number of positional arguments" if count is None else
             f"{count} positional argument{'' if count == 1 else 's'}")
    raise AppLoadError(
        f"cannot tell whether the application is ASGI or WSGI: it is {kind} callable "
        f"of {shown}; pass --interface asgi or --interface wsgi"
    )


def app_label(config: Config, app: Callable[..., Any] | None) -> str:
    """How the logs and process titles name the application."""
    return config.app or str(getattr(app, "__qualname__", repr(app)))


def prepare(config: Config, app: Callable[..., Any] | None = None) -> Callable[..., Any] | None:
    """What the master does with the application before it binds: imports
    it with --preload (or tells the interface of a callable it was given),
    otherwise only looks at its source (`check`; with --reload, only that
    its module is found: a mistake in the code is the reloader's to wait
    out). Returns the application where it was loaded; AppLoadError if not."""
    if config.preload or app is not None:
        return load(config, app)[0]
    check(config, source=not config.reload)
    return None


def load(config: Config, app: Callable[..., Any] | None = None) -> tuple[Callable[..., Any], str]:
    """The application the settings name (or `app` itself) and its interface."""
    if app is None:
        app = load_app(config.app, app_dir=config.app_dir, factory=config.factory)
    return app, detect_interface(app, config.interface)
