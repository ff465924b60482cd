"""Looking at an application's module without running it.

The master never imports the application (unless --preload): a worker
does, after the sockets are bound and the worker forked. So that the
common mistakes still end the command before anything is bound, the
master looks first, running none of the application's code:

1. it finds the module the way `import` would, asking the finders on
   sys.meta_path for each dotted part in turn, but without executing the
   packages' `__init__` on the way (importlib.util.find_spec would);
2. it compiles the module's source, so that a SyntaxError is reported
   with its file and line;
3. it reads which names the module binds at its top level (assignments,
   `def`, `class`, imports) and looks for the attribute among them.

Where the source cannot say (a star import, a module `__getattr__`,
`globals()` or `setattr` at work, a compiled module) the look stops short
and the worker's import decides. The look is cheap: one compile.
"""

from __future__ import annotations

import ast
import difflib
import importlib.machinery
import os
import pkgutil
import sys
from importlib.machinery import ModuleSpec

# Calls and names through which a module can bind names its source does not show.
_DYNAMIC = {"globals", "vars", "locals", "exec", "setattr", "__import__", "__getattr__"}


class SourceProblem(Exception):
    """The module is not there, or its source does not compile or lacks
    the attribute. `details` is the SyntaxError as Python shows it."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


def _search_path(app_dir: str) -> list[str]:
    return [app_dir, *(p for p in sys.path if p != app_dir)]


def _find(name: str, path: list[str] | None, app_dir: str) -> ModuleSpec | None:
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        if finder is importlib.machinery.PathFinder:
            spec = finder.find_spec(name, path if path is not None else _search_path(app_dir))
        else:
            spec = find_spec(name, path)
        if spec is not None:
            return spec
    return None


def _close(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def locate(module: str, app_dir: str) -> ModuleSpec:
    """The spec of `module`, or SourceProblem saying which part is missing."""
    parts = module.split(".")
    path: list[str] | None = None
    spec: ModuleSpec | None = None
    for i, part in enumerate(parts):
        name = ".".join(parts[: i + 1])
        spec = _find(name, path, app_dir)
        if spec is None:
            where = path if path is not None else [app_dir]
            nearby = [m.name for m in pkgutil.iter_modules(where)]
            if i == 0:
                raise SourceProblem(
                    f"module {name!r} not found (looked in {app_dir!r} and sys.path; "
                    f"--app-dir sets the folder){_close(part, nearby)}")
            parent = ".".join(parts[:i])
            raise SourceProblem(f"module {name!r} not found: package {parent!r} has no "
                                f"module {part!r}{_close(part, nearby)}")
        if i < len(parts) - 1:
            if spec.submodule_search_locations is None:
                raise SourceProblem(f"module {module!r} not found: {name!r} is a module, "
                                    "not a package")
            path = list(spec.submodule_search_locations)
    assert spec is not None
    return spec


def read_source(spec: ModuleSpec) -> str | None:
    """The module's Python source, or None (compiled, frozen, a namespace)."""
    loader = spec.loader
    get_source = getattr(loader, "get_source", None)
    if get_source is None or not (spec.origin or "").endswith(".py"):
        return None
    try:
        source = get_source(spec.name)
    except (ImportError, OSError):
        return None
    return source if isinstance(source, str) else None


def compiled(source: str, filename: str) -> ast.Module:
    """The module's syntax tree, or SourceProblem for a SyntaxError."""
    try:
        tree = ast.parse(source, filename)
        compile(tree, filename, "exec", dont_inherit=True)  # what only the compiler checks
    except SyntaxError as exc:
        where = f"{exc.filename}, line {exc.lineno}" if exc.lineno else str(exc.filename)
        lines = [f'  File "{exc.filename}", line {exc.lineno}']
        if exc.text:
            text = exc.text.rstrip("\n")
            stripped = text.lstrip()
            lines.append(f"    {stripped}")
            if exc.offset:
                caret = max(1, exc.offset - (len(text) - len(stripped)))
                lines.append("    " + " " * (caret - 1) + "^")
        raise SourceProblem(f"SyntaxError in {where}: {exc.msg}",
                            "\n".join(lines) + "\n") from None
    except ValueError as exc:  # source code string cannot contain null bytes
        raise SourceProblem(f"{filename}: {exc}") from None
    return tree


class _Binder(ast.NodeVisitor):
    """The names a module binds at its top level, or `dynamic` if it may
    bind others its source does not show."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.dynamic = False

    def _defines(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.names.add(node.name)  # its body is another scope
        self.dynamic = self.dynamic or node.name == "__getattr__"

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _defines

    def visit_Lambda(self, node: ast.Lambda) -> None:
        pass

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store):
            self.names.add(node.id)
        self.dynamic = self.dynamic or node.id in _DYNAMIC

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:  # `app: App` alone binds nothing
            self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.dynamic = self.dynamic or node.attr in ("modules", "__dict__")
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.names.update(a.asname or a.name.split(".")[0] for a in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                self.dynamic = True
            self.names.add(alias.asname or alias.name)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.names.add(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self.names.add(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.names.add(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self.names.add(node.rest)
        self.generic_visit(node)


def top_level_names(tree: ast.Module) -> set[str] | None:
    """What the module binds, or None when its source cannot tell."""
    binder = _Binder()
    binder.visit(tree)
    return None if binder.dynamic else binder.names


def look(module: str, attribute: str, app_dir: str, *, source: bool = True) -> None:
    """Raise SourceProblem if `module` is not found, or (with `source`) does
    not compile or surely lacks `attribute`; otherwise return."""
    if module in sys.modules:
        return  # imported already (the master's own modules): the import will tell
    spec = locate(module, app_dir)
    if not source:
        return
    text = read_source(spec)
    if text is None or spec.origin is None:
        return
    names = top_level_names(compiled(text, spec.origin))
    if names is None or attribute in names:
        return
    for folder in spec.submodule_search_locations or ():
        if os.path.exists(os.path.join(folder, attribute + ".py")) or os.path.isdir(
                os.path.join(folder, attribute)):
            return  # a submodule, perhaps imported by the package
    public = sorted(n for n in names if not n.startswith("_"))
    raise SourceProblem(f"module {module!r} ({spec.origin}) has no attribute {attribute!r}"
                        f"{_close(attribute, public)}")
