"""Settings: one declaration, many ways in; and docs/settings.md in sync."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from twincorn import config, units
from twincorn.cli import make_parser, subcommands

ROOT = Path(__file__).resolve().parent.parent


def test_settings_doc_is_in_sync() -> None:
    text = (ROOT / "docs" / "settings.md").read_text()
    assert text == config.settings_markdown(), (
        "docs/settings.md is stale: python -m twincorn.config > docs/settings.md"
    )


def test_every_setting_has_a_flag_and_help_with_its_default_once() -> None:
    serve = subcommands(make_parser())["serve"]
    help_text = serve.format_help()
    flagged = [n for n, f in config.SETTINGS.items()
               if not f.metadata["positional"] and not f.metadata["file_only"]]
    actions = {a.dest: a for a in serve._actions if a.help != argparse.SUPPRESS}
    for name in flagged:
        assert "--" + name.replace("_", "-") in help_text, name
        text = str(actions[name].help)
        shown = config.shown_default(name)
        # The declaration is the one source: the help text names no default of its own.
        assert text.lower().count("default") == (1 if shown else 0), (name, text)
        if shown:
            assert text.endswith(f"[default: {shown}]".replace("%", "%%")), (name, text)
    assert "[default: none]" not in help_text and "104857600" not in help_text


def test_flags_read_what_help_shows() -> None:
    """A default shown as 100m or 30s is also what the flag accepts."""
    serve = subcommands(make_parser())["serve"]
    for name in ("limit_request_body", "timeout", "timeout_send", "wsgi_spool_size"):
        args = vars(serve.parse_args(["--" + name.replace("_", "-"), config.shown_default(name)]))
        assert config.build(cli=args, environ={}) == config.build(environ={})


def test_serve_help_hides_gunicorns_t_but_takes_it() -> None:
    serve = subcommands(make_parser())["serve"]
    assert "-t TIME" not in serve.format_help()
    assert config.build(cli=vars(serve.parse_args(["-t", "5"])), environ={}).timeout == 5


def test_defaults_and_binds() -> None:
    c = config.build(environ={})
    assert c.binds == ("127.0.0.1:8000",)
    assert c.threads == 1 and c.limit_request_line == 4094
    assert config.build(environ={}, host="::1", port=9000).binds == ("[::1]:9000",)
    assert config.build(environ={}, port=9000).binds == ("127.0.0.1:9000",)
    assert config.build(environ={}, bind=["unix:/tmp/x.sock"]).binds == ("unix:/tmp/x.sock",)


def test_environment_then_keywords_then_cli() -> None:
    env = {
        "TWINCORN_THREADS": "4",
        "TWINCORN_ACCESS_LOG": "off",
        "TWINCORN_LIMIT_REQUEST_BODY": "2m",
    }
    c = config.build(environ=env)
    assert c.threads == 4 and c.access_log is False and c.limit_request_body == 2 << 20
    assert config.build(environ=env, threads=2).threads == 2
    assert config.build(cli={"threads": 8}, environ=env, threads=2).threads == 8


def test_cli_parsing() -> None:
    args = vars(make_parser().parse_args(
        ["serve", "app:app", "-b", "127.0.0.1:1", "-b", "[::1]:2", "--threads", "3",
         "--no-access-log", "--limit-request-body", "64k", "--interface", "wsgi"]
    ))
    args.pop("command")
    c = config.build(cli=args, environ={})
    assert c.app == "app:app"
    assert c.bind == ("127.0.0.1:1", "[::1]:2")
    assert c.threads == 3 and c.access_log is False and c.limit_request_body == 65536
    assert c.interface == "wsgi"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"thread": 2}, "did you mean 'threads'"),
        ({"interface": "cgi"}, "not one of"),
        ({"threads": 0}, "at least 1"),
        ({"timeout_keep_alive": -1}, "negative"),
        ({"threads": "many"}, "threads"),
        ({"proxy_allow_ips": "10.0.0.0/8,10.0.0.300"}, r"proxy_allow_ips: '10.0.0.300' is not"),
    ],
)
def test_bad_settings(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(config.ConfigError, match=message):
        config.build(environ={}, **settings)


def test_unknown_environment_variable() -> None:
    with pytest.raises(config.ConfigError, match="TWINCORN_THREADS"):
        config.build(environ={"TWINCORN_THREAD": "2"})


def test_sizes() -> None:
    assert units.parse_size("8190") == 8190
    assert units.parse_size("64k") == 65536
    assert units.parse_size("1MiB") == 1 << 20
    with pytest.raises(ValueError):
        units.parse_size("lots")
    for size, text in ((4094, "4094"), (64 << 10, "64k"), (100 << 20, "100m"),
                       (2 << 30, "2g"), (0, "0"), (1536, "1536")):
        assert units.format_size(size) == text and units.parse_size(text) == size


def test_durations() -> None:
    for seconds, text in ((30.0, "30s"), (90.0, "1m30s"), (3600.0, "1h"), (0.25, "250ms"),
                          (0.0, "0"), (1.5, "1.5s"), (4200.0, "1h10m")):
        assert units.format_duration(seconds) == text
        assert units.parse_duration(text) == seconds
    with pytest.raises(ValueError, match="expected a duration"):
        units.parse_duration("soon")


def test_zero_means_no_limit() -> None:
    policy = config.build(
        environ={}, limit_request_line=0, limit_request_fields=0,
        limit_request_field_size=0, limit_request_head=0, limit_request_body=0,
    ).request_policy()
    assert min(policy.limit_request_line, policy.limit_request_fields,
               policy.limit_request_field_size, policy.limit_request_head) > 1 << 40
    assert policy.limit_request_body == 0  # the core reads 0 as no limit


def test_policy_follows_settings() -> None:
    c = config.build(environ={}, require_host=False, limit_request_fields=5)
    policy = c.request_policy()
    assert policy.require_host is False and policy.limit_request_fields == 5


def test_proxy_protocol_settings() -> None:
    c = config.build(environ={})
    assert c.proxy_protocol is False and c.proxy_allow_ips == "127.0.0.1,::1,unix"
    c = config.build(environ={"TWINCORN_PROXY_PROTOCOL": "1",
                              "TWINCORN_PROXY_ALLOW_IPS": "10.0.0.0/8"})
    assert c.proxy_protocol is True and c.proxy_allow_ips == "10.0.0.0/8"


def test_forwarded_allow_ips_from_the_peers_environment_variable() -> None:
    from twincorn.trusted import DEFAULT

    assert config.build(environ={}).forwarded_allow_ips == DEFAULT
    peers = {"FORWARDED_ALLOW_IPS": "10.0.0.1"}
    assert config.build(environ=peers).forwarded_allow_ips == "10.0.0.1"
    both = {**peers, "TWINCORN_FORWARDED_ALLOW_IPS": "10.0.0.2"}
    assert config.build(environ=both).forwarded_allow_ips == "10.0.0.2"
    flag = {"forwarded_allow_ips": "10.0.0.3"}
    assert config.build(cli=flag, environ=both).forwarded_allow_ips == "10.0.0.3"
    listed = config.build(environ={}, forwarded_allow_ips=["10.0.0.1", "fd00::/8"])
    assert listed.forwarded_allow_ips == "10.0.0.1,fd00::/8"
    with pytest.raises(config.ConfigError, match=r"'10\.0\.0\.0/33' is not a network"):
        config.build(environ={"FORWARDED_ALLOW_IPS": "10.0.0.0/33"})
    with pytest.raises(config.ConfigError, match="forwarded_allow_ips: expected"):
        config.build(environ={}, forwarded_allow_ips=3)
