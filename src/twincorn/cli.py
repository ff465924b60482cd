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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = vars(parser.parse_args(argv))
    command = args.pop("command")
    if command == "serve":
        from twincorn.main import serve

        try:
            settings = config.build(cli=args)
        except config.ConfigError as exc:
            parser.error(str(exc))
        return serve(settings)
    parser.error(f"unknown command {command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
