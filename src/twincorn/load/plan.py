"""Every option of `twincorn load`, declared once.

A field of `LoadPlan` says how a run loads the server; a field of `Reports`
says what is done with its results. Each field carries its help text,
flags, section and string parser, and the `twincorn load` flags are made
from them (`add_arguments`), as `twincorn serve`'s are from config.py. The
same names are the keyword arguments of `twincorn.load.run(...)`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from twincorn import units
from twincorn.load.tls import ClientTls, TlsOptionError


class PlanError(ValueError, argparse.ArgumentTypeError):
    """An option has a value that does not fit it (argparse shows its message)."""


def option(
    default: Any,
    help: str,
    *flags: str,
    parse: Callable[[str], Any] | None = None,
    section: str = "load",
    metavar: str | None = None,
    positional: bool = False,
    shown: str = "",
) -> Any:
    """Declare one option (used as the default of a dataclass field).

    `shown` says what an empty default (None) stands for in --help; the help
    text itself names no default, the declaration is its one source."""
    meta = {
        "help": help,
        "flags": flags,
        "parse": parse,
        "section": section,
        "metavar": metavar,
        "positional": positional,
        "shown": shown,
    }
    if isinstance(default, list):
        return field(default=tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


def parse_duration(text: str) -> float:
    """Seconds from "30s", "2m", "1h10m", "1.5s", "250ms" or a plain number."""
    try:
        return units.parse_duration(text)
    except ValueError as exc:
        raise PlanError(str(exc)) from None


DEFAULT_MESSAGE_SIZE = 64  # bytes: the WebSocket echo's message, as the peers' benchmarks send
MAX_MESSAGE_SIZE = 64 << 20


def parse_size(text: str) -> int:
    """Bytes from "64", "16k", "16KiB", "1m"."""
    try:
        return units.parse_size(text)
    except ValueError as exc:
        raise PlanError(str(exc)) from None


def usable_cpus() -> int:
    """How many CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def parse_processes(text: str) -> int:
    """A number of processes, or "auto": one per CPU this process may use."""
    if text.strip().lower() == "auto":
        return usable_cpus()
    try:
        return int(text)
    except ValueError:
        raise PlanError(f"not a number of processes: {text!r} (a number or auto)") from None


def _number(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise PlanError(f"not a number: {text!r}") from None

    parse.__name__ = kind.__name__
    return parse


@dataclass(frozen=True)
class LoadPlan:
    """How a run loads the server: the load model, its size, its limits."""

    url: str | None = option(
        None,
        "Where to send load. With no scenario file, each user GETs this URL, "
        "or, for a ws:// or wss:// URL, makes echo round trips on a WebSocket "
        "(with -f, it is the default host).",
        positional=True,
        metavar="URL",
    )
    host: str | None = option(
        None,
        "Base URL for the scenario's relative paths (overrides the User classes' host).",
        "-H",
        metavar="URL",
    )
    # -- the closed model (Locust's)
    users: int = option(
        10,
        "Closed model: virtual users, each looping over its tasks with its think time.",
        "-u",
        parse=_number(int),
        section="closed model (Locust's)",
        metavar="N",
    )
    spawn_rate: float = option(
        0.0,
        "Closed model: users started per second (0: all at once).",
        "-r",
        parse=_number(float),
        section="closed model (Locust's)",
        metavar="R",
    )
    # -- the open model (wrk2's, k6's)
    rate: float = option(
        0.0,
        "Open model: start this many requests (tasks) per second on a fixed "
        "schedule, whatever the server does; latency counts from the scheduled time.",
        parse=_number(float),
        section="open model (wrk2's, k6's)",
        metavar="RPS",
    )
    max_in_flight: int = option(
        1000,
        "Open model: most requests (tasks) in progress at once; later arrivals "
        "wait for one to finish.",
        parse=_number(int),
        section="open model (wrk2's, k6's)",
        metavar="N",
    )
    max_queue: int = option(
        10_000,
        "Open model: most arrivals waiting while --max-in-flight are busy; "
        "arrivals beyond it are dropped and counted as failures.",
        parse=_number(int),
        section="open model (wrk2's, k6's)",
        metavar="N",
    )
    # -- when to stop
    run_time: float | None = option(
        None,
        "Stop after this long (30s, 2m, 1h10m).",
        "-t",
        parse=parse_duration,
        section="how long",
        metavar="TIME",
        shown="until Ctrl-C or --stop-after",
    )
    warmup: float = option(
        0.0,
        "Load for this long first without counting it (connections open, caches "
        "warm); the figures, the timeline and --stop-after start after it. "
        "--run-time includes it.",
        parse=parse_duration,
        section="how long",
        metavar="TIME",
    )
    stop_after: int = option(
        0,
        "Stop after this many requests (0: no limit); requests in flight are "
        "waited for, so exactly N are measured.",
        parse=_number(int),
        section="how long",
        metavar="N",
    )
    stop_timeout: float = option(
        0.0,
        "On stopping (time up, Ctrl-C), give requests in flight this long to "
        "finish (0: they are abandoned and not counted, as wrk and Locust do).",
        parse=parse_duration,
        section="how long",
        metavar="TIME",
    )
    # -- the requests
    connect_timeout: float = option(
        5.0,
        "How long a connection may take to open (a timeout failure).",
        parse=parse_duration,
        section="requests",
        metavar="TIME",
    )
    timeout: float = option(
        60.0,
        "How long a response may take, from sending the request (a timeout failure); "
        "also a WebSocket's handshake, receive() and close.",
        parse=parse_duration,
        section="requests",
        metavar="TIME",
    )
    method: str = option(
        "GET",
        "Without a scenario file: the request method.",
        section="requests",
        metavar="METHOD",
    )
    header: tuple[str, ...] = option(
        [],
        "Without a scenario file: a request header, 'Name: value' (repeat for more).",
        section="requests",
        metavar="HEADER",
    )
    body: str | None = option(
        None,
        "Without a scenario file: the request body.",
        section="requests",
        metavar="TEXT",
    )
    # -- WebSocket echo (a ws:// or wss:// URL without a scenario file)
    message_size: int = option(
        DEFAULT_MESSAGE_SIZE,
        "Each message: this many random bytes, sent as one binary frame "
        "(64, 16KiB, 1m); the echo must come back the same.",
        parse=parse_size,
        section="WebSocket echo (a ws:// URL)",
        metavar="SIZE",
    )
    message_text: str | None = option(
        None,
        "Send this text, as one text frame, instead of --message-size random bytes.",
        section="WebSocket echo (a ws:// URL)",
        metavar="TEXT",
    )
    # -- TLS (https:// and wss:// URLs)
    insecure: bool = option(
        False,
        "Accept any server certificate, unchecked (a test server's own, as curl's -k).",
        "-k",
        section="TLS (https:// and wss://)",
    )
    ca_certs: str | None = option(
        None,
        "PEM file of the authorities that sign the server's certificate.",
        section="TLS (https:// and wss://)",
        metavar="FILE",
        shown="the system's",
    )
    client_cert: str | None = option(
        None,
        "PEM file of the certificate shown to a server that asks for one (mutual TLS); "
        "its key too, unless --key gives it.",
        section="TLS (https:// and wss://)",
        metavar="FILE",
    )
    key: str | None = option(
        None,
        "PEM file of --client-cert's private key (not encrypted).",
        section="TLS (https:// and wss://)",
        metavar="FILE",
    )
    # -- processes
    processes: int = option(
        1,
        "Load processes (auto: one per CPU). Users and rate are split between "
        "them; their histograms are merged exactly.",
        parse=parse_processes,
        section="processes",
        metavar="N|auto",
    )

    @property
    def open_model(self) -> bool:
        return self.rate > 0

    @property
    def model(self) -> str:
        return "open" if self.open_model else "closed"

    def replace(self, **changes: Any) -> LoadPlan:
        return dataclasses.replace(self, **changes)

    def validate(self) -> LoadPlan:
        """Check the values; raise PlanError naming the first one that is wrong."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise PlanError(f"{_flag(f)}: must not be negative, got {value}")
        if not self.open_model and self.users < 1:
            raise PlanError("--users: at least 1 user is needed")
        if self.open_model and self.max_in_flight < 1:
            raise PlanError("--max-in-flight: must be at least 1")
        if self.processes < 1:
            raise PlanError("--processes: must be at least 1")
        if self.run_time is not None and self.run_time <= 0:
            raise PlanError("--run-time: must be more than 0")
        if self.run_time is not None and self.warmup >= self.run_time:
            raise PlanError("--warmup: must be shorter than --run-time (which includes it)")
        if self.timeout <= 0 or self.connect_timeout <= 0:
            raise PlanError("--timeout, --connect-timeout: must be more than 0")
        if self.url is not None:
            check_url(self.url, websocket=True)
        if self.host is not None:
            check_url(self.host)
        self._check_websocket()
        self._check_tls()
        for line in self.header:
            if ":" not in line or not line.split(":", 1)[0].strip():
                raise PlanError(f"--header: expected 'Name: value', got {line!r}")
        return self

    @property
    def websocket(self) -> bool:
        """A ws:// or wss:// URL: the WebSocket echo (without a scenario file)."""
        return self.url is not None and urlsplit(self.url).scheme in WS_SCHEMES

    def _check_websocket(self) -> None:
        if self.message_size > MAX_MESSAGE_SIZE:
            raise PlanError(f"--message-size: at most {units.format_size(MAX_MESSAGE_SIZE)}, "
                            f"got {self.message_size}")
        if self.websocket:
            if self.method.upper() != "GET" or self.body is not None:
                raise PlanError("--method, --body: not for a ws:// URL (its messages are "
                                "--message-size bytes or --message-text)")
            return
        if self.message_text is not None or self.message_size != DEFAULT_MESSAGE_SIZE:
            given = "--message-text" if self.message_text is not None else "--message-size"
            raise PlanError(f"{given}: for a ws:// or wss:// URL only")

    def client_tls(self) -> ClientTls:
        """The TLS options, whose context each load process makes once."""
        return ClientTls(self.insecure, self.ca_certs, self.client_cert, self.key)

    def _check_tls(self) -> None:
        if self.key and not self.client_cert:
            raise PlanError("--key: the key of --client-cert: give --client-cert too")
        if self.insecure and self.ca_certs:
            raise PlanError("--insecure and --ca-certs contradict each other: --insecure "
                            "checks no certificate")
        if self.ca_certs or self.client_cert:
            try:
                self.client_tls().context()  # the files are read now, once
            except TlsOptionError as exc:
                raise PlanError(str(exc)) from None

    def split(self, parts: int) -> list[LoadPlan]:
        """This plan shared between `parts` processes: users, rate, limits."""
        plans = []
        for i in range(parts):
            plans.append(
                self.replace(
                    users=_share(self.users, parts, i),
                    spawn_rate=self.spawn_rate / parts,
                    rate=self.rate / parts,
                    max_in_flight=max(1, _share(self.max_in_flight, parts, i)),
                    max_queue=_share(self.max_queue, parts, i),
                    stop_after=_share(self.stop_after, parts, i) if self.stop_after else 0,
                    processes=1,
                )
            )
        return plans


def _share(total: int, parts: int, i: int) -> int:
    return total // parts + (1 if i < total % parts else 0)


WS_SCHEMES = ("ws", "wss")


def check_url(url: str, websocket: bool = False) -> None:
    """An http:// or https:// URL (or, with `websocket`, ws:// or wss://)."""
    parts = urlsplit(url)
    schemes = ("http", "https", *WS_SCHEMES) if websocket else ("http", "https")
    if parts.scheme not in schemes or not parts.hostname:
        either = "an http://, https://, ws:// or wss://" if websocket else "an http:// or https://"
        raise PlanError(f"not {either} URL: {url!r}")
    try:
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        raise PlanError(f"bad port in {url!r}") from None


@dataclass(frozen=True)
class Reports:
    """What is done with the results: files, thresholds, the terminal, the web UI."""

    scenario: str | None = option(
        None,
        "A scenario file (a locustfile, async): its User classes run.",
        "-f",
        section="scenario",
        metavar="FILE",
    )
    json: str | None = option(
        None, "Write the results as JSON to FILE.", section="output", metavar="FILE"
    )
    csv: str | None = option(
        None,
        "Write PREFIX_stats.csv, PREFIX_stats_history.csv, PREFIX_failures.csv and "
        "PREFIX_exceptions.csv, with Locust's columns.",
        section="output",
        metavar="PREFIX",
    )
    html: str | None = option(
        None, "Write a self-contained HTML report to FILE.", section="output", metavar="FILE"
    )
    quiet: bool = option(
        False, "No live status line and no final table.", "-q", section="output"
    )
    fail_on: tuple[str, ...] = option(
        [],
        "A threshold that fails the run (exit status 1) when true, e.g. 'p99>500ms', "
        "'error_rate>1%%', 'rps<1000'; repeat for more. Given, these decide the exit "
        "status instead of 'any request failed'.",
        section="output",
        metavar="EXPR",
    )
    web: bool = option(
        False, "Serve the web UI instead of running headless.", section="web UI"
    )
    web_host: str = option("127.0.0.1", "Web UI address.", section="web UI", metavar="HOST")
    web_port: int = option(
        8089, "Web UI port.", parse=_number(int), section="web UI", metavar="PORT"
    )


_HINTS: dict[type, dict[str, Any]] = {
    LoadPlan: typing.get_type_hints(LoadPlan),
    Reports: typing.get_type_hints(Reports),
}


def _flag(f: dataclasses.Field[Any]) -> str:
    return "--" + f.name.replace("_", "-")


def fields_of(*classes: type) -> Iterable[dataclasses.Field[Any]]:
    for cls in classes:
        yield from dataclasses.fields(cls)


def _shown_default(f: dataclasses.Field[Any]) -> str:
    """" [default: 10]" in the help, from the declaration: durations as 30s,
    an empty default as what it stands for (or nothing)."""
    default: Any = f.default
    if default is None or default == ():
        shown = f.metadata["shown"]
    elif isinstance(default, bool):
        shown = ""  # a switch: off unless given
    elif f.metadata["parse"] is parse_duration:
        shown = units.format_duration(default)
    elif isinstance(default, float):
        shown = f"{default:g}"
    else:
        shown = str(default)
    return f" [default: {shown}]" if shown else ""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add a flag (or the positional URL) for every option of LoadPlan and Reports."""
    groups: dict[str, Any] = {}
    for cls in (LoadPlan, Reports):
        for f in dataclasses.fields(cls):
            meta = f.metadata
            section = meta["section"]
            if section not in groups:
                groups[section] = parser.add_argument_group(section)
            group = groups[section]
            hint = _HINTS[cls][f.name]
            kwargs: dict[str, Any] = {
                "help": meta["help"] + _shown_default(f),
                "default": argparse.SUPPRESS,
            }
            if meta["positional"]:
                group.add_argument(f.name, nargs="?", metavar=meta["metavar"], **kwargs)
                continue
            names = [*meta["flags"], _flag(f)]
            if hint is bool:
                group.add_argument(*names, action="store_true", **kwargs)
                continue
            if typing.get_origin(hint) is tuple:
                kwargs["action"] = "append"
            kwargs["metavar"] = meta["metavar"]
            kwargs["type"] = meta["parse"] or str
            group.add_argument(*names, dest=f.name, **kwargs)


def from_arguments(args: dict[str, Any]) -> tuple[LoadPlan, Reports]:
    """The plan and reports that parsed flags (a `vars(namespace)`) describe."""
    plan_names = {f.name for f in dataclasses.fields(LoadPlan)}
    report_names = {f.name for f in dataclasses.fields(Reports)}
    plan_args = {k: _frozen(v) for k, v in args.items() if k in plan_names}
    report_args = {k: _frozen(v) for k, v in args.items() if k in report_names}
    return LoadPlan(**plan_args).validate(), Reports(**report_args)


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def split_options(options: dict[str, Any]) -> tuple[LoadPlan, Reports]:
    """run(**options): the keyword arguments sorted into plan and reports;
    strings are parsed as on the command line ("30s", "auto")."""
    known = {f.name: (cls, f) for cls in (LoadPlan, Reports) for f in dataclasses.fields(cls)}
    for name in options:
        if name not in known:
            raise PlanError(f"unknown option {name!r}")
    converted: dict[str, Any] = {}
    for name, value in options.items():
        cls, f = known[name]
        parse = f.metadata["parse"]
        if isinstance(value, str) and parse is not None:
            value = parse(value)
        if isinstance(value, list | str) and typing.get_origin(_HINTS[cls][name]) is tuple:
            value = (value,) if isinstance(value, str) else tuple(value)
        converted[name] = value
    return from_arguments(converted)
