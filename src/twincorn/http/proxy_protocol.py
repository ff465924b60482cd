"""The PROXY protocol header, versions 1 and 2: sans-IO, like the rest of http/.

A load balancer that relays TCP (HAProxy's `send-proxy`/`send-proxy-v2`, AWS
NLB and ELB, GCP's TCP/SSL proxies) opens its own connection to us, so the
socket's peer is the balancer. The PROXY protocol has it write, before any
byte of the client's, one header saying who the client was. The spec is
HAProxy's proxy-protocol.txt (2020/03/05, shipped by Debian's haproxy as
/usr/share/doc/haproxy/proxy-protocol.txt.gz); sections cited below are its.

Theory of operation
-------------------
`ProxyHeaderReader.feed(data)` is given the connection's bytes as they come
and answers one of three things:

    None                 need more: the header is not complete yet
    ProxyHeader          done: what it says, and `length`, the bytes of the
                         stream it took; `rest` holds what followed (HTTP)
    ProxyHeaderError     malformed (raised), with why: the connection is to
                         be closed, nothing served (section 2.1: "Any sequence
                         which does not exactly match the protocol must be
                         discarded and cause the receiver to abort")

What comes first decides the version (section 2.2, "Identifying the protocol
version"): the 12-byte v2 signature, or "PROXY " for v1. A first byte that
cannot begin either is refused at once, not after a wait: a receiver
configured for the protocol must not guess whether it is there (section 2).

A header's addresses are its `source` (the client) and `destination` (the
address the client connected to), or None for both when the header says
to keep the socket's own (`kind`): v1 UNKNOWN (section 2.1), v2 LOCAL
(a health check by the proxy itself), and the v2 families a TCP server has
no use for: UNSPEC, AF_UNIX, and UDP (section 2.2 allows a receiver to fall
back to UNSPEC for the valid ones it does not implement).

Bounds, so that a sender cannot make us buffer or read without end:
v1's line is refused without a CRLF in its first 107 bytes (section 2.1);
v2's length field is refused above MAX_V2_LENGTH before its bytes are
awaited; every TLV's length is checked against the header's length, and
a TLV that would run past it is refused (section 2.2: the TLVs are only
skipped here, never interpreted; CRC32C is not checked, since a receiver
that does not support the checksum need not, section 2.2.3).

Why not a library: PyPI's `proxy-protocol` (one maintainer, no release
since April 2024) reads from asyncio streams, not from bytes we hand it,
and `pwho` knows v1 only (2014). The format is two fixed layouts; the
bounds above are the part that matters, and they are ours to state.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass

#: Section 2.2: the 12 bytes a v2 header begins with.
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
#: Section 2.1: the longest v1 line ("PROXY UNKNOWN" with two full IPv6
#: addresses and ports), its CRLF included.
V1_MAX_LINE = 107
#: The most bytes a v2 header may declare after its first 16. Section 2.2
#: allows 65535; what a balancer sends is 12 or 36 bytes of addresses (216
#: for AF_UNIX) and a few TLVs (HAProxy's ALPN, authority, unique id and TLS
#: ones, AWS's VPC endpoint id, Azure's link id): well under this.
MAX_V2_LENGTH = 4096
_V2_FIXED = 16  # signature, version and command, family and transport, length

# Section 2.1: no leading zeroes in front of a port.
_PORT = re.compile(rb"0|[1-9][0-9]{0,4}")
# Section 2.2: the address block's size for each family (the high nibble):
# AF_UNSPEC, AF_INET, AF_INET6, AF_UNIX.
_ADDRESS_SIZE = (0, 12, 36, 216)
_INET, _INET6 = 1, 2
_STREAM = 1
_LOCAL, _PROXY = 0, 1

Address = tuple[str, int]


class ProxyHeaderError(ValueError):
    """A PROXY header that is malformed, or absent where one is required."""


class HeaderKind(enum.Enum):
    """What a header says of the connection."""

    TCP = "tcp"  # relayed TCP over IPv4 or IPv6: source and destination given
    UNKNOWN = "unknown"  # v1 UNKNOWN: the socket's own endpoints stay
    LOCAL = "local"  # v2 LOCAL, the proxy's own connection: the socket's stay
    UNSUPPORTED = "unsupported"  # v2 UNSPEC, AF_UNIX or UDP: the socket's stay


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """One header, read."""

    version: int  # 1 or 2
    kind: HeaderKind
    length: int  # bytes of the stream the header took
    source: Address | None = None  # the client (TCP only)
    destination: Address | None = None  # where the client connected (TCP only)


class ProxyHeaderReader:
    """Reads one header from bytes fed as they come (see the module's docstring)."""

    __slots__ = ("_buffer", "rest")

    def __init__(self) -> None:
        self._buffer = b""
        self.rest = b""  # after a header is done: the bytes that followed it

    @property
    def pending(self) -> int:
        """Bytes received of a header not yet whole."""
        return len(self._buffer)

    def feed(self, data: bytes) -> ProxyHeader | None:
        buffer = self._buffer + data if self._buffer else data
        header = parse_header(buffer)
        if header is None:
            self._buffer = buffer
            return None
        self._buffer = b""
        self.rest = buffer[header.length:]
        return header


def parse_header(data: bytes) -> ProxyHeader | None:
    """The header at the start of `data`; None if more bytes are needed.
    Raises ProxyHeaderError if `data` cannot begin a valid header."""
    if V2_SIGNATURE.startswith(data[:len(V2_SIGNATURE)]):
        return None if len(data) < _V2_FIXED else _parse_v2(data)
    if V1_PREFIX.startswith(data[:len(V1_PREFIX)]):
        return None if len(data) < len(V1_PREFIX) else _parse_v1(data)
    # The first byte that begins neither: the same whichever way the bytes came.
    for signature in (V2_SIGNATURE, V1_PREFIX):
        if data[:1] == signature[:1]:
            at = next(i for i, byte in enumerate(data) if byte != signature[i])
            break
    else:
        at = 0
    raise ProxyHeaderError(f"no PROXY protocol header (the connection began "
                           f"{data[:at + 1]!r}, which begins neither {V1_PREFIX!r} nor "
                           "the v2 signature)")


# -- version 1: one line of text (section 2.1) --------------------------------


def _parse_v1(data: bytes) -> ProxyHeader | None:
    end = data.find(b"\r\n", 0, V1_MAX_LINE)
    if end < 0:
        if b"\n" in data[:V1_MAX_LINE]:
            raise ProxyHeaderError("PROXY v1 line ended by LF without CR")
        if len(data) >= V1_MAX_LINE:
            raise ProxyHeaderError(f"PROXY v1 line without CRLF in its first {V1_MAX_LINE} bytes")
        return None
    line = data[:end]
    if b"\n" in line:
        raise ProxyHeaderError("PROXY v1 line ended by LF without CR")
    fields = line.split(b" ")
    protocol = fields[1]
    if protocol == b"UNKNOWN":
        # "the receiver must ignore anything presented before the CRLF"
        return ProxyHeader(1, HeaderKind.UNKNOWN, end + 2)
    if protocol not in (b"TCP4", b"TCP6"):
        raise ProxyHeaderError(f"PROXY v1 protocol {protocol[:16]!r} is not TCP4, TCP6 or UNKNOWN")
    if len(fields) != 6:
        raise ProxyHeaderError(
            f"PROXY v1 {protocol.decode()} line has {len(fields) - 2} fields after it, not 4 "
            "(source and destination address, source and destination port, one space apart)")
    version = 4 if protocol == b"TCP4" else 6
    source = (_v1_address(fields[2], version), _v1_port(fields[4]))
    destination = (_v1_address(fields[3], version), _v1_port(fields[5]))
    return ProxyHeader(1, HeaderKind.TCP, end + 2, source, destination)


def _v1_address(field: bytes, version: int) -> str:
    # ipaddress refuses IPv4's leading zeroes, as section 2.1 does; a zone
    # ("%eth0") is no part of the format.
    try:
        text = field.decode("ascii")
        if "%" in text:
            raise ValueError(text)
        address = (ipaddress.IPv4Address(text) if version == 4 else ipaddress.IPv6Address(text))
    except ValueError:
        raise ProxyHeaderError(f"PROXY v1 address {field[:45]!r} is not IPv{version}") from None
    return str(address)


def _v1_port(field: bytes) -> int:
    if _PORT.fullmatch(field) is None or int(field) > 65535:
        raise ProxyHeaderError(f"PROXY v1 port {field[:16]!r} is not 0 to 65535 "
                               "(decimal, no leading zero)")
    return int(field)


# -- version 2: binary (section 2.2) -------------------------------------------


def _parse_v2(data: bytes) -> ProxyHeader | None:
    version, command = data[12] >> 4, data[12] & 0x0F
    if version != 2:
        raise ProxyHeaderError(f"PROXY v2 header with version {version}, not 2")
    if command not in (_LOCAL, _PROXY):
        raise ProxyHeaderError(f"PROXY v2 command {command} is neither LOCAL (0) nor PROXY (1)")
    length = int.from_bytes(data[14:16], "big")
    if length > MAX_V2_LENGTH:
        raise ProxyHeaderError(f"PROXY v2 header declares {length} bytes, over {MAX_V2_LENGTH}")
    total = _V2_FIXED + length
    if len(data) < total:
        return None
    if command == _LOCAL:
        # "discard the protocol block including the family which is ignored"
        return ProxyHeader(2, HeaderKind.LOCAL, total)
    family, transport = data[13] >> 4, data[13] & 0x0F
    if family >= len(_ADDRESS_SIZE) or transport > 2:
        raise ProxyHeaderError(f"PROXY v2 family and transport byte {data[13]:#04x} is unassigned")
    if family == 0:
        # AF_UNSPEC: "The receiver should ignore address information", and
        # with no address size there is no telling where TLVs would begin.
        return ProxyHeader(2, HeaderKind.UNSUPPORTED, total)
    block = memoryview(data)[_V2_FIXED:total]
    size = _ADDRESS_SIZE[family]
    if length < size:
        raise ProxyHeaderError(f"PROXY v2 header declares {length} bytes, fewer than the "
                               f"{size} of its addresses")
    _check_tlvs(block, size)
    if family not in (_INET, _INET6) or transport != _STREAM:
        return ProxyHeader(2, HeaderKind.UNSUPPORTED, total)
    width = 4 if family == _INET else 16
    ip = ipaddress.IPv4Address if family == _INET else ipaddress.IPv6Address
    ports = 2 * width
    source = (str(ip(bytes(block[:width]))), int.from_bytes(block[ports:ports + 2], "big"))
    destination = (str(ip(bytes(block[width:ports]))),
                   int.from_bytes(block[ports + 2:ports + 4], "big"))
    return ProxyHeader(2, HeaderKind.TCP, total, source, destination)


def _check_tlvs(block: memoryview, start: int) -> None:
    """Walk the TLVs after the addresses (type: 1 byte, length: 2), each
    within the header's length; none is interpreted."""
    at, end = start, len(block)
    while at < end:
        if end - at < 3:
            raise ProxyHeaderError(f"PROXY v2 TLV cut short: {end - at} bytes left of a "
                                   "3-byte type and length")
        size = int.from_bytes(block[at + 1:at + 3], "big")
        at += 3 + size
        if at > end:
            raise ProxyHeaderError(f"PROXY v2 TLV of type {block[at - 3 - size]:#04x} runs "
                                   f"{at - end} bytes past the header's end")
