"""Every setting, declared once.

Each field of `Config` is one setting: its type (the annotation), default,
help text, section and command-line flags come from that one declaration.
The `twincorn serve` flags, the TWINCORN_* environment variables, the names
a config file may set (`-c twincorn.conf.py`), `twincorn.run(**settings)`
and `docs/settings.md` are all made from it. Server hooks are settings too,
given only in a config file (or to `twincorn.run`).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib.util
import os
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin

from twincorn import peer_flags
from twincorn.address import DEFAULT_BIND, DEFAULT_PORT, AddressError, parse_address
from twincorn.config_file import DEFAULT_FILE, ConfigFileError, read_config_file
from twincorn.extras import install_hint
from twincorn.http import RequestPolicy
from twincorn.units import format_duration, format_size, parse_duration, parse_size

ENV_PREFIX = "TWINCORN_"
#: How a master re-executed by USR2 learns its predecessor's sockets: a
#: comma-separated list of inherited file descriptors (server/listener.py).
#: Not a setting, though it shares the prefix.
UPGRADE_ENV = ENV_PREFIX + "FDS"
_P = RequestPolicy()
_NO_LIMIT = sys.maxsize  # the core's own defaults, so that both agree


def setting(
    default: Any,
    help: str,
    *flags: str,
    section: str = "server",
    metavar: str | None = None,
    positional: bool = False,
    file_only: bool = False,
    unit: Literal["size", "duration"] | None = None,
    shown: str = "",
) -> Any:
    """Declare one setting (used as the default of a Config field).

    `file_only` settings (the server hooks: functions) have no flag and no
    environment variable; a config file or `twincorn.run` gives them.
    A `unit` setting reads and shows sizes (64k, 100m) or durations (30s,
    2m); `shown` says what an empty default (None, no value) stands for,
    in --help and docs/settings.md. The help text itself names no default:
    the declaration is its one source.
    """
    meta = {
        "help": help,
        "flags": flags,
        "section": section,
        "metavar": metavar,
        "positional": positional,
        "file_only": file_only,
        "unit": unit,
        "shown": shown,
    }
    if isinstance(default, list | dict):
        frozen = tuple(default) if isinstance(default, list) else default
        return field(default=frozen, metadata=meta)
    return field(default=default, metadata=meta)


Hook = Callable[..., Any]


def hook(help: str) -> Mapping[str, Any]:
    """The metadata of a server hook's field: declared by setting() like every
    other, with no flag and no environment variable. (The fields themselves
    are written `field(default=None, metadata=hook(...))`, which linters know
    for a dataclass field.)"""
    declared: dataclasses.Field[Any] = setting(None, help, section="server hooks",
                                               file_only=True)
    return declared.metadata


@dataclass(frozen=True, slots=True)
class Config:
    """The settings of `twincorn serve` (and of `twincorn.run`)."""

    # -- where the settings come from
    config: str | None = setting(
        None,
        "Python config file: its top-level names are settings and server hooks "
        "(gunicorn's convention).",
        "-c",
        section="configuration",
        metavar="FILE",
        shown=f"./{DEFAULT_FILE} if it exists",
    )
    # -- the application
    app: str | None = setting(
        None,
        "The application, as module:attribute (e.g. examples.asgi.app:app).",
        section="application",
        positional=True,
        metavar="APP",
    )
    factory: bool = setting(
        False,
        "Treat APP as a factory: call it with no arguments to get the application.",
        section="application",
    )
    app_dir: str = setting(
        ".",
        "Folder put first on sys.path before APP is imported.",
        section="application",
        metavar="DIR",
    )
    interface: Literal["auto", "asgi", "wsgi"] = setting(
        "auto",
        "The application's interface; auto detects it from the callable's signature.",
        section="application",
    )
    lifespan: Literal["auto", "on", "off"] = setting(
        "auto",
        "ASGI lifespan: on requires it, off skips it, auto uses it if the app supports it.",
        section="application",
    )
    root_path: str = setting(
        "",
        "Path the application is mounted at (ASGI root_path, WSGI SCRIPT_NAME).",
        section="application",
        metavar="PATH",
    )
    threads: int = setting(
        1,
        "WSGI calls at once per worker: 1 calls the app inline on the event loop, "
        "one request at a time (gunicorn's sync worker); N>1 uses a thread pool.",
        section="application",
        metavar="N",
    )
    # -- processes
    workers: int = setting(
        1,
        "Worker processes, each with its own event loop. WEB_CONCURRENCY sets it "
        "too; gunicorn's advice for blocking apps is (2 x cores) + 1.",
        "-w",
        section="processes",
        metavar="N",
    )
    timeout: float = setting(
        30.0,
        "A worker whose event loop is silent this long (a blocked loop, a stuck "
        "WSGI call) has its stacks logged, is killed and replaced.",
        section="processes",
        metavar="TIME",
        unit="duration",
    )
    preload: bool = setting(
        False,
        "Import the application in the master, before forking the workers.",
        section="processes",
    )
    max_requests: int = setting(
        0,
        "A worker retires gracefully after this many requests (0: never); a new "
        "one takes its place. Guards against slow leaks.",
        section="processes",
        metavar="N",
    )
    max_requests_jitter: int = setting(
        0,
        "Up to this many requests added at random to --max-requests, per worker, "
        "so that workers do not restart together.",
        section="processes",
        metavar="N",
    )
    max_worker_lifetime: float = setting(
        0.0,
        "A worker retires gracefully after this long (0: never), up to 10% "
        "later at random.",
        section="processes",
        metavar="TIME",
        unit="duration",
    )
    max_worker_memory: int = setting(
        0,
        "A worker retires gracefully once its resident memory passes this size "
        "(0: never; e.g. 512m), up to 5% later at random.",
        section="processes",
        metavar="SIZE",
        unit="size",
    )
    pid: str | None = setting(
        None, "Write the master's process id to this file.", section="processes",
        metavar="FILE",
    )
    # -- where to listen
    bind: tuple[str, ...] = setting(
        [],
        "Address to listen on: HOST:PORT, HOST (port 8000), [IPV6]:PORT, unix:PATH "
        "or fd://N (an inherited socket); repeat for more. Sockets passed by systemd "
        "(LISTEN_FDS) are used instead when present.",
        "-b",
        metavar="ADDRESS",
        shown=DEFAULT_BIND,
    )
    host: str | None = setting(
        None, "Shorthand for --bind HOST:PORT (with --port).", metavar="HOST"
    )
    port: int | None = setting(None, "Shorthand for --bind HOST:PORT (with --host).",
                               metavar="PORT")
    backlog: int = setting(2048, "Length of the listen queue.", metavar="N")
    reuse_port: bool = setting(
        False, "Set SO_REUSEPORT on the listening sockets (lets other processes bind them too)."
    )
    unix_socket_mode: str | None = setting(
        None,
        "Permissions of unix: sockets, in octal (e.g. 660).",
        metavar="MODE",
        shown="as the umask leaves them",
    )
    loop: Literal["auto", "uvloop", "asyncio"] = setting(
        "auto", "Event loop: uvloop where installed (auto), or plain asyncio."
    )
    # -- connections and timeouts
    worker_connections: int = setting(
        1000,
        "Connections one worker holds at once. At the limit, a newcomer is let in "
        "by closing the connections that made the least progress (slow heads and "
        "bodies, then the longest idle); 503 only if every one waits for the app.",
        section="connections",
        metavar="N",
    )
    timeout_keep_alive: float = setting(
        5.0,
        "How long an idle keep-alive connection is kept open.",
        section="connections",
        metavar="TIME",
        unit="duration",
    )
    timeout_request_head: float = setting(
        20.0,
        "How long a client has to send a whole request head once it began (408).",
        section="connections",
        metavar="TIME",
        unit="duration",
    )
    timeout_request_body: float = setting(
        30.0,
        "Silence allowed while a request body is read (408); past it, the body "
        "must also keep up --min-request-body-rate.",
        section="connections",
        metavar="TIME",
        unit="duration",
    )
    min_request_body_rate: int = setting(
        500,
        "Bytes a second a request body must average once its first "
        "--timeout-request-body is spent (408); 0 for no minimum.",
        section="connections",
        metavar="SIZE",
        unit="size",
    )
    timeout_send: float = setting(
        60.0,
        "How long a client may leave what the server sends unread (its socket "
        "buffer full) before the connection is cut; 0 for no limit.",
        section="connections",
        metavar="TIME",
        unit="duration",
    )
    graceful_timeout: float = setting(
        30.0,
        "How long in-flight requests get to finish when the server stops.",
        section="connections",
        metavar="TIME",
        unit="duration",
    )
    # -- HTTP rules and limits
    limit_request_line: int = setting(
        _P.limit_request_line,
        "Longest request target, in bytes (414); 0 for no limit.",
        section="http",
        metavar="SIZE",
        unit="size",
    )
    limit_request_fields: int = setting(
        _P.limit_request_fields,
        "Most header fields in a request (431); 0 for no limit.",
        section="http",
        metavar="N",
    )
    limit_request_field_size: int = setting(
        _P.limit_request_field_size,
        "Longest header field line, name and value (431); 0 for no limit.",
        section="http",
        metavar="SIZE",
        unit="size",
    )
    limit_request_head: int = setting(
        _P.limit_request_head, "Largest request head in all (431); 0 for no limit.", section="http",
        metavar="SIZE",
        unit="size",
    )
    limit_request_body: int = setting(
        100 << 20,
        "Largest request body, after chunked decoding (413); 0 for no limit.",
        section="http",
        metavar="SIZE",
        unit="size",
    )
    wsgi_spool_size: int = setting(
        1 << 20,
        "WSGI request bodies larger than this are kept in a temporary file.",
        section="http",
        metavar="SIZE",
        unit="size",
    )
    drain_limit: int = setting(
        1 << 20,
        "Unread request body the server reads and discards to keep a "
        "connection open; a longer one closes it.",
        section="http",
        metavar="SIZE",
        unit="size",
    )
    require_host: bool = setting(
        _P.require_host,
        "Answer 400 to an HTTP/1.1 request without Host (RFC 9112 section 3.2).",
        section="http",
    )
    permit_obsolete_folding: bool = setting(
        _P.permit_obsolete_folding,
        "Accept header values folded over lines (obs-fold) instead of answering 400.",
        section="http",
    )
    server_header: bool = setting(True, "Send a Server header.", section="http")

    # -- WebSockets (ASGI applications; docs/websocket.md)
    ws: Literal["auto", "websockets", "websockets-sansio", "wsproto", "none"] = setting(
        "auto",
        "WebSocket support: the websockets library (websockets-sansio names it too), "
        "wsproto, auto (websockets if installed, else wsproto) or none (upgrade requests "
        "reach the application as plain HTTP). WSGI applications always get plain HTTP.",
        section="websockets",
    )
    ws_max_size: int = setting(
        16 << 20,
        "Largest message accepted, decompressed; past it the socket closes with 1009.",
        section="websockets",
        metavar="SIZE",
        unit="size",
    )
    ws_max_queue: int = setting(
        32,
        "Messages received and not yet read by the application; at the limit no more "
        "frames are read until it reads one (back-pressure on the client).",
        section="websockets",
        metavar="N",
    )
    ws_ping_interval: float = setting(
        20.0,
        "How often an open WebSocket is pinged; 0 for never.",
        section="websockets",
        metavar="TIME",
        unit="duration",
    )
    ws_ping_timeout: float = setting(
        20.0,
        "How long a ping may go unanswered before the socket is closed (1011); 0 to "
        "wait for ever.",
        section="websockets",
        metavar="TIME",
        unit="duration",
    )
    ws_per_message_deflate: bool = setting(
        True,
        "Offer permessage-deflate compression (RFC 7692) to clients that ask.",
        section="websockets",
    )
    ws_handshake_timeout: float = setting(
        10.0,
        "How long the application has to accept (or refuse) a WebSocket once it heard "
        "websocket.connect; then 503.",
        section="websockets",
        metavar="TIME",
        unit="duration",
    )
    # -- logging
    log_level: Literal["critical", "error", "warning", "info", "debug"] = setting(
        "info", "How much the error log says.", section="logging"
    )
    access_log: bool = setting(True, "Write an access log line per request.", section="logging")
    access_log_format: str = setting(
        '%(h)s "%(r)s" %(s)s %(b)s %(M)sms',
        "Access log line, with gunicorn's atoms (see docs/logging.md).",
        section="logging",
        metavar="FORMAT",
    )

    trace: bool = setting(
        False,
        "Log, per request, what the server hands the application and what it hands "
        "back (WSGI environ, start_response and body; ASGI scope, receive and send), "
        "with timings. For learning and debugging: it is slow.",
        section="logging",
    )
    error_log_file: str = setting(
        "-",
        "File the error log is written to; - for stderr. Reopened on SIGUSR1.",
        "--error-logfile",
        section="logging",
        metavar="FILE",
    )
    access_log_file: str = setting(
        "-",
        "File the access log is written to; - for stdout. Reopened on SIGUSR1.",
        "--access-logfile",
        section="logging",
        metavar="FILE",
    )
    # -- development
    reload: bool = setting(
        False,
        "Restart the workers when a watched file changes (needs the watchfiles "
        "package: pip install 'twincorn[reload]', or pip install -e '.[reload]' in a "
        "checkout). For development.",
        section="development",
    )
    reload_dir: tuple[str, ...] = setting(
        [],
        "Folder to watch with --reload; repeat for more.",
        section="development",
        metavar="DIR",
        shown="--app-dir",
    )
    reload_include: tuple[str, ...] = setting(
        [],
        "Glob pattern of file names to watch besides *.py; repeat for more.",
        section="development",
        metavar="GLOB",
    )
    reload_exclude: tuple[str, ...] = setting(
        [],
        "Glob pattern of file or folder names not to watch, besides hidden ones, "
        "*.py[cod], *~ and __pycache__; repeat for more.",
        section="development",
        metavar="GLOB",
    )
    # -- server hooks (config file only): each gets the arbiter, and the
    # -- worker's record where there is one (see docs/processes.md)
    on_starting: Hook | None = field(default=None, metadata=hook(
        "on_starting(arbiter): in the master, before the sockets are bound."
    ))
    when_ready: Hook | None = field(default=None, metadata=hook(
        "when_ready(arbiter): in the master, once the sockets are bound, "
        "before the first worker is forked."
    ))
    pre_fork: Hook | None = field(default=None, metadata=hook(
        "pre_fork(arbiter, worker): in the master, just before a worker is forked."
    ))
    post_fork: Hook | None = field(default=None, metadata=hook(
        "post_fork(arbiter, worker): in the new worker, just after the fork."
    ))
    worker_exit: Hook | None = field(default=None, metadata=hook(
        "worker_exit(arbiter, worker): in the worker, after it stopped serving."
    ))
    on_exit: Hook | None = field(default=None, metadata=hook(
        "on_exit(arbiter): in the master, just before it exits."
    ))

    # -- derived ------------------------------------------------------------

    @property
    def binds(self) -> tuple[str, ...]:
        """Where to listen, after --host/--port."""
        if self.host is not None or self.port is not None:
            host = self.host or "127.0.0.1"
            host = f"[{host}]" if ":" in host and not host.startswith("[") else host
            port = self.port if self.port is not None else DEFAULT_PORT
            return (*self.bind, f"{host}:{port}")
        return self.bind or (DEFAULT_BIND,)

    @property
    def unix_mode(self) -> int | None:
        return None if self.unix_socket_mode is None else int(self.unix_socket_mode, 8)

    def request_policy(self) -> RequestPolicy:
        # 0 means no limit, as in gunicorn; the core always compares.
        return RequestPolicy(
            limit_request_line=self.limit_request_line or _NO_LIMIT,
            limit_request_fields=self.limit_request_fields or _NO_LIMIT,
            limit_request_field_size=self.limit_request_field_size or _NO_LIMIT,
            limit_request_head=self.limit_request_head or _NO_LIMIT,
            limit_request_body=self.limit_request_body,
            permit_obsolete_folding=self.permit_obsolete_folding,
            require_host=self.require_host,
        )

    def replace(self, **changes: Any) -> Config:
        check_names(changes)
        converted = {k: convert(k, v) for k, v in changes.items()}
        return validate(dataclasses.replace(self, **converted))


class ConfigError(ValueError):
    """A setting has an unknown name or a value that does not fit it.

    `setting` names the setting at fault, where one is: the command line
    then names its flag instead."""

    def __init__(self, message: str, setting: str = "") -> None:
        super().__init__(message)
        self.setting = setting


class BadValue(ValueError, argparse.ArgumentTypeError):
    """A value a setting's reader refuses (argparse shows the message as is)."""


SETTINGS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(Config)}
_HINTS = typing.get_type_hints(Config)


def check_names(names: Mapping[str, Any] | Sequence[str], where: str = "") -> None:
    for name in names:
        if name not in SETTINGS:
            peer = peer_flags.for_setting(name)
            if peer is not None and peer.twincorn:
                twincorn = SETTING_OF_FLAG.get(peer.twincorn.split()[0].split("/")[-1], "")
                hint = f" (gunicorn's name; twincorn's is {twincorn!r})" if twincorn else ""
            elif peer is not None:
                hint = f" (gunicorn's name: {peer.note})"
            else:
                close = difflib.get_close_matches(name, SETTINGS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}unknown setting {name!r}{hint}", name)


def is_hook(name: str) -> bool:
    return bool(SETTINGS[name].metadata["file_only"])


def flags_of(name: str) -> list[str]:
    """The command-line flags of a setting, its own --name last."""
    return [*SETTINGS[name].metadata["flags"], "--" + name.replace("_", "-")]


#: Which setting each flag sets ("--workers" and "-w": "workers").
SETTING_OF_FLAG = {flag: name for name in SETTINGS for flag in flags_of(name)}


def _reader(name: str, parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def read(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise BadValue(str(exc)) from None

    read.__name__ = name
    return read


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None


def _parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false (1, yes, on; 0, no, off), got {text!r}")


_UNITS: dict[str, Callable[[str], Any]] = {"size": parse_size, "duration": parse_duration}


def _parser_for(name: str) -> Callable[[str], Any]:
    hint = _HINTS[name]
    unit = SETTINGS[name].metadata["unit"]
    if unit:
        return _reader(unit, _UNITS[unit])
    args = [a for a in get_args(hint) if a is not type(None)]
    if get_origin(hint) in (types.UnionType, typing.Union) and args:
        hint = args[0]
    if hint is bool:
        return _reader("boolean", _parse_bool)
    if hint is int:
        return _reader("whole number", _parse_int)
    if hint is float:
        return _reader("number", _parse_float)
    return str


def convert(name: str, value: Any) -> Any:
    """A setting's value from a string (environment, CLI) or a Python value."""
    hint = _HINTS[name]
    if get_origin(hint) is tuple:
        if isinstance(value, str):
            return tuple(v for v in value.split(",") if v)
        return tuple(value)
    if isinstance(value, str) and (SETTINGS[name].metadata["unit"] or (
            hint is not str and "str" not in str(hint))):
        try:
            return _parser_for(name)(value)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}", name) from None
    return value


def shown_default(name: str) -> str:
    """A setting's default as --help and docs/settings.md show it: 100m,
    30s, or what an empty one stands for; "" for none worth showing."""
    f = SETTINGS[name]
    default: Any = f.default
    unit = f.metadata["unit"]
    if default in (None, ()) or default == "":
        return str(f.metadata["shown"])
    if unit == "size":
        return format_size(default)
    if unit == "duration":
        return format_duration(default)
    if isinstance(default, bool):
        return "on" if default else "off"
    return str(default)


def validate(config: Config) -> Config:
    """Check every value against its declared type and choices, and every
    address it is to listen on."""
    for name, hint in _HINTS.items():
        value = getattr(config, name)
        if get_origin(hint) is Literal and value not in get_args(hint):
            raise ConfigError(f"{name}: {value!r} is not one of {', '.join(get_args(hint))}",
                              name)
        if hint in (int, float) and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ConfigError(f"{name}: expected a number, got {value!r}", name)
        if hint in (int, float) and value < 0:
            raise ConfigError(f"{name}: must not be negative, got {value!r}", name)
    for name in SETTINGS:
        value = getattr(config, name)
        if is_hook(name) and value is not None and not callable(value):
            raise ConfigError(f"{name}: a server hook must be a function, got {value!r}", name)
    if config.threads < 1:
        raise ConfigError(f"threads: must be at least 1, got {config.threads}", "threads")
    if config.workers < 1:
        raise ConfigError(f"workers: must be at least 1, got {config.workers}", "workers")
    if config.unix_socket_mode is not None:
        try:
            int(config.unix_socket_mode, 8)
        except ValueError:
            raise ConfigError(
                f"unix_socket_mode: {config.unix_socket_mode!r} is not an octal mode (e.g. 660)",
                "unix_socket_mode",
            ) from None
    for library in (config.ws.removesuffix("-sansio"),):
        if library in ("websockets", "wsproto") and importlib.util.find_spec(library) is None:
            raise ConfigError(f"ws: {library} is not installed: {install_hint(library)}", "ws")
    _check_binds(config)
    return config


def _check_binds(config: Config) -> None:
    if config.port is not None and not 0 <= config.port <= 65535:
        raise ConfigError(f"port: {config.port} is out of range (0 to 65535)", "port")
    for address in config.binds:
        try:
            parse_address(address)
        except AddressError as exc:
            name = "bind" if address in config.bind else "host"
            raise ConfigError(f"{name}: {exc}", name) from None


def from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings given as TWINCORN_<NAME> environment variables (and
    WEB_CONCURRENCY, the platforms' name for the number of workers)."""
    environ = os.environ if environ is None else environ
    found: dict[str, Any] = {}
    if environ.get("WEB_CONCURRENCY"):
        found["workers"] = convert("workers", environ["WEB_CONCURRENCY"])
    for key, text in environ.items():
        if not key.startswith(ENV_PREFIX) or key == UPGRADE_ENV:
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name not in SETTINGS:
            close = difflib.get_close_matches(name, SETTINGS, n=1)
            hint = f" (did you mean {ENV_PREFIX}{close[0].upper()}?)" if close else ""
            raise ConfigError(f"unknown environment variable {key}{hint}", name)
        if is_hook(name):
            raise ConfigError(f"{key}: {name} is a server hook, set in a config file")
        found[name] = convert(name, text)
    return found


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting, grouped by section, each default shown once
    (from its declaration: shown_default) in the help."""
    groups: dict[str, Any] = {}
    for name, f in SETTINGS.items():
        meta = f.metadata
        if meta["file_only"]:
            continue
        section = meta["section"]
        if section not in groups:
            groups[section] = parser.add_argument_group(section)
        group = groups[section]
        hint = _HINTS[name]
        shown = shown_default(name)
        text = (meta["help"] + (f" [default: {shown}]" if shown else "")).replace("%", "%%")
        if meta["positional"]:
            group.add_argument(name, nargs="?", default=argparse.SUPPRESS, help=meta["help"],
                               metavar=meta["metavar"])
            continue
        flags = flags_of(name)
        kwargs: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": text}
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif get_origin(hint) is tuple:
            kwargs["action"] = "append"
            kwargs["metavar"] = meta["metavar"]
        else:
            kwargs["type"] = _parser_for(name)
            if get_origin(hint) is Literal:
                kwargs["choices"] = get_args(hint)
            elif meta["metavar"]:
                kwargs["metavar"] = meta["metavar"]
        group.add_argument(*flags, **kwargs)


def from_file(path: str) -> dict[str, Any]:
    """The settings and hooks a Python config file sets."""
    try:
        names, imported = read_config_file(path)
    except ConfigFileError as exc:
        raise ConfigError(str(exc)) from None
    names = {k: v for k, v in names.items() if k in SETTINGS or k not in imported}
    check_names(names, where=f"{path}: ")
    if "config" in names:
        raise ConfigError(f"{path}: a config file cannot name another one")
    values: dict[str, Any] = {}
    for name, value in names.items():
        try:
            values[name] = convert(name, value)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return values


def _config_path(cli: Mapping[str, Any], settings: Mapping[str, Any],
                 environ: Mapping[str, str]) -> str | None:
    for source in (cli, settings):
        if "config" in source:  # given, even as None: then no file at all
            return str(source["config"]) if source["config"] else None
    if environ.get(ENV_PREFIX + "CONFIG"):
        return environ[ENV_PREFIX + "CONFIG"]
    return DEFAULT_FILE if os.path.isfile(DEFAULT_FILE) else None


def build(cli: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
          **settings: Any) -> Config:
    """Defaults, then the config file, then the environment, then keyword
    settings, then the CLI: each later source wins."""
    cli = cli or {}
    environ = os.environ if environ is None else environ
    check_names(settings)
    path = _config_path(cli, settings, environ)
    values = from_file(path) if path is not None else {}
    values.update(from_environment(environ))
    values.update({k: convert(k, v) for k, v in settings.items()})
    values.update({k: convert(k, v) for k, v in cli.items()})
    values["config"] = path
    return validate(Config(**values))


def describe(config: Config) -> str:
    """Every setting and its value, one `name = value` line each."""
    width = max(map(len, SETTINGS))
    return "".join(f"{name:<{width}} = {getattr(config, name)!r}\n" for name in SETTINGS)


def settings_markdown() -> str:
    """docs/settings.md, made from the declarations above (a test keeps the
    file in sync: regenerate with `python -m twincorn.config > docs/settings.md`)."""
    lines = [
        "# Settings",
        "",
        "Generated from `src/twincorn/config.py`, where each setting is declared once;",
        "do not edit by hand (`python -m twincorn.config > docs/settings.md`).",
        "",
        "Each setting can be given as a `twincorn serve` flag, as an environment",
        f"variable `{ENV_PREFIX}<NAME>` (e.g. `{ENV_PREFIX}THREADS=4`), by its Python",
        "name in a config file (`-c twincorn.conf.py`: `threads = 4`), or by its",
        "Python name to `twincorn.run(app, name=value)`. A flag wins over the",
        "environment, which wins over the config file. Sizes accept `k`, `m` and",
        "`g` suffixes (`64k`, `100m`); durations are seconds or `30s`, `2m`, `250ms`.",
        "Server hooks are set in a config file only. gunicorn's and uvicorn's flags",
        "and what twincorn makes of them: [gunicorn-uvicorn.md](gunicorn-uvicorn.md).",
    ]
    section = None
    for name, f in SETTINGS.items():
        meta = f.metadata
        if meta["section"] != section:
            section = meta["section"]
            lines += ["", f"## {section}", "", "| setting | flag | default | meaning |",
                      "|---|---|---|---|"]
        hint = _HINTS[name]
        if meta["file_only"]:
            flag = "config file"
        elif meta["positional"]:
            flag = meta["metavar"]
        elif hint is bool:
            flag = f"`--{name.replace('_', '-')}` / `--no-{name.replace('_', '-')}`"
        else:
            flag = ", ".join(f"`{x}`" for x in flags_of(name))
        shown = shown_default(name)
        if not shown:
            shown = "—"
        elif shown != meta["shown"]:
            shown = f"`{shown}`"
        if get_origin(hint) is Literal:
            choices = ", ".join(get_args(hint))
            help_text = f"{meta['help']} One of: {choices}."
        else:
            help_text = meta["help"]
        escaped = help_text.replace("|", "\\|")
        lines.append(f"| `{name}` | {flag} | {shown} | {escaped} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(settings_markdown(), end="")
