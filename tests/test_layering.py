"""Imports point one way: http/ <- adapters <- server/ <- main, cli."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "twincorn"

# module (or folder) -> the twincorn modules it may import
ALLOWED = {
    "http": {"twincorn.http"},
    # The WebSocket core: like http/, no I/O; it may read an HTTP Request.
    "ws": {"twincorn.http", "twincorn.ws"},
    "exchange.py": {"twincorn.http", "twincorn.ws"},
    "asgi_spec.py": set(),
    "asgi.py": {"twincorn.http", "twincorn.exchange", "twincorn.asgi_spec",
                "twincorn.asgi_websocket", "twincorn.ws"},
    "asgi_websocket.py": {"twincorn.http", "twincorn.exchange", "twincorn.asgi_spec",
                          "twincorn.ws", "twincorn.asgi"},  # asgi: for its type only
    "wsgi.py": {"twincorn.http", "twincorn.exchange"},
    "logs.py": {"twincorn.exchange", "twincorn.http"},
    "importer.py": {"twincorn.config", "twincorn.app_source"},  # config for its type only
    "app_source.py": set(),
    "address.py": set(),
    "trusted.py": set(),
    "units.py": set(),
    "extras.py": set(),
    "peer_flags.py": set(),
    "cli_parser.py": {"twincorn.peer_flags"},
    "main.py": {"twincorn", "twincorn.config", "twincorn.importer", "twincorn.logs",
                "twincorn.master", "twincorn.server"},
    "config.py": {"twincorn.http", "twincorn.config_file", "twincorn.address", "twincorn.units",
                  "twincorn.peer_flags", "twincorn.extras", "twincorn.settings",
                  "twincorn.trusted"},
    # The declarations themselves: the defaults they share with the core.
    "settings": {"twincorn.settings", "twincorn.http", "twincorn.address",
                 "twincorn.config_file", "twincorn.trusted"},
    "config_file.py": set(),
    "trace.py": {"twincorn.logs"},
    "lab": {"twincorn", "twincorn.lab", "twincorn.load", "twincorn.extras"},
    # The fakes for driving a connection without sockets: above the server,
    # and nothing in the package imports them.
    "testing.py": {"twincorn.asgi", "twincorn.asgi_websocket", "twincorn.wsgi",
                   "twincorn.exchange", "twincorn.http", "twincorn.server", "twincorn.ws"},
}


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "twincorn":
            # `from twincorn import peer_flags` imports the module twincorn.peer_flags
            for alias in node.names:
                module = (PACKAGE / f"{alias.name}.py").exists() or (PACKAGE / alias.name).is_dir()
                names.add(f"twincorn.{alias.name}" if module else "twincorn")
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n == "twincorn" or n.startswith("twincorn.")}


def allowed(name: str, prefixes: set[str]) -> bool:
    # "twincorn" alone allows `from twincorn import __version__`, not the subpackages.
    return any(name == p or (p != "twincorn" and name.startswith(p + ".")) for p in prefixes)


def test_http_core_does_no_io_and_imports_nothing_else() -> None:
    for path in (PACKAGE / "http").glob("*.py"):
        text = path.read_text()
        for forbidden in ("import asyncio", "import socket", "import selectors", "uvloop"):
            assert forbidden not in text, f"{path.name} uses {forbidden}"
        bad = {n for n in imported(path) if not allowed(n, ALLOWED["http"])}
        assert not bad, f"http/{path.name} imports {bad}"


def test_websocket_core_does_no_io() -> None:
    for path in (PACKAGE / "ws").glob("*.py"):
        text = path.read_text()
        for forbidden in ("import asyncio", "import socket", "import selectors", "uvloop"):
            assert forbidden not in text, f"ws/{path.name} uses {forbidden}"


def test_adapters_and_helpers() -> None:
    for name, prefixes in ALLOWED.items():
        if name == "http":
            continue
        where = PACKAGE / name
        for path in sorted(where.glob("*.py")) if where.is_dir() else [where]:
            bad = {n for n in imported(path) if not allowed(n, prefixes)}
            assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_server_does_not_import_main_or_cli() -> None:
    for path in (PACKAGE / "server").glob("*.py"):
        bad = {n for n in imported(path) if n.startswith(("twincorn.main", "twincorn.cli"))}
        assert not bad, f"server/{path.name} imports {bad}"


def test_master_starts_workers_through_server_only() -> None:
    allowed_prefixes = {
        "twincorn.config", "twincorn.importer", "twincorn.master", "twincorn.server",
        "twincorn.extras", "twincorn.logs",  # logs: reopened and reconfigured on USR1, HUP
    }
    for path in (PACKAGE / "master").glob("*.py"):
        bad = {
            n for n in imported(path)
            if n != "twincorn" and not allowed(n, allowed_prefixes)
        }
        assert not bad, f"master/{path.name} imports {bad}"
        text = path.read_text()
        assert "asyncio" not in text.replace("event loop", ""), f"master/{path.name} uses asyncio"


def test_nothing_in_the_package_imports_the_fakes() -> None:
    for path in PACKAGE.rglob("*.py"):
        assert "twincorn.testing" not in imported(path), f"{path.relative_to(PACKAGE)}"
