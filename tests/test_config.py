"""Settings: one declaration, many ways in; and docs/settings.md in sync."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from twincorn import config
from twincorn.cli import make_parser

ROOT = Path(__file__).resolve().parent.parent


def test_settings_doc_is_in_sync() -> None:
    text = (ROOT / "docs" / "settings.md").read_text()
    assert text == config.settings_markdown(), (
        "docs/settings.md is stale: python -m twincorn.config > docs/settings.md"
    )


def test_every_setting_has_a_flag_and_help_with_default() -> None:
    subparsers = make_parser()._subparsers
    assert subparsers is not None
    serve = subparsers._group_actions[0].choices["serve"]  # type: ignore[index]
    help_text = serve.format_help()
    flagged = [n for n, f in config.SETTINGS.items()
               if not f.metadata["positional"] and not f.metadata["file_only"]]
    for name in flagged:
        assert "--" + name.replace("_", "-") in help_text, name
    assert help_text.count("[default:") >= len(flagged)


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
    ],
)
def test_bad_settings(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(config.ConfigError, match=message):
        config.build(environ={}, **settings)


def test_unknown_environment_variable() -> None:
    with pytest.raises(config.ConfigError, match="TWINCORN_THREADS"):
        config.build(environ={"TWINCORN_THREAD": "2"})


def test_sizes() -> None:
    assert config.parse_size("8190") == 8190
    assert config.parse_size("64k") == 65536
    assert config.parse_size("1MiB") == 1 << 20
    with pytest.raises(ValueError):
        config.parse_size("lots")


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
