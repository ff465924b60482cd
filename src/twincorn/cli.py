"""The command line: `twincorn serve APP [flags]`, `twincorn load`, `twincorn lab`.

Every mistake on it ends here, before anything is bound or forked, in two
lines on stderr with exit status 2 (cli_parser.py): unknown flags, values
that do not read, settings that do not fit (config.py), a missing or
malformed APP. Mistakes in the application itself (not found, a
SyntaxError, no such attribute) are found by the master's look before it
binds (importer.check) and exit 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from twincorn import __version__, config
from twincorn.cli_parser import Parser, command_hint, fail

COMMANDS = ("serve", "load", "lab")


def make_parser() -> Parser:
    parser = Parser(
        prog="twincorn",
        description="One server for WSGI and ASGI apps.",
    )
    parser.add_argument("--version", action="version", version=f"twincorn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve a WSGI or ASGI application",
        description="Serve a WSGI or ASGI application over HTTP/1.1. Every flag can also\n"
        "be set as an environment variable TWINCORN_<NAME> (e.g. TWINCORN_THREADS=4).\n"
        "For gunicorn and uvicorn users: docs/gunicorn-uvicorn.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config.add_arguments(serve)
    checks = serve.add_argument_group("checking the configuration")
    checks.add_argument(
        "--print-config", action="store_true", default=argparse.SUPPRESS,
        help="print every setting's value (after flags and environment) and exit",
    )
    checks.add_argument(
        "--check-config", action="store_true", default=argparse.SUPPRESS,
        help="check the settings and that the application loads, then exit (0 if all is well)",
    )
    from twincorn.load.cli import add_parser as add_load_parser

    add_load_parser(commands)
    from twincorn.lab.cli import add_parser as add_lab_parser

    add_lab_parser(commands)
    for sub in subcommands(parser).values():
        sub.add_peer_flags()
    return parser


def subcommands(parser: argparse.ArgumentParser) -> dict[str, Parser]:
    """The parsers of `serve`, `load` and `lab`, by name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    hint = command_hint(argv, COMMANDS)
    if hint is not None:
        fail("twincorn", hint)
    parser = make_parser()
    namespace, extras = parser.parse_known_args(argv)
    args = vars(namespace)
    command = args.pop("command")
    subs = subcommands(parser)
    if extras:
        subs[command].unknown(extras, subs)
    subs[command].settle_peer_flags(args)
    if command == "serve":
        return _serve(subs["serve"], args)
    if command == "load":
        from twincorn.load.cli import main as load_main

        return load_main(args)
    from twincorn.lab.cli import main as lab_main

    return lab_main(args)


def _serve(parser: Parser, args: dict[str, Any]) -> int:
    from twincorn.importer import AppSpecError, parse_spec
    from twincorn.main import serve

    print_config = args.pop("print_config", False)
    check_config = args.pop("check_config", False)
    try:
        settings = config.build(cli=args)
    except config.ConfigError as exc:
        parser.error(_named(exc, args))
    if print_config:
        print(config.describe(settings), end="")
        return 0
    try:
        parse_spec(settings.app)
    except AppSpecError as exc:
        parser.error(str(exc))
    if check_config:
        return _check(settings)
    return serve(settings, rebuild=lambda: config.build(cli=args))


def _named(exc: config.ConfigError, args: dict[str, Any]) -> str:
    """The error, naming the flag rather than the setting where a flag gave it."""
    message = str(exc)
    if exc.setting in args and message.startswith(exc.setting + ": "):
        flags = "/".join(config.flags_of(exc.setting))
        return flags + message[len(exc.setting):]
    return message


def _check(settings: config.Config) -> int:
    from twincorn import logs
    from twincorn.importer import AppLoadError, load

    logs.configure(settings.log_level, settings.error_log_file, settings.access_log_file)
    try:
        _, interface = load(settings)
    except AppLoadError as exc:
        exc.report()
        return exc.status
    article = "an" if interface == "asgi" else "a"
    print(f"configuration OK: {settings.app} is {article} {interface.upper()} application")
    return 0


if __name__ == "__main__":
    sys.exit(main())
