"""What a scenario file gets wrong, found before any traffic, in one or two lines.

twincorn's users are coroutines on one event loop, so a scenario that reads
like a locustfile can still be wrong in ways Locust's gevent users are not:

- a task (or on_start, on_stop) written as a plain `def`: awaiting what it
  returns fails at every turn, and the user spins on the error;
- `self.client.get(...)` written as a statement, without `await`: the
  request is made and dropped, never sent (caught here when it is a
  statement of an `async def`; at run time otherwise, see client.py);
- `from locust import ...`: twincorn is not Locust; the names are in
  `twincorn.load` (docs/locust.md maps them one by one);
- and the usual import errors, said as `file:line: the error`, without the
  frames of importlib.

Each check returns the message (None: nothing wrong); scenario.py raises
it as a ScenarioError, which `twincorn load` prints with exit status 2.
"""

from __future__ import annotations

import ast
import inspect
import linecache
import re
import sysconfig
from collections.abc import Iterable
from pathlib import Path
from types import CodeType, TracebackType
from typing import Any

from twincorn.load.users import User

GUIDE = "docs/locust.md"
FIX = "await each request (`await self.client.get(...)`)"
# The client's methods that make a request (client.py's HttpClient).
REQUEST_METHODS = frozenset({"get", "post", "put", "patch", "delete", "head", "options",
                             "request", "websocket"})
# Locust's names that twincorn.load has, under their twincorn name (the rest
# have none: docs/locust.md says what to do instead).
LOCUST_NAMES = {
    "HttpUser": "User",
    "FastHttpUser": "User",
    "User": "User",
    "task": "task",
    "between": "between",
    "constant": "constant",
    "constant_pacing": "constant_pacing",
    "constant_throughput": "constant_throughput",
    "StopUser": "StopUser",
}
HOOKS = ("on_start", "on_stop")
_DEF = re.compile(r"\s*(async\s+)?def\b")
_PACKAGE = Path(__file__).resolve().parent.parent  # twincorn's own files


# -- the source, before it runs ---------------------------------------------------


def syntax_error(shown: str, exc: SyntaxError) -> str:
    """`file:line: SyntaxError: message`, and the line itself."""
    where = f"{shown}:{exc.lineno}" if exc.lineno else shown
    text = (exc.text or "").strip()
    return f"{where}: {type(exc).__name__}: {exc.msg}" + (f"\n    {text}" if text else "")


def locust_import(shown: str, tree: ast.Module) -> str | None:
    """The message for `import locust` / `from locust... import ...`: at
    the first such line, with the names of all of them."""
    lines: list[int] = []
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            if any(_is_locust(alias.name) for alias in node.names):
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and _is_locust(node.module or ""):
                lines.append(node.lineno)
                names += [a.name for a in node.names]
    return _locust_message(shown, min(lines), names) if lines else None


def _is_locust(module: str) -> bool:
    return module == "locust" or module.startswith("locust.")


def _locust_message(shown: str, line: int, names: list[str]) -> str:
    ours = list(dict.fromkeys(LOCUST_NAMES[n] for n in names if n in LOCUST_NAMES))
    missing = list(dict.fromkeys(n for n in names if n not in LOCUST_NAMES))
    first = (
        f"{shown}:{line}: twincorn does not use Locust: write `from twincorn.load import "
        f"{', '.join(ours or ['User', 'task'])}` (User is Locust's HttpUser), make the "
        "tasks `async def` and await each request"
    )
    second = f"{GUIDE} maps each of Locust's names onto twincorn's"
    if missing:
        second += f" (not in twincorn: {', '.join(missing)})"
    return f"{first}\n{second}"


def unawaited_calls(shown: str, tree: ast.Module) -> str | None:
    """The first `self.client.get(...)` written as a statement of an
    `async def`, without await (the request would never be sent)."""
    for name, func in _async_functions(tree, ""):
        for node in _own_nodes(func):
            if (
                isinstance(node, ast.Expr)
                and isinstance(node.value, ast.Call)
                and _is_client_call(node.value.func)
            ):
                call = ast.unparse(node.value.func)
                return (
                    f"{shown}:{node.lineno}: {name} calls {call}(...) without await, "
                    f"so the request is never sent: write `await {call}(...)`"
                )
    return None


def _async_functions(
    node: ast.AST, prefix: str
) -> Iterable[tuple[str, ast.AsyncFunctionDef]]:
    """Every `async def` under `node`, with its qualified name (Visitor.index)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            name = prefix + child.name
            if isinstance(child, ast.AsyncFunctionDef):
                yield name, child
            yield from _async_functions(child, name + ".")
        else:
            yield from _async_functions(child, prefix)


def _own_nodes(func: ast.AsyncFunctionDef) -> Iterable[ast.AST]:
    """The nodes of a function's body, not those of functions inside it."""
    todo: list[ast.AST] = list(func.body)
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            todo.extend(ast.iter_child_nodes(node))


def _is_client_call(func: ast.expr) -> bool:
    """`<something>.client.<request method>`."""
    return (
        isinstance(func, ast.Attribute)
        and func.attr in REQUEST_METHODS
        and isinstance(func.value, ast.Attribute)
        and func.value.attr == "client"
    )


# -- the import ------------------------------------------------------------------


def import_error(shown: str, file: Path, exc: BaseException) -> str:
    """`file:line: Error: message` at the innermost line of the user's own
    code (the scenario, or a module of theirs it imports)."""
    if isinstance(exc, SyntaxError) and exc.filename:  # in a module it imports
        return syntax_error(_shown_path(shown, file, exc.filename), exc)
    where, via = shown, ""
    frame, own = _users_frame(exc.__traceback__, file)
    if frame is not None:
        filename, line = frame
        where = f"{_shown_path(shown, file, filename)}:{line}"
        if own is not None and own != frame:  # in a module the scenario imports
            via = f" (imported at {shown}:{own[1]})"
    return f"{where}: {type(exc).__name__}: {exc}{via}"


def _users_frame(
    tb: TracebackType | None, file: Path
) -> tuple[tuple[str, int] | None, tuple[str, int] | None]:
    """The innermost frame outside importlib, the standard library,
    installed packages and twincorn itself (else the scenario's own), and
    the scenario's own innermost frame."""
    ours = str(file.resolve())
    skip = [str(_PACKAGE)]
    skip += [str(Path(p).resolve()) for key, p in sysconfig.get_paths().items()
             if key in ("stdlib", "platstdlib", "purelib", "platlib")]
    found: tuple[str, int] | None = None
    fallback: tuple[str, int] | None = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        line = tb.tb_lineno
        if not filename.startswith("<"):
            resolved = str(Path(filename).resolve())
            if resolved == ours:
                fallback = (filename, line)
            if resolved == ours or not any(resolved.startswith(s + "/") for s in skip):
                found = (filename, line)
        tb = tb.tb_next
    return found or fallback, fallback


def _shown_path(shown: str, file: Path, filename: str) -> str:
    """The scenario as the user named it; another file from the current
    folder, if it is under it."""
    try:
        path = Path(filename).resolve()
        if path == file.resolve():
            return shown
        return str(path.relative_to(Path.cwd()))
    except (OSError, ValueError):
        return filename


# -- the User classes ------------------------------------------------------------


def coroutine_problems(
    classes: Iterable[type[User]], shown: str = "", file: Path | None = None
) -> str | None:
    """The first task or hook of these classes that is not an `async def`
    (`file`, if given, is named `shown`, as the user typed it)."""
    problems: list[str] = []
    for cls in classes:
        funcs: list[tuple[str, Any]] = [("task", f) for f in cls._task_table[0]]
        funcs += [("hook", getattr(cls, name)) for name in HOOKS
                  if getattr(cls, name) is not getattr(User, name)]
        for kind, func in funcs:
            if not inspect.iscoroutinefunction(func):
                problems.append(_not_async(cls, kind, func, shown, file))
    if not problems:
        return None
    more = len(problems) - 1
    return problems[0] + (f" ({more} more like it)" if more else "")


def _not_async(cls: type[User], kind: str, func: Any, shown: str, file: Path | None) -> str:
    name = getattr(func, "__name__", repr(func))
    filename, line = _location(cls, func)
    where = f"{_shown_path(shown, file, filename) if file else filename}:{line}"
    what = "a plain def" if inspect.isfunction(func) else "not a coroutine function"
    if inspect.isasyncgenfunction(func):
        what = "an async generator (it has yield)"
    role = "its tasks" if kind == "task" else name
    method = name if name.isidentifier() else "name"
    return (
        f"{where}: {cls.__name__}.{name} is {what}, but twincorn runs {role} on an "
        f"event loop: write `async def {method}(self):` and {FIX}"
    )


def _location(cls: type[User], func: Any) -> tuple[str, int | str]:
    """The file and line of a function's def (past its decorators), else of its class."""
    code: CodeType | None = getattr(func, "__code__", None)
    if code is not None:
        return code.co_filename, _def_line(code)
    try:
        return inspect.getsourcefile(cls) or "?", inspect.getsourcelines(cls)[1]
    except (OSError, TypeError):
        return cls.__module__, "?"


def _def_line(code: CodeType) -> int:
    """The `def` line: co_firstlineno is a decorator's line when there is one."""
    for number in range(code.co_firstlineno, code.co_firstlineno + 40):
        text = linecache.getline(code.co_filename, number)
        if not text:
            break
        if _DEF.match(text):
            return number
    return code.co_firstlineno
