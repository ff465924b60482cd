"""The trusted-peers lists (src/twincorn/trusted.py), fed text."""

from __future__ import annotations

import pytest

from twincorn.trusted import DEFAULT, TrustedPeers, TrustError


def test_default_trusts_loopback_and_unix_only() -> None:
    trusted = TrustedPeers(DEFAULT)
    assert "127.0.0.1" in trusted
    assert "::1" in trusted
    assert None in trusted  # a unix: socket's peer
    assert "127.0.0.2" not in trusted
    assert "10.0.0.1" not in trusted
    assert "::ffff:127.0.0.1" in trusted  # what a dual-stack socket reports


def test_networks_of_both_families() -> None:
    trusted = TrustedPeers("10.0.0.0/8, fd00::/8")
    assert "10.1.2.3" in trusted
    assert "11.0.0.1" not in trusted
    assert "fd12::1" in trusted
    assert "fe80::1" not in trusted
    assert "::ffff:10.9.9.9" in trusted
    assert None not in trusted


def test_everyone_and_lists() -> None:
    assert "203.0.113.9" in TrustedPeers("*")
    assert None in TrustedPeers(["*"])
    trusted = TrustedPeers(["192.0.2.1,192.0.2.2", "2001:db8::1"])
    assert "192.0.2.2" in trusted and "2001:db8::1" in trusted
    assert "2001:db8:0:0::1" in trusted  # spelled another way
    assert "not an address" not in trusted
    assert not TrustedPeers("")


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "example.com", "1.2.3", "fd00::/200"])
def test_bad_entries_are_named(bad: str) -> None:
    with pytest.raises(TrustError, match=repr(bad).replace("[", r"\[").replace(".", r"\.")):
        TrustedPeers(f"127.0.0.1,{bad}")
