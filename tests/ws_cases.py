"""The Autobahn testsuite's cases (categories 1-7, 9, 10 and 12), as raw frames.

Each case is what a client sends after its handshake and what must come
of it: the messages delivered, the pings answered, the pongs reported, and
the server's close frame (the echo of the client's, or the code the server
failed the connection with). test_ws_core.py feeds each to both backends
(whole, byte by byte, in random pieces); test_ws_wire.py sends each to a
real server running the echo app, for both backends. Autobahn's own case
numbers are in `autobahn`; docs/websocket.md maps its categories onto the
tests.

Where the two libraries answer differently, `differs` says how, per backend,
and docs/websocket.md says why it is left so.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ws_frames import (
    BINARY,
    CLOSE,
    CONT,
    MASK,
    PING,
    PONG,
    RSV1,
    RSV2,
    RSV3,
    TEXT,
    Deflater,
    binary,
    close,
    deflated,
    fragments,
    frame,
    text,
)

NO_CODE = 1005  # a close frame without a code: its Closed event says 1005
BACKENDS = ("websockets", "wsproto")
DEFLATE = "permessage-deflate"


@dataclass(frozen=True)
class Case:
    name: str
    autobahn: str  # Autobahn's case number(s), or "" where it has none
    data: bytes  # what the client sends after its handshake
    messages: tuple[str | bytes, ...] = ()  # delivered to the application, in order
    pings: tuple[bytes, ...] = ()  # answered with a pong each, in order
    pongs: tuple[bytes, ...] = ()  # unsolicited pongs, reported as Pong events
    close: int | None = None  # the server's close code (None: it stays open)
    echoed: bool = False  # the close answers the client's; else the server failed
    max_size: int | None = 16 << 20
    offer: str = ""  # the client's Sec-WebSocket-Extensions ("": none)
    wire: bool = True  # also sent to a real server (test_ws_wire.py)
    differs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def on(self, backend: str) -> Case:
        """This case as `backend` answers it."""
        return dataclasses.replace(self, **self.differs.get(backend, {}))


def ok(name: str, autobahn: str, data: bytes, *messages: str | bytes,
       **options: Any) -> Case:
    """The connection stays open (the messages delivered, pings answered)."""
    return Case(name, autobahn, data, messages, **options)


def fails(name: str, autobahn: str, data: bytes, code: int, *messages: str | bytes,
          **options: Any) -> Case:
    """The server fails the connection with `code`."""
    return Case(name, autobahn, data, messages, close=code, **options)


def closes(name: str, autobahn: str, data: bytes, code: int, *messages: str | bytes,
           **options: Any) -> Case:
    """The client closes with `code` (NO_CODE: an empty close); the server
    answers with the same code."""
    return Case(name, autobahn, data, messages, close=code, echoed=True, **options)


HELLO = text("Hello, world!")
PING_HELLO = frame(PING, b"Hello, world!")


def framing() -> list[Case]:
    """1.1, 1.2: text and binary of each length form; unmasked frames."""
    cases = []
    for i, size in enumerate((0, 125, 126, 127, 128, 65535, 65536), start=1):
        cases.append(ok(f"text {size} bytes", f"1.1.{i}", text("*" * size), "*" * size))
        cases.append(ok(f"binary {size} bytes", f"1.2.{i}", binary(b"\xfe" * size),
                        b"\xfe" * size))
    cases += [
        # RFC 6455 section 5.1: a server MUST close on an unmasked frame.
        fails("unmasked text", "", text("hi", mask=None), 1002),
        fails("unmasked close", "", close(1000, mask=None), 1002),
        ok("all-zero masking key", "", text("hi", mask=b"\0\0\0\0"), "hi"),
        # Section 5.2: a 64-bit length's most significant bit MUST be 0.
        # wsproto says so (1002); websockets reads a length over max_size.
        fails("64-bit length with its top bit set", "",
              b"\x82\xff\x80" + b"\0" * 7 + MASK, 1002,
              differs={"websockets": {"close": 1009}}),
        # Section 5.2 asks a sender for the shortest length; wsproto also
        # refuses a longer one on receipt, websockets reads it.
        ok("length in 16 bits where 7 hold it", "", text("hi", length_bits=16), "hi",
           differs={"wsproto": {"close": 1002, "messages": ()}}),
    ]
    return cases


def pings() -> list[Case]:
    """2: pings answered, pongs taken, control frames over 125 bytes."""
    return [
        ok("ping without payload", "2.1", frame(PING), pings=(b"",)),
        ok("ping with text", "2.2", PING_HELLO, pings=(b"Hello, world!",)),
        ok("ping with binary", "2.3", frame(PING, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"),
           pings=(b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff",)),
        ok("ping of 125 bytes", "2.4 2.6", frame(PING, b"\xfe" * 125),
           pings=(b"\xfe" * 125,)),
        fails("ping of 126 bytes", "2.5", frame(PING, b"\xfe" * 126), 1002),
        ok("unsolicited pong", "2.7", frame(PONG), pongs=(b"",)),
        ok("unsolicited pong with payload", "2.8", frame(PONG, b"unsolicited pong payload"),
           pongs=(b"unsolicited pong payload",)),
        ok("pong then ping", "2.9", frame(PONG, b"unsolicited") + frame(PING, b"ping"),
           pings=(b"ping",), pongs=(b"unsolicited",)),
        ok("ten pings", "2.10 2.11",
           b"".join(frame(PING, b"payload-%d" % i) for i in range(10)),
           pings=tuple(b"payload-%d" % i for i in range(10))),
        fails("pong of 126 bytes", "", frame(PONG, b"x" * 126), 1002),
        fails("close of 126 bytes", "7.3.6", close(1000, b"x" * 124), 1002),
    ]


def reserved_bits() -> list[Case]:
    """3: a reserved bit set without an extension that defines it."""
    then_ping = HELLO + text("Hello, world!", rsv=RSV2) + PING_HELLO
    return [
        fails("text with RSV2", "3.1", text("Hello, world!", rsv=RSV2), 1002),
        fails("text, then text with RSV2, ping", "3.2 3.3", then_ping, 1002,
              "Hello, world!"),
        fails("text, then text with RSV2+RSV3, ping", "3.4",
              HELLO + text("Hello, world!", rsv=RSV2 | RSV3) + PING_HELLO, 1002,
              "Hello, world!"),
        fails("binary with RSV1, no extension", "3.5", binary(b"\xff" * 8, rsv=RSV1), 1002),
        fails("ping with RSV1+RSV3", "3.6", frame(PING, b"\xff", rsv=RSV1 | RSV3), 1002),
        fails("close with RSV1+RSV2", "3.7", close(1000, rsv=RSV1 | RSV2), 1002),
    ]


def opcodes() -> list[Case]:
    """4: reserved opcodes, data (3-7) and control (11-15)."""
    cases = []
    for i, opcode in enumerate((3, 4, 5, 6, 7, 11, 12, 13, 14, 15)):
        number = f"4.{1 if opcode < 8 else 2}.{i % 5 + 1}"
        payload = b"reserved opcode" if i % 5 in (1, 3, 4) else b""
        if i % 5 < 2:
            cases.append(fails(f"opcode {opcode}", number, frame(opcode, payload), 1002))
        else:
            cases.append(fails(f"text, opcode {opcode}, ping", number,
                               HELLO + frame(opcode, payload) + PING_HELLO, 1002,
                               "Hello, world!"))
    return cases


def fragmentation() -> list[Case]:
    """5: fragmented messages, control frames between fragments, and
    continuations that continue nothing."""
    two = fragments(TEXT, [b"fragment1", b"fragment2"])
    five = (frame(TEXT, b"fragment1", fin=False) + frame(CONT, b"fragment2", fin=False)
            + frame(PING, b"pongme 1!") + frame(CONT, b"fragment3", fin=False)
            + frame(CONT, b"fragment4", fin=False) + frame(PING, b"pongme 2!")
            + frame(CONT, b"fragment5"))
    return [
        fails("ping in 2 fragments", "5.1", frame(PING, b"frag1", fin=False)
              + frame(CONT, b"frag2"), 1002),
        fails("pong in 2 fragments", "5.2", frame(PONG, b"frag1", fin=False)
              + frame(CONT, b"frag2"), 1002),
        ok("text in 2 fragments", "5.3 5.4 5.5", two, "fragment1fragment2"),
        ok("binary in 3 fragments", "", fragments(BINARY, [b"\x00", b"\x01", b"\x02"]),
           b"\x00\x01\x02"),
        ok("text in 2 fragments, ping between", "5.6 5.7 5.8",
           frame(TEXT, b"fragment1", fin=False) + frame(PING, b"ping payload")
           + frame(CONT, b"fragment2"), "fragment1fragment2", pings=(b"ping payload",)),
        fails("continuation (final) of nothing, then a message", "5.9 5.10 5.11",
              frame(CONT, b"non-continuation payload") + two, 1002),
        fails("continuation (not final) of nothing", "5.12 5.13 5.14",
              frame(CONT, b"non-continuation payload", fin=False) + two, 1002),
        fails("a message, then a continuation of nothing", "5.15",
              two + frame(CONT, b"fragment3", fin=False) + frame(TEXT, b"fragment4"), 1002,
              "fragment1fragment2"),
        fails("continuations of nothing, twice", "5.16 5.17",
              (frame(CONT, b"fragment1", fin=False) + two) * 2, 1002),
        fails("a text fragment, then a text frame", "5.18",
              frame(TEXT, b"fragment1", fin=False) + frame(TEXT, b"fragment2"), 1002),
        ok("text in 5 fragments, pings between", "5.19 5.20", five,
           "fragment1fragment2fragment3fragment4fragment5",
           pings=(b"pongme 1!", b"pongme 2!")),
        # (Not on the wire: the close that ends it would come mid-message, 7.1.5.)
        ok("64 KiB in fragments of 1300 bytes", "10.1.1",
           fragments(TEXT, [b"*" * 1300] * 50 + [b"*" * 536]), "*" * 65536),
        ok("a binary fragment, then a ping, unfinished", "",
           frame(BINARY, b"part", fin=False) + frame(PING, b"p"), pings=(b"p",), wire=False),
    ]


# 6: UTF-8. Each sequence in one text frame, and in fragments of one byte
# each (split within code points: the core's decoder must carry them over).
VALID_UTF8 = [
    ("6.2", "Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!".encode()),
    ("6.5", "\u03ba\u1f79\u03c3\u03bc\u03b5".encode()),  # "κόσμε"
    ("6.7", b"\x00"), ("6.7", b"\xc2\x80"), ("6.7", b"\xe0\xa0\x80"),
    ("6.7", b"\xf0\x90\x80\x80"),  # the first of each length
    ("6.9", b"\x7f"), ("6.9", b"\xdf\xbf"), ("6.9", b"\xef\xbf\xbf"),
    ("6.9", b"\xf4\x8f\xbf\xbf"),  # the last of each length
    ("6.11", b"\xed\x9f\xbf"), ("6.11", b"\xee\x80\x80"), ("6.11", b"\xef\xbf\xbd"),
    ("6.22", b"\xef\xbf\xbe"), ("6.22", b"\xf0\x9f\xbf\xbe"),  # noncharacters: valid
    ("6.23", b"\xef\xbb\xbf"),  # a BOM is a character like another
]
INVALID_UTF8 = [
    ("6.3", "\u03ba\u1f79\u03c3\u03bc\u03b5".encode() + b"\xed\xa0\x80edited"),
    ("6.8", b"\xf8\x88\x80\x80\x80"), ("6.8", b"\xfc\x84\x80\x80\x80\x80"),  # 5, 6 bytes
    ("6.10", b"\xf7\xbf\xbf\xbf"), ("6.11", b"\xf4\x90\x80\x80"),  # past U+10FFFF
    ("6.12", b"\x80"), ("6.12", b"\xbf"), ("6.12", b"\x80\xbf\x80"),  # lone continuations
    ("6.13", b"\xc0 \xc1 "), ("6.13", b"\xe0 "),  # start bytes without their rest
    ("6.14", b"\xdf"), ("6.14", b"\xef\xbf"), ("6.14", b"\xf4\x8f\xbf"),  # cut at the end
    ("6.15", b"\xc0\xe0\x80\xf0\x80\x80"),
    ("6.16", b"\xfe"), ("6.16", b"\xff"), ("6.16", b"\xfe\xfe\xff\xff"),
    ("6.17", b"\xc0\xaf"), ("6.17", b"\xe0\x80\xaf"), ("6.17", b"\xf0\x80\x80\xaf"),  # overlong
    ("6.18", b"\xc1\xbf"), ("6.18", b"\xe0\x9f\xbf"), ("6.18", b"\xf0\x8f\xbf\xbf"),
    ("6.19", b"\xc0\x80"), ("6.19", b"\xe0\x80\x80"),  # overlong NUL
    ("6.20", b"\xed\xa0\x80"), ("6.20", b"\xed\xbf\xbf"),  # surrogates
    ("6.21", b"\xed\xa0\x80\xed\xb0\x80"),
]


def utf8() -> list[Case]:
    cases = [
        ok("empty text", "6.1.1", text(b""), ""),
        ok("empty text in 3 fragments", "6.1.2", fragments(TEXT, [b"", b"", b""]), ""),
        ok("text in fragments, empty first and last", "6.1.3",
           fragments(TEXT, [b"", b"middle", b""]), "middle"),
    ]
    for number, data in VALID_UTF8:
        cases.append(ok(f"valid {data.hex(' ')}", number, text(data), data.decode()))
        if len(data) > 1:
            cases.append(ok(f"valid {data.hex(' ')}, a byte per fragment", number,
                            fragments(TEXT, [data[i:i + 1] for i in range(len(data))]),
                            data.decode()))
    for number, data in INVALID_UTF8:
        cases.append(fails(f"invalid {data.hex(' ')}", number, text(data), 1007))
        if len(data) > 1:
            cases.append(fails(f"invalid {data.hex(' ')}, a byte per fragment", number,
                               fragments(TEXT, [data[i:i + 1] for i in range(len(data))]),
                               1007))
    kosme = "\u03ba\u1f79\u03c3\u03bc\u03b5".encode()
    for cut in range(1, len(kosme)):  # 6.6: every prefix, valid only at boundaries
        prefix = kosme[:cut]
        try:
            cases.append(ok(f"prefix {cut} of kosme", "6.6", text(prefix), prefix.decode()))
        except UnicodeDecodeError:
            cases.append(fails(f"prefix {cut} of kosme", "6.6", text(prefix), 1007))
    cases += [
        # 6.4.1, 6.4.2: the message fails at the fragment that breaks it,
        # before its end ever comes (the rest is not sent).
        fails("invalid fragment before the message ends", "6.4.1",
              frame(TEXT, kosme, fin=False) + frame(CONT, b"\xf4\x90\x80\x80", fin=False),
              1007),
        fails("code point cut between fragments, then broken", "6.4.2",
              frame(TEXT, kosme + b"\xf4", fin=False) + frame(CONT, b"\x90", fin=False),
              1007),
        # 6.4.3, 6.4.4: within one frame not yet whole. wsproto reads a
        # frame's payload as it comes and fails at once; websockets reads
        # whole frames, and fails when the rest arrives.
        fails("invalid bytes at the start of a frame not yet whole", "6.4.3 6.4.4",
              text(kosme + b"\xf4\x90\x80\x80" + b"edited" * 20)[:40], 1007, wire=False,
              differs={"websockets": {"close": None}}),
        fails("valid text, then invalid text", "", text("first") + text(b"\xff"), 1007,
              "first"),
    ]
    return cases


CLOSE_123 = b"*" * 123
BAD_REASON = "\u03ba\u1f79\u03c3\u03bc\u03b5".encode() + b"\xed\xa0\x80edited"


def closing() -> list[Case]:
    """7: the close handshake, close codes and reasons, frames after a close."""
    cases = [
        closes("text, then close", "7.1.1", text("Hello World!") + close(1000), 1000,
               "Hello World!"),
        closes("close, close", "7.1.2", close(1000) + close(1000), 1000),
        closes("close, then ping", "7.1.3", close(1000) + PING_HELLO, 1000),
        closes("close, then text", "7.1.4", close(1000) + HELLO, 1000),
        # RFC 6455 section 5.4 lets a control frame come between fragments;
        # websockets takes a close there for a protocol error.
        closes("fragment, close, the rest", "7.1.5",
               frame(TEXT, b"fragment1", fin=False) + close(1000) + frame(CONT, b"fragment2"),
               1000, differs={"websockets": {"close": 1002, "echoed": False}}),
        closes("256 KiB text, ping, close", "7.1.6",
               text("BAsd7&jh23" * 26214) + PING_HELLO + close(1000), 1000,
               "BAsd7&jh23" * 26214, pings=(b"Hello, world!",)),
        closes("empty close", "7.3.1", close(), NO_CODE),
        fails("close with a 1-byte payload", "7.3.2", frame(CLOSE, b"\x03"), 1002),
        closes("close with a code", "7.3.3", close(1000), 1000),
        closes("close with a reason", "7.3.4", close(1000, b"Hello World!"), 1000),
        closes("close with a 123-byte reason", "7.3.5", close(1000, CLOSE_123), 1000),
        fails("close with an invalid UTF-8 reason", "7.5.1", close(1000, BAD_REASON), 1007),
        fails("a failed frame, then text", "", text("x", rsv=RSV3) + HELLO, 1002),
    ]
    for i, code in enumerate((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000,
                              3999, 4000, 4999), start=1):
        cases.append(closes(f"close with code {code}", f"7.7.{i}", close(code), code))
    for code in (1012, 1013):  # registered since RFC 6455 (IANA)
        cases.append(closes(f"close with code {code}", "", close(code), code))
    # 1014 (Bad Gateway, IANA 2016): wsproto knows no such code.
    cases.append(closes("close with code 1014", "", close(1014), 1014,
                        differs={"wsproto": {"close": 1002, "echoed": False}}))
    for i, code in enumerate((0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999),
                             start=1):
        cases.append(fails(f"close with invalid code {code}", f"7.9.{i}", close(code), 1002))
    for i, code in enumerate((5000, 65535), start=1):
        cases.append(fails(f"close with invalid code {code}", f"7.13.{i}", close(code), 1002))
    return cases


SMALL = 1000


def limits() -> list[Case]:
    """9 (in small): a message of max_size, one byte more, fragmented or not;
    1000 messages at once."""
    at_max = b"a" * SMALL
    return [
        ok("binary of max_size", "9.2", binary(at_max), at_max, max_size=SMALL),
        fails("binary of max_size + 1", "", binary(at_max + b"a"), 1009, max_size=SMALL),
        ok("text of max_size", "9.1", text(at_max), at_max.decode(), max_size=SMALL),
        fails("text of max_size + 1", "", text(at_max + b"a"), 1009, max_size=SMALL),
        ok("fragments making max_size", "9.3 9.4",
           fragments(BINARY, [at_max[:600], at_max[600:]]), at_max, max_size=SMALL),
        fails("fragments making max_size + 1", "",
              fragments(BINARY, [at_max[:600], at_max[600:] + b"a"]), 1009, max_size=SMALL),
        # Refused as it passes the limit, not when its end comes (never here).
        fails("unfinished fragments past max_size", "",
              frame(TEXT, at_max[:600], fin=False) + frame(CONT, at_max[:401], fin=False),
              1009, max_size=SMALL),
        fails("a message before one too big", "",
              text("small") + binary(at_max + b"a"), 1009, "small", max_size=SMALL),
        ok("1000 messages", "9.7 9.8", b"".join(text(f"message {i}") for i in range(1000)),
           *(f"message {i}" for i in range(1000))),
    ]


def compression() -> list[Case]:
    """12 (permessage-deflate, RFC 7692): compressed messages, fragmented,
    with the context taken over; what RSV1 may not mark; max_size counted
    on what a message inflates to."""
    pmd = {"offer": DEFLATE}
    hello = deflated(b"Hello, compressed world!")
    context = Deflater()
    first, second = context.message(b"the same words " * 20), context.message(
        b"the same words " * 20)
    incompressible = random.Random(12).randbytes(SMALL)  # larger once compressed
    zeros = deflated(b"\0" * (SMALL + 1))
    return [
        ok("compressed text", "12.1", frame(TEXT, hello, rsv=RSV1),
           "Hello, compressed world!", **pmd),
        ok("compressed binary", "12.2", frame(BINARY, hello, rsv=RSV1),
           b"Hello, compressed world!", **pmd),
        ok("compressed, in 3 fragments", "12.3 12.4",
           frame(TEXT, hello[:4], rsv=RSV1, fin=False) + frame(CONT, hello[4:9], fin=False)
           + frame(CONT, hello[9:]), "Hello, compressed world!", **pmd),
        ok("context taken over", "12.5 13.1", frame(TEXT, first, rsv=RSV1)
           + frame(TEXT, second, rsv=RSV1), "the same words " * 20, "the same words " * 20,
           **pmd),
        ok("uncompressed message, deflate agreed", "", text("plain"), "plain", **pmd),
        ok("compressed then plain then compressed", "",
           frame(TEXT, hello, rsv=RSV1) + text("plain") + frame(TEXT, hello, rsv=RSV1),
           "Hello, compressed world!", "plain", "Hello, compressed world!", **pmd),
        fails("RSV1 on a continuation", "",
              frame(TEXT, hello[:4], rsv=RSV1, fin=False) + frame(CONT, hello[4:], rsv=RSV1),
              1002, **pmd),
        fails("RSV1 on a ping", "", frame(PING, b"x", rsv=RSV1), 1002, **pmd),
        fails("RSV2 with deflate agreed", "", frame(TEXT, hello, rsv=RSV1 | RSV2), 1002,
              **pmd),
        fails("data that is not deflate", "", frame(BINARY, b"\xff\xff\xff\xff", rsv=RSV1),
              1002, **pmd),
        ok("compressed, inflating to max_size", "",
           frame(BINARY, deflated(b"\0" * SMALL), rsv=RSV1), b"\0" * SMALL,
           max_size=SMALL, **pmd),
        ok("incompressible, compressed, of max_size", "",
           frame(BINARY, deflated(incompressible), rsv=RSV1), incompressible,
           max_size=SMALL, **pmd),
        fails("compressed, inflating to max_size + 1", "", frame(BINARY, zeros, rsv=RSV1),
              1009, max_size=SMALL, **pmd),
        fails("compressed fragments inflating past max_size", "",
              frame(BINARY, zeros[:4], rsv=RSV1, fin=False) + frame(CONT, zeros[4:]), 1009,
              max_size=SMALL, **pmd),
        fails("a compressed frame, deflate not agreed", "3.5",
              frame(TEXT, hello, rsv=RSV1), 1002),
    ]


def all_cases() -> list[Case]:
    return [*framing(), *pings(), *reserved_bits(), *opcodes(), *fragmentation(), *utf8(),
            *closing(), *limits(), *compression()]


CASES = all_cases()
assert len({case.name for case in CASES}) == len(CASES), "two cases of one name"
