"""Raw WebSocket frames for the tests, written by hand (RFC 6455 section 5.2).

A client library refuses to send most of what the tests need (unmasked
frames, reserved bits, unknown opcodes, fragmented or oversized control
frames, invalid close codes), so the frames are built here, bit by bit, and
read back the same way (`parse_frames`: the server's frames, unmasked).

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-------+-+-------------+-------------------------------+
    |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
    |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
    |N|V|V|V|       |S|             |   (if payload len==126/127)   |
    | |1|2|3|       |K|             |                               |
    +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
    |     Extended payload length continued, if payload len == 127  |
    + - - - - - - - - - - - - - - - +-------------------------------+
    |                               | Masking-key, if MASK set to 1 |
    +-------------------------------+-------------------------------+
    | Masking-key (continued)       |          Payload Data         |
    +-------------------------------- - - - - - - - - - - - - - - - +
"""

from __future__ import annotations

import base64
import functools
import hashlib
import random
import struct
import zlib
from dataclasses import dataclass

CONT, TEXT, BINARY = 0x0, 0x1, 0x2
CLOSE, PING, PONG = 0x8, 0x9, 0xA

RSV1, RSV2, RSV3 = 0x40, 0x20, 0x10

#: The RFC's example key (section 1.3) and its accept value.
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
MASK = b"\x37\xfa\x21\x3d"  # the RFC's example masking key (section 5.7)
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_value(key: str) -> str:
    """Sec-WebSocket-Accept for `key` (RFC 6455 section 4.2.2 item 5.4)."""
    digest = hashlib.sha1(key.encode("ascii") + _GUID).digest()
    return base64.b64encode(digest).decode("ascii")


def masked(payload: bytes, key: bytes) -> bytes:
    """The payload XORed with the 4-byte key, octet i with key[i % 4]
    (section 5.3); masking twice gives the payload back."""
    if not payload:
        return b""
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(payload), "big")


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
          mask: bytes | None = MASK, length_bits: int | None = None) -> bytes:
    """One frame. `mask=None` sends it unmasked (a server's frame; from a
    client, a protocol error). `length_bits` (7, 16 or 64) forces the form
    of the length; by default the smallest that holds it, as section 5.2
    asks of a sender."""
    first = (0x80 if fin else 0) | rsv | opcode
    size = len(payload)
    if length_bits is None:
        length_bits = 7 if size < 126 else 16 if size < 1 << 16 else 64
    mask_bit = 0x80 if mask is not None else 0
    if length_bits == 7:
        assert size < 126
        head = struct.pack("!BB", first, mask_bit | size)
    elif length_bits == 16:
        head = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, size)
    if mask is None:
        return head + payload
    return head + mask + masked(payload, mask)


def close_payload(code: int | None = None, reason: bytes = b"") -> bytes:
    """A close frame's body: a 2-byte code, then the UTF-8 reason (section 5.5.1)."""
    if code is None:
        return reason
    return struct.pack("!H", code) + reason


def close(code: int | None = None, reason: bytes = b"", **options: object) -> bytes:
    return frame(CLOSE, close_payload(code, reason), **options)  # type: ignore[arg-type]


def text(data: str | bytes, **options: object) -> bytes:
    payload = data.encode("utf-8") if isinstance(data, str) else data
    return frame(TEXT, payload, **options)  # type: ignore[arg-type]


def binary(data: bytes, **options: object) -> bytes:
    return frame(BINARY, data, **options)  # type: ignore[arg-type]


def fragments(opcode: int, pieces: list[bytes], **options: object) -> bytes:
    """One message in len(pieces) frames: `opcode` first, continuations after."""
    out = []
    for i, piece in enumerate(pieces):
        out.append(frame(opcode if i == 0 else CONT, piece, fin=i == len(pieces) - 1,
                         **options))  # type: ignore[arg-type]
    return b"".join(out)


def deflated(data: bytes) -> bytes:
    """A message's payload compressed as permessage-deflate sends it (RFC
    7692 section 7.2.1): raw DEFLATE, flushed, without its last 4 bytes
    (00 00 ff ff)."""
    compressor = zlib.compressobj(wbits=-15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


class Deflater:
    """One sender's compression context across messages (context takeover,
    RFC 7692 section 7.2.1): a later message may refer to an earlier one."""

    def __init__(self) -> None:
        self._compressor = zlib.compressobj(wbits=-15)

    def message(self, data: bytes) -> bytes:
        out = self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        return out[:-4]


@functools.cache
def bomb(size: int) -> bytes:
    """`size` bytes of zeros deflated (a thousandth of it, about): a small
    frame that inflates to much more than a server would hold."""
    compressor = zlib.compressobj(wbits=-15)
    chunk = bytes(1 << 20)
    parts = [compressor.compress(chunk) for _ in range(size >> 20)]
    parts.append(compressor.compress(bytes(size & ((1 << 20) - 1))))
    parts.append(compressor.flush(zlib.Z_SYNC_FLUSH))
    return b"".join(parts)[:-4]


def inflate_server(payloads: list[bytes]) -> list[bytes]:
    """The server's compressed messages inflated, in order, with one
    context (its default: context takeover)."""
    inflater = zlib.decompressobj(wbits=-15)
    return [inflater.decompress(p + b"\x00\x00\xff\xff") for p in payloads]


@dataclass(frozen=True)
class Frame:
    """A frame the server sent, as read back."""

    fin: bool
    rsv: int
    opcode: int
    masked: bool
    payload: bytes

    @property
    def close_code(self) -> int | None:
        assert self.opcode == CLOSE
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    @property
    def close_reason(self) -> bytes:
        return self.payload[2:]


def parse_frames(data: bytes) -> tuple[list[Frame], bytes]:
    """The whole frames in `data`, and what is left (an unfinished one)."""
    frames = []
    at = 0
    while len(data) - at >= 2:
        first, second = data[at], data[at + 1]
        size = second & 0x7F
        head = 2
        if size == 126:
            if len(data) - at < 4:
                break
            size = struct.unpack_from("!H", data, at + 2)[0]
            head = 4
        elif size == 127:
            if len(data) - at < 10:
                break
            size = struct.unpack_from("!Q", data, at + 2)[0]
            head = 10
        is_masked = bool(second & 0x80)
        key = b""
        if is_masked:
            key = data[at + head: at + head + 4]
            head += 4
        if len(data) - at < head + size:
            break
        payload = data[at + head: at + head + size]
        if is_masked:
            payload = masked(payload, key)
        frames.append(Frame(bool(first & 0x80), first & 0x70, first & 0x0F, is_masked, payload))
        at += head + size
    return frames, data[at:]


def splits(data: bytes, seed: int) -> list[bytes]:
    """`data` cut at random places (seeded): pieces of 1 to 8 bytes mostly,
    now and then a longer one."""
    rng = random.Random(seed)
    pieces = []
    at = 0
    while at < len(data):
        step = rng.randint(1, 8) if rng.random() < 0.8 else rng.randint(9, 300)
        pieces.append(data[at: at + step])
        at += step
    return pieces


def handshake_head(path: str = "/echo", *extra: str, key: str = KEY,
                   method: str = "GET", version: str = "13",
                   connection: str = "Upgrade", upgrade: str = "websocket") -> bytes:
    """A client's opening handshake (section 4.1), fields left out when
    given as ""."""
    fields = [("Host", "localhost"), ("Upgrade", upgrade), ("Connection", connection),
              ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", version)]
    lines = [f"{method} {path} HTTP/1.1"]
    lines.extend(f"{name}: {value}" for name, value in fields if value)
    lines.extend(extra)
    return ("\r\n".join([*lines, "", ""])).encode("latin-1")
