"""The argument parser of `twincorn serve | load | lab`: short errors.

argparse answers a mistake with the whole usage (thirty lines for `serve`)
and a message in its own words (`invalid _parse_int value: 'abc'`); an
unknown flag of a subcommand is reported by the top-level parser, with no
hint. `Parser` answers every mistake in one or two lines on stderr, with
exit status 2 and no traceback: the flag, the value, the fix, then where
the help is. For an unknown flag it says what gunicorn's, uvicorn's or
Locust's flag of that name is called here (peer_flags.py), or which of
the command's own flags was meant (difflib).
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from twincorn import peer_flags
from twincorn.peer_flags import Verdict

_ARGUMENT = re.compile(r"^argument ([^:]+): ")
#: The dest under which an ACCEPTED peer flag (--headless) is noted.
_ACCEPTED_DEST = "peer flag "


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and a pointer to --help.

    Abbreviations are off: `--ws` must not become `--wsgi-spool-size`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        message = _ARGUMENT.sub(r"\1: ", message)
        self.exit(2, f"{self.prog}: error: {message}\n(see {self.prog} --help)\n")

    # -- the subcommand's view of itself -----------------------------------

    @property
    def command(self) -> str:
        return self.prog.split()[-1]

    def own_flags(self) -> dict[str, str]:
        """Every flag this parser takes, each mapped to the flag --help shows
        for it (a hidden alias to its visible flag)."""
        visible: dict[str, str] = {}
        for action in self._actions:
            if not action.option_strings or action.dest.startswith(_ACCEPTED_DEST):
                continue
            shown = action.option_strings[-1]
            if action.help == argparse.SUPPRESS:
                shown = self._visible_flag(action.dest) or shown
            for flag in action.option_strings:
                visible[flag] = shown
        return visible

    def _visible_flag(self, dest: str) -> str | None:
        for action in self._actions:
            if action.dest == dest and action.help != argparse.SUPPRESS and action.option_strings:
                return action.option_strings[-1]
        return None

    def add_peer_flags(self) -> None:
        """Take the peers' flags that mean what one of ours means (ALIAS),
        and those that ask for what we do anyway (ACCEPTED), hidden from --help."""
        for entry in peer_flags.entries(self.command):
            if entry.verdict is Verdict.ALIAS:
                target = self._option_string_actions[entry.twincorn]
                kind = "append" if isinstance(target, argparse._AppendAction) else "store"
                self.add_argument(*entry.flags, dest=target.dest, action=kind,
                                  type=target.type or str, choices=target.choices,
                                  metavar=target.metavar, default=argparse.SUPPRESS,
                                  help=argparse.SUPPRESS)
            elif entry.verdict is Verdict.ACCEPTED:
                self.add_argument(*entry.flags, dest=_ACCEPTED_DEST + entry.flags[0],
                                  action="store_true", default=argparse.SUPPRESS,
                                  help=argparse.SUPPRESS)

    def settle_peer_flags(self, args: dict[str, Any]) -> None:
        """Remove the ACCEPTED peer flags from parsed `args`; refuse one that
        contradicts a flag also given (`--headless --web`)."""
        for key in [k for k in args if k.startswith(_ACCEPTED_DEST)]:
            del args[key]
            entry = peer_flags.find(self.command, key[len(_ACCEPTED_DEST):])
            if entry is None or not entry.conflicts:
                continue
            conflicting = self._option_string_actions[entry.conflicts].dest
            if args.get(conflicting):
                self.error(f"{entry.flags[0]} and {entry.conflicts} contradict each other: "
                           f"{entry.note}")

    def unknown(self, extras: Sequence[str], others: dict[str, Parser]) -> NoReturn:
        """Refuse what this parser did not recognise, naming the first one."""
        flags = [e for e in extras if e.startswith("-") and e != "-"]
        if not flags:
            self.error(f"unexpected argument {extras[0]!r}")
        self.error(unknown_flag(self, flags[0].split("=", 1)[0], others))


def unknown_flag(parser: Parser, flag: str, others: dict[str, Parser]) -> str:
    """What to say of a flag `parser` does not take."""
    command = parser.command
    entry = peer_flags.find(command, flag)
    if entry is not None and entry.verdict not in peer_flags.ACCEPTED:
        return entry.advice(flag)
    own = parser.own_flags()
    long_ones = [f for f in own if f.startswith("--")] if flag.startswith("--") else list(own)
    close = difflib.get_close_matches(flag, long_ones, n=1, cutoff=0.75)
    if close:
        return f"unknown flag {flag}; did you mean {own[close[0]]}?"
    for name, other in others.items():
        if name != command and flag in other.own_flags():
            return f"{flag} is a flag of twincorn {name}, not of twincorn {command}"
    known = [f for e in peer_flags.entries(command) for f in e.flags]
    close = difflib.get_close_matches(flag, known, n=1, cutoff=0.8)
    if close:
        near = peer_flags.find(command, close[0])
        assert near is not None
        if near.verdict not in peer_flags.ACCEPTED:
            return f"unknown flag {flag}; {near.advice(close[0])}"
    return f"unknown flag {flag}"


def command_hint(argv: Sequence[str], commands: Sequence[str]) -> str | None:
    """What to say when the first word is not a command (`twincorn app:app`)."""
    if not argv:
        return "give a command: twincorn serve APP, twincorn load URL or twincorn lab"
    first = argv[0]
    if first in ("-h", "--help", "--version") or first in commands:
        return None
    if first.startswith("-"):
        return (f"unknown flag {first}: the command comes first, then its flags "
                f"(twincorn serve {first} ...)")
    if "://" in first:
        return f"{first!r} is not a command; to load-test it: twincorn load {first}"
    if ":" in first:
        return f"{first!r} is not a command; to serve it: twincorn serve {' '.join(argv)}"
    close = difflib.get_close_matches(first, commands, n=1)
    hint = f"; did you mean {close[0]}?" if close else f" (the commands: {', '.join(commands)})"
    return f"unknown command {first!r}{hint}"


def fail(prog: str, message: str) -> NoReturn:
    """The same two lines as Parser.error, for a mistake found after parsing."""
    sys.stderr.write(f"{prog}: error: {message}\n(see {prog} --help)\n")
    raise SystemExit(2)
