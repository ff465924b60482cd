"""The command line: `twincorn serve APP [flags]`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from twincorn import __version__, config


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="twincorn",
        description="One server for WSGI and ASGI apps.",
    )
    parser.add_argument("--version", action="version", version=f"twincorn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve a WSGI or ASGI application",
        description="Serve a WSGI or ASGI application over HTTP/1.1. Every flag can "
        "also be set as an environment variable TWINCORN_<NAME> (e.g. TWINCORN_THREADS=4).",
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = vars(parser.parse_args(argv))
    command = args.pop("command")
    if command == "serve":
        from twincorn.main import serve

        print_config = args.pop("print_config", False)
        check_config = args.pop("check_config", False)
        try:
            settings = config.build(cli=args)
        except config.ConfigError as exc:
            parser.error(str(exc))
        if print_config:
            print(config.describe(settings), end="")
            return 0
        if check_config:
            return _check(settings)
        return serve(settings, rebuild=lambda: config.build(cli=args))
    if command == "load":
        from twincorn.load.cli import main as load_main

        return load_main(args)
    if command == "lab":
        from twincorn.lab.cli import main as lab_main

        return lab_main(args)
    parser.error(f"unknown command {command!r}")
    return 2


def _check(settings: config.Config) -> int:
    from twincorn import logs
    from twincorn.importer import AppLoadError, load

    logs.configure(settings.log_level, settings.error_log_file, settings.access_log_file)
    try:
        _, interface = load(settings)
    except AppLoadError as exc:
        exc.report()
        return 1
    print(f"configuration OK: {settings.app} is an {interface.upper()} application")
    return 0


if __name__ == "__main__":
    sys.exit(main())
