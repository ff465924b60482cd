"""The PROXY protocol header reader (src/twincorn/http/proxy_protocol.py), fed bytes.

Every header is fed whole, byte by byte and in random pieces, with HTTP
after it: each way must give the same header and leave the same rest.
Sections are those of HAProxy's proxy-protocol.txt.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator

import pytest

from twincorn.http.proxy_protocol import (
    MAX_V2_LENGTH,
    V1_MAX_LINE,
    V2_SIGNATURE,
    HeaderKind,
    ProxyHeader,
    ProxyHeaderError,
    ProxyHeaderReader,
    parse_header,
)

HTTP = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def v2(command: int = 1, family: int = 0x11, block: bytes = b"", *, version: int = 2,
       length: int | None = None) -> bytes:
    """A v2 header: signature, version/command, family/transport, length, block."""
    size = len(block) if length is None else length
    return V2_SIGNATURE + bytes([version << 4 | command, family]) + struct.pack("!H", size) + block


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


IPV4_BLOCK = bytes([192, 0, 2, 1, 198, 51, 100, 7]) + struct.pack("!HH", 56324, 443)
IPV6_BLOCK = (bytes.fromhex("20010db8000000000000000000000001")
              + bytes.fromhex("20010db80000000000000000000000ff") + struct.pack("!HH", 1, 65535))


def ways(data: bytes) -> Iterator[tuple[str, list[bytes]]]:
    yield "whole", [data]
    yield "byte by byte", [data[i:i + 1] for i in range(len(data))]
    for seed in range(5):
        rng = random.Random(seed)
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 8))))
        yield f"seed {seed}", [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)],
                                                          strict=True)]


def read(pieces: list[bytes]) -> tuple[ProxyHeader, bytes]:
    """Feed until the header is done; the header and every byte after it."""
    reader = ProxyHeaderReader()
    for i, piece in enumerate(pieces):
        header = reader.feed(piece)
        if header is not None:
            return header, reader.rest + b"".join(pieces[i + 1:])
    raise AssertionError("the header never completed")


def read_every_way(data: bytes) -> tuple[ProxyHeader, bytes]:
    results = [(how, read(pieces)) for how, pieces in ways(data)]
    for how, result in results[1:]:
        assert result == results[0][1], f"fed {how} differs from fed whole"
    return results[0][1]


def refused_every_way(data: bytes) -> str:
    """The reason, the same whichever way `data` is split (or None: it waits)."""
    reasons = set()
    for _, pieces in ways(data):
        reader = ProxyHeaderReader()
        with pytest.raises(ProxyHeaderError) as info:
            for piece in pieces:
                assert reader.feed(piece) is None
        reasons.add(str(info.value))
    assert len(reasons) == 1, reasons
    return reasons.pop()


# -- version 1 (section 2.1) ------------------------------------------------------


@pytest.mark.parametrize(("line", "source", "destination"), [
    (b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
     ("192.168.0.1", 56324), ("192.168.0.11", 443)),
    (b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
     ("255.255.255.255", 65535), ("255.255.255.255", 65535)),
    (b"PROXY TCP4 0.0.0.0 10.0.0.1 0 0\r\n", ("0.0.0.0", 0), ("10.0.0.1", 0)),
    (b"PROXY TCP6 2001:db8::1 2001:DB8::FF 1 8000\r\n", ("2001:db8::1", 1), ("2001:db8::ff", 8000)),
    (b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ::1 65535 80\r\n",
     ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535), ("::1", 80)),
])
def test_v1_tcp(line: bytes, source: tuple[str, int], destination: tuple[str, int]) -> None:
    header, rest = read_every_way(line + HTTP)
    assert header == ProxyHeader(1, HeaderKind.TCP, len(line), source, destination)
    assert rest == HTTP


@pytest.mark.parametrize("line", [
    b"PROXY UNKNOWN\r\n",
    b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
    b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",  # the longest: 107 bytes
    b"PROXY UNKNOWN whatever the sender put \r here\r\n",  # ignored up to the CRLF
])
def test_v1_unknown_keeps_the_sockets_addresses(line: bytes) -> None:
    header, rest = read_every_way(line + HTTP)
    assert header == ProxyHeader(1, HeaderKind.UNKNOWN, len(line))
    assert header.source is None and header.destination is None
    assert rest == HTTP


def test_the_longest_v1_line_is_107_bytes_and_one_more_is_refused() -> None:
    longest = b"PROXY UNKNOWN " + b"f" * (V1_MAX_LINE - 16) + b"\r\n"
    assert len(longest) == V1_MAX_LINE
    assert read_every_way(longest)[0].length == V1_MAX_LINE
    too_long = b"PROXY UNKNOWN " + b"f" * (V1_MAX_LINE - 15) + b"\r\n"
    assert "without CRLF in its first 107 bytes" in refused_every_way(too_long)
    # Without any CRLF it is refused at the 107th byte, not later.
    reader = ProxyHeaderReader()
    assert reader.feed(b"PROXY " + b"x" * (V1_MAX_LINE - 7)) is None
    with pytest.raises(ProxyHeaderError):
        reader.feed(b"x")


@pytest.mark.parametrize(("data", "why"), [
    (b"PROXY TCP4 192.168.0.1 192.16...\r\n", "fields after it, not 4"),  # gunicorn's pp_01
    (b"PROXY TCP4 192.168.0.1 192.168.0.11 65iii 100000\r\n", "port b'65iii'"),  # pp_02
    (b"PROXY TCP4 not-an-ip 192.168.0.11 56324 443\r\n", "b'not-an-ip' is not IPv4"),  # pp_03
    (b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 65536\r\n", "port b'65536'"),
    (b"PROXY TCP4 192.168.0.1 192.168.0.11 056324 443\r\n", "port b'056324'"),
    (b"PROXY TCP4 192.168.0.1 192.168.0.11 -1 443\r\n", "port b'-1'"),
    (b"PROXY TCP4 192.168.0.1 192.168.0.11 +80 443\r\n", "port b'+80'"),
    (b"PROXY TCP4 192.168.0.01 192.168.0.11 1 443\r\n", "b'192.168.0.01' is not IPv4"),
    (b"PROXY TCP4 192.168.0.256 192.168.0.11 1 443\r\n", "is not IPv4"),
    (b"PROXY TCP4 ::1 192.168.0.11 1 443\r\n", "b'::1' is not IPv4"),
    (b"PROXY TCP6 192.168.0.1 ::1 1 443\r\n", "b'192.168.0.1' is not IPv6"),
    (b"PROXY TCP6 fe80::1%eth0 ::1 1 443\r\n", "is not IPv6"),
    (b"PROXY TCP6 2001:db8::1::2 ::1 1 443\r\n", "is not IPv6"),
    (b"PROXY TCP4 1.2.3.\xc44 1.2.3.4 1 443\r\n", "is not IPv4"),
    (b"PROXY TCP4  192.168.0.1 192.168.0.11 1 443\r\n", "fields after it, not 4"),
    (b"PROXY TCP4 192.168.0.1 192.168.0.11 1 443 \r\n", "fields after it, not 4"),
    (b"PROXY UDP4 192.168.0.1 192.168.0.11 1 443\r\n", "b'UDP4' is not TCP4"),
    (b"PROXY tcp4 192.168.0.1 192.168.0.11 1 443\r\n", "b'tcp4' is not TCP4"),
    (b"PROXY UNKNOWNX\r\n", "b'UNKNOWNX'"),
    (b"PROXY \r\n", "b'' is not TCP4"),
    (b"PROXY TCP4 192.168.0.1 192.168.0.11 1 443\n", "LF without CR"),
    (b"PROXY UNKNOWN\n\r\n", "LF without CR"),
    (b"PROXY\r\n", "no PROXY protocol header"),
    (b"PROXY\tTCP4 1.2.3.4 1.2.3.4 1 2\r\n", "no PROXY protocol header"),
    (b"proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n", "no PROXY protocol header"),
])
def test_v1_malformed(data: bytes, why: str) -> None:
    assert why in refused_every_way(data + HTTP)


def test_v1_waits_for_its_crlf() -> None:
    reader = ProxyHeaderReader()
    assert reader.feed(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r") is None
    header = reader.feed(b"\n")
    assert header is not None and header.source == ("192.168.0.1", 56324)
    assert reader.rest == b""


# -- no header at all (section 2: the receiver must not guess) ---------------------


@pytest.mark.parametrize("data", [
    HTTP, b"\x16\x03\x01\x02\x00", b"\r\nGET / HTTP/1.1\r\n\r\n",
    b"\r\n\r\n\x00\r\nQUIZ\n" + b"x" * 8, b"P" + b"\x00" * 20,
])
def test_anything_else_is_refused_as_soon_as_it_cannot_be_a_header(data: bytes) -> None:
    assert "no PROXY protocol header" in refused_every_way(data)


def test_a_first_byte_that_begins_no_header_is_refused_at_once() -> None:
    with pytest.raises(ProxyHeaderError, match="began b'G', which begins neither"):
        ProxyHeaderReader().feed(b"G")


def test_nothing_yet_is_need_more() -> None:
    assert parse_header(b"") is None
    assert parse_header(b"PROX") is None
    assert parse_header(V2_SIGNATURE[:7]) is None
    assert parse_header(V2_SIGNATURE + b"\x21\x11\x00") is None  # 15 of the 16 fixed bytes


# -- version 2 (section 2.2) --------------------------------------------------------


def test_v2_tcp_over_ipv4() -> None:
    header, rest = read_every_way(v2(1, 0x11, IPV4_BLOCK) + HTTP)
    assert header == ProxyHeader(2, HeaderKind.TCP, 28, ("192.0.2.1", 56324),
                                 ("198.51.100.7", 443))
    assert rest == HTTP


def test_v2_tcp_over_ipv6() -> None:
    header, rest = read_every_way(v2(1, 0x21, IPV6_BLOCK) + HTTP)
    assert header == ProxyHeader(2, HeaderKind.TCP, 52, ("2001:db8::1", 1),
                                 ("2001:db8::ff", 65535))
    assert rest == HTTP


def test_v2_tlvs_are_skipped() -> None:
    tlvs = (tlv(0x01, b"h2") + tlv(0x02, b"example.com") + tlv(0x04, b"")
            + tlv(0x20, b"\x07" + b"\x00" * 4 + tlv(0x21, b"TLSv1.3"))  # PP2_TYPE_SSL
            + tlv(0xEA, b"\x01vpce-0123456789abcdef"))  # AWS's VPC endpoint id
    data = v2(1, 0x11, IPV4_BLOCK + tlvs)
    header, rest = read_every_way(data + HTTP)
    assert header.length == len(data) and header.source == ("192.0.2.1", 56324)
    assert rest == HTTP


@pytest.mark.parametrize(("family", "block"), [
    (0x00, b""),  # UNSPEC
    (0x00, IPV4_BLOCK),  # UNSPEC, with bytes it must skip
    (0x12, IPV4_BLOCK),  # UDP over IPv4
    (0x22, IPV6_BLOCK),  # UDP over IPv6
    (0x31, b"/run/a.sock".ljust(108, b"\x00") + b"/run/b.sock".ljust(108, b"\x00")),
    (0x32, b"\x00" * 216),
])
def test_v2_families_without_a_tcp_address_keep_the_sockets(family: int, block: bytes) -> None:
    data = v2(1, family, block)
    header, rest = read_every_way(data + HTTP)
    assert header == ProxyHeader(2, HeaderKind.UNSUPPORTED, len(data))
    assert rest == HTTP


@pytest.mark.parametrize("data", [
    v2(0, 0x00),  # what HAProxy's health checks send
    v2(0, 0x11, IPV4_BLOCK),  # LOCAL with addresses: skipped all the same
    v2(0, 0xFF, b"\x01\x02\x03"),  # LOCAL: the family is ignored, even unassigned
])
def test_v2_local_keeps_the_sockets_addresses(data: bytes) -> None:
    header, rest = read_every_way(data + HTTP)
    assert header == ProxyHeader(2, HeaderKind.LOCAL, len(data))
    assert rest == HTTP


@pytest.mark.parametrize(("data", "why"), [
    (v2(1, 0x11, IPV4_BLOCK, version=1), "version 1, not 2"),
    (v2(1, 0x11, IPV4_BLOCK, version=3), "version 3, not 2"),
    (v2(2, 0x11, IPV4_BLOCK), "command 2"),
    (v2(0xF, 0x11, IPV4_BLOCK), "command 15"),
    (v2(1, 0x41, IPV4_BLOCK), "byte 0x41 is unassigned"),
    (v2(1, 0x13, IPV4_BLOCK), "byte 0x13 is unassigned"),
    (v2(1, 0x11, IPV4_BLOCK[:11]), "11 bytes, fewer than the 12 of its addresses"),
    (v2(1, 0x21, IPV4_BLOCK), "12 bytes, fewer than the 36"),
    (v2(1, 0x31, b"\x00" * 215), "fewer than the 216"),
    (v2(1, 0x11, IPV4_BLOCK + b"\x01\x00"), "TLV cut short: 2 bytes"),
    (v2(1, 0x11, IPV4_BLOCK + b"\x01"), "TLV cut short: 1 bytes"),
    (v2(1, 0x11, IPV4_BLOCK + b"\x01\x00\x05abcd"), "TLV of type 0x01 runs 1 bytes past"),
    (v2(1, 0x11, IPV4_BLOCK + tlv(2, b"ok") + b"\x05\xff\xff"), "type 0x05 runs 65535 bytes"),
    (v2(1, 0x11, length=MAX_V2_LENGTH + 1), f"declares {MAX_V2_LENGTH + 1} bytes, over"),
    (v2(1, 0x11, length=0xFFFF), "declares 65535 bytes, over"),
])
def test_v2_malformed(data: bytes, why: str) -> None:
    assert why in refused_every_way(data + HTTP)


def test_v2_length_is_refused_before_its_bytes_are_awaited() -> None:
    # Only the 16 fixed bytes: a length over the bound is refused at once.
    with pytest.raises(ProxyHeaderError, match="over"):
        ProxyHeaderReader().feed(v2(1, 0x11, length=60000))


def test_v2_waits_for_the_whole_block_and_reads_no_further() -> None:
    data = v2(1, 0x11, IPV4_BLOCK + tlv(0x04, b"\x00" * 10))
    reader = ProxyHeaderReader()
    assert reader.feed(data[:-1]) is None
    # The next bytes (an HTTP request, or a second header) are not its business.
    header = reader.feed(data[-1:] + v2(1, 0x11, length=0xFFFF))
    assert header is not None and header.length == len(data)
    assert reader.rest == v2(1, 0x11, length=0xFFFF)


def test_v2_at_the_length_bound_is_read() -> None:
    block = IPV4_BLOCK + tlv(0x04, b"\x00" * (MAX_V2_LENGTH - len(IPV4_BLOCK) - 3))
    header, rest = read_every_way(v2(1, 0x11, block) + HTTP)
    assert header.length == 16 + MAX_V2_LENGTH and rest == HTTP
