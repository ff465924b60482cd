"""What the users do: a scenario file's User classes, or GET one URL.

`twincorn load URL` needs no file: every user sends one request (GET by
default) to URL, with no think time, like wrk. That scenario is `builtin`,
and the runner drives it with the lean loop of fastpath.py (no task, no
coroutine per request). `twincorn load -f scenario.py` imports the file and
runs its User classes (those defined in it, or imported into it, that are
not abstract), once scenario_checks.py has found nothing wrong with it.

A scenario is described by a `spec` (a small picklable tuple) so that load
processes started with `--processes` can rebuild it by themselves.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from twincorn.load import scenario_checks as checks
from twincorn.load.plan import DEFAULT_MESSAGE_SIZE
from twincorn.load.users import User, task

if TYPE_CHECKING:
    from twincorn.load.ws_echo import WsEcho

Spec = tuple[str, tuple[str, ...]]


class ScenarioError(Exception):
    """A scenario file that cannot be loaded, or has no User class."""


@dataclass(frozen=True)
class Builtin:
    """The request every user of the no-file scenario sends."""

    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None


@dataclass
class Scenario:
    user_classes: list[type[User]]
    spec: Spec
    builtin: Builtin | None = None
    ws_echo: WsEcho | None = None  # a ws:// URL's echo (ws_echo.py)
    description: str = ""
    module: ModuleType | None = field(default=None, repr=False)


def from_file(path: str) -> Scenario:
    """The User classes of a scenario file, checked (scenario_checks.py)
    before any of them runs."""
    file = Path(path)
    if not file.is_file():
        raise ScenarioError(f"scenario file not found: {path}")
    try:
        source = importlib.util.decode_source(file.read_bytes())
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        raise ScenarioError(checks.syntax_error(path, exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read {path}: {exc}") from None
    problem = checks.locust_import(path, tree) or checks.unawaited_calls(path, tree)
    if problem:
        raise ScenarioError(problem)
    module = _import(path, file)
    classes = [
        value
        for value in vars(module).values()
        if inspect.isclass(value) and issubclass(value, User) and not value.abstract
    ]
    if not classes:
        raise ScenarioError(f"no User class in {path} (subclass twincorn.load.User)")
    problem = checks.coroutine_problems(classes, path, file)
    if problem:
        raise ScenarioError(problem)
    return Scenario(
        classes, ("file", (str(file.resolve()),)), description=path, module=module
    )


def _import(path: str, file: Path) -> ModuleType:
    module_name = f"twincorn_scenario_{file.stem}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise ScenarioError(f"cannot import {path} (is it a .py file?)")
    module = importlib.util.module_from_spec(spec)
    folder = str(file.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # the file may import its neighbours
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise ScenarioError(checks.import_error(path, file, exc)) from None
    return module


def from_classes(classes: list[type[User]]) -> Scenario:
    """A scenario of given User classes (from Python: run(user_classes=...))."""
    if not classes:
        raise ScenarioError("user_classes is empty")
    for cls in classes:
        if not (inspect.isclass(cls) and issubclass(cls, User)) or cls.abstract:
            raise ScenarioError(f"{cls!r} is not a (non-abstract) User class")
    problem = checks.coroutine_problems(classes)
    if problem:
        raise ScenarioError(problem)
    names = tuple(f"{c.__module__}:{c.__qualname__}" for c in classes)
    return Scenario(list(classes), ("classes", names), description=", ".join(names))


def from_url(
    url: str,
    method: str = "GET",
    headers: tuple[str, ...] = (),
    body: str | None = None,
    message_size: int = DEFAULT_MESSAGE_SIZE,
    message_text: str | None = None,
) -> Scenario:
    """The no-file scenario: every user sends the same request to `url`
    (for a ws:// or wss:// URL, makes echo round trips: ws_echo.py)."""
    if url.split("://", 1)[0].lower() in ("ws", "wss"):
        from twincorn.load.ws_echo import echo_scenario

        return echo_scenario(url, message_size, message_text, headers)
    pairs = tuple(
        (name.strip(), value.strip())
        for name, _, value in (line.partition(":") for line in headers)
    )
    builtin = Builtin(url, method.upper(), pairs, body.encode() if body is not None else None)
    return Scenario(
        [_builtin_user(builtin)],
        ("url", (url, method, *headers, "\0body", body or "")),
        builtin=builtin,
        description=f"{builtin.method} {url}",
    )


def _builtin_user(builtin: Builtin) -> type[User]:
    """The same scenario as a User class (for the general path, HEAD say)."""
    headers = dict(builtin.headers)
    body = builtin.body

    class URLUser(User):
        host = builtin.url

        @task
        async def request(self) -> None:
            await self.client.request(
                builtin.method, builtin.url, headers=headers, content=body
            )

    return URLUser


def from_spec(spec: Spec) -> Scenario:
    """Rebuild a scenario from its spec (in another process)."""
    kind, args = spec
    if kind == "file":
        return from_file(args[0])
    if kind == "url":
        cut = args.index("\0body")
        url, method, *headers = args[:cut]
        body = args[cut + 1] or None
        return from_url(url, method, tuple(headers), body)
    if kind == "ws":
        from twincorn.load.ws_echo import from_spec_args

        return from_spec_args(args)
    if kind == "classes":
        classes: list[Any] = []
        for name in args:
            module_name, _, qualname = name.partition(":")
            if "<locals>" in qualname:
                raise ScenarioError(
                    f"{name} is defined inside a function: load processes cannot "
                    "import it (define User classes at module level for --processes)"
                )
            obj: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                obj = getattr(obj, part)
            classes.append(obj)
        return from_classes(classes)
    raise ScenarioError(f"unknown scenario spec {spec!r}")
