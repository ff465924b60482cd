"""The opening handshake's rules (RFC 6455 section 4.2.1), checked once.

Both libraries check a handshake, but not the same rules, nor with the
same answers: wsproto takes a Sec-WebSocket-Key of any length (or two of
them), a second Sec-WebSocket-Version, and answers a POST with 400 where
websockets answers 405; websockets answers a version other than 13 with
400 and no Sec-WebSocket-Version, which section 4.4 requires. An upgrade
request here gets one answer whatever --ws names: `check` runs before the
backend sees it (core.opener), and the backend only parses what passed
(the subprotocols and extensions offered).

    rule (section 4.2.1)                    refusal
    1  a GET                                405, Allow: GET (RFC 9110 s15.5.6)
    1  HTTP/1.1 or later                    400
    3  Upgrade: websocket                   426, Upgrade: websocket (RFC 9110 s15.5.22)
    4  Connection: ... upgrade ...          426, Upgrade: websocket
    5  one Sec-WebSocket-Key, base64        400
       of 16 bytes
    6  one Sec-WebSocket-Version: 13        426, Sec-WebSocket-Version: 13 (s4.2.2, s4.4)
    8  Sec-WebSocket-Protocol: tokens       400 (wsproto would hand "a b" to the
                                            application as one subprotocol)

Both libraries want Upgrade to be "websocket" alone, where the RFC says
"containing": a list ("websocket, h2c") is refused, as they refuse it.
"""

from __future__ import annotations

import binascii
import re
from base64 import b64decode

from twincorn.http import Request
from twincorn.ws.core import Refusal

_UPGRADE_WEBSOCKET = ((b"Upgrade", b"websocket"),)
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 section 5.6.2


def check(request: Request) -> Refusal | None:
    """The refusal this upgrade request gets, or None if it is a valid
    WebSocket opening handshake (as far as its own fields go)."""
    if request.method != "GET":
        return Refusal(405, f"a WebSocket handshake is a GET, not a {request.method}",
                       ((b"Allow", b"GET"),))
    if request.http_version == "1.0":
        return Refusal(400, "a WebSocket handshake needs HTTP/1.1")
    upgrade = _values(request, b"upgrade")
    if [token.lower() for token in _tokens(upgrade)] != [b"websocket"]:
        return Refusal(426, "Upgrade must be websocket", _UPGRADE_WEBSOCKET)
    if b"upgrade" not in (token.lower() for token in _tokens(_values(request, b"connection"))):
        return Refusal(426, "Connection must list upgrade", _UPGRADE_WEBSOCKET)
    keys = _values(request, b"sec-websocket-key")
    if len(keys) != 1 or not _valid_key(keys[0]):
        return Refusal(400, "Sec-WebSocket-Key must be one base64 value of 16 bytes"
                       if keys else "Sec-WebSocket-Key missing")
    if _values(request, b"sec-websocket-version") != [b"13"]:
        return Refusal(426, "Sec-WebSocket-Version must be 13",
                       ((b"Sec-WebSocket-Version", b"13"),))
    for protocol in _tokens(_values(request, b"sec-websocket-protocol")):
        if _TOKEN.fullmatch(protocol) is None:
            return Refusal(400, "Sec-WebSocket-Protocol must list tokens")
    return None


def _values(request: Request, name: bytes) -> list[bytes]:
    """The values of the field `name` (lower-case), in order."""
    return [value for field, value in request.headers if field == name]


def _tokens(values: list[bytes]) -> list[bytes]:
    """The comma-separated tokens of a field's values (RFC 9110 s5.6.1)."""
    return [token.strip() for value in values for token in value.split(b",") if token.strip()]


def _valid_key(key: bytes) -> bool:
    # Section 4.1 item 7: a nonce of 16 random bytes, base64-encoded (24
    # characters with their padding).
    try:
        return len(b64decode(key, validate=True)) == 16
    except binascii.Error:
        return False
