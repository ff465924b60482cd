"""Every setting, declared once, and what reads them.

Each field of `Config` is one setting, declared in `twincorn/settings/`: its
type (the annotation), default, help text, section and command-line flags
come from that one declaration.
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
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from twincorn import peer_flags
from twincorn.address import DEFAULT_BIND, DEFAULT_PORT, AddressError, parse_address
from twincorn.config_file import DEFAULT_FILE, ConfigFileError, read_config_file
from twincorn.extras import install_hint
from twincorn.http import RequestPolicy
from twincorn.settings.application import ApplicationSettings
from twincorn.settings.connections import ConnectionSettings
from twincorn.settings.development import DevelopmentSettings
from twincorn.settings.forwarded import ForwardedSettings
from twincorn.settings.hooks import HookSettings
from twincorn.settings.http import HttpSettings
from twincorn.settings.listening import ListenSettings
from twincorn.settings.logs import LogSettings
from twincorn.settings.processes import ProcessSettings
from twincorn.settings.proxy_protocol import ProxyProtocolSettings
from twincorn.settings.tls import TlsSettings
from twincorn.settings.websockets import WebSocketSettings
from twincorn.trusted import TrustedPeers, TrustError
from twincorn.units import format_duration, format_size, parse_duration, parse_size

ENV_PREFIX = "TWINCORN_"
#: gunicorn's and uvicorn's environment variable for --forwarded-allow-ips
#: (TWINCORN_FORWARDED_ALLOW_IPS wins over it).
PEER_FORWARDED_ENV = "FORWARDED_ALLOW_IPS"
#: How a master re-executed by USR2 learns its predecessor's sockets: a
#: comma-separated list of inherited file descriptors (server/listener.py).
#: Not a setting, though it shares the prefix.
UPGRADE_ENV = ENV_PREFIX + "FDS"
_NO_LIMIT = sys.maxsize  # the core's own defaults, so that both agree


@dataclass(frozen=True, slots=True)
class Config(
    HookSettings,
    DevelopmentSettings,
    LogSettings,
    ProxyProtocolSettings,
    TlsSettings,
    ForwardedSettings,
    WebSocketSettings,
    HttpSettings,
    ConnectionSettings,
    ListenSettings,
    ProcessSettings,
    ApplicationSettings,
):
    """The settings of `twincorn serve` (and of `twincorn.run`): every group
    of `twincorn/settings/`, the first listed here coming last in --help."""

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
    meta = SETTINGS[name].metadata
    if meta["parse"] is not None:
        return _reader(name.replace("_", " "), meta["parse"])
    unit = meta["unit"]
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
    parse = SETTINGS[name].metadata["parse"]
    if parse is not None and isinstance(value, str | int):
        try:
            return parse(value)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}", name) from None
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
    if default in (None, ()) or default == "" or f.metadata["shown"]:
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
    try:
        TrustedPeers(config.proxy_allow_ips)
    except TrustError as exc:
        raise ConfigError(f"proxy_allow_ips: {exc}", "proxy_allow_ips") from None
    _check_binds(config)
    _check_tls(config)
    return _check_forwarded(config)


def _check_forwarded(config: Config) -> Config:
    """--forwarded-allow-ips read once, here: a bad entry is one line at
    start. A list (from a config file or twincorn.run) becomes its text."""
    value: Any = config.forwarded_allow_ips
    if not isinstance(value, str):
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"forwarded_allow_ips: expected a comma-separated list of "
                              f"addresses, got {value!r}", "forwarded_allow_ips")
        config = dataclasses.replace(config, forwarded_allow_ips=",".join(value))
    try:
        TrustedPeers(config.forwarded_allow_ips)
    except TrustError as exc:
        raise ConfigError(f"forwarded_allow_ips: {exc}", "forwarded_allow_ips") from None
    return config


def _check_tls(config: Config) -> None:
    """The TLS settings that need others (the files are read later, by
    server/tls_context.py, in the master)."""
    if not config.certfile:
        for name in ("keyfile", "keyfile_password", "ca_certs", "ciphers"):
            if getattr(config, name):
                raise ConfigError(f"{name}: TLS needs a certificate: give --certfile too", name)
        if config.cert_reqs != "none":
            raise ConfigError("cert_reqs: client certificates need TLS: give --certfile too",
                              "cert_reqs")
    elif config.cert_reqs != "none" and not config.ca_certs:
        raise ConfigError(f"cert_reqs: {config.cert_reqs} client certificates are checked "
                          "against --ca-certs: give it too", "cert_reqs")


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
    WEB_CONCURRENCY, the platforms' name for the number of workers, and
    FORWARDED_ALLOW_IPS, gunicorn's and uvicorn's; TWINCORN_* win)."""
    environ = os.environ if environ is None else environ
    found: dict[str, Any] = {}
    if environ.get("WEB_CONCURRENCY"):
        found["workers"] = convert("workers", environ["WEB_CONCURRENCY"])
    if environ.get(PEER_FORWARDED_ENV):
        found["forwarded_allow_ips"] = environ[PEER_FORWARDED_ENV]
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
        "Generated from `src/twincorn/settings/`, where each setting is declared once;",
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
