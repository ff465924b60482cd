"""Which sans-IO WebSocket library should the server drive? Measured here.

twincorn's WebSocket support drives a sans-IO library from its own
connection driver (docs/websocket.md). Two are kept and used by the peers:
`websockets` (its ServerProtocol; a C extension masks and unmasks frames)
and `wsproto` (h11's sibling, pure Python). This script times what the
driver asks of each for one echoed message, in one process, with no
socket: feed the bytes of one masked client frame, take the message event,
send it back, take the bytes to write. Rounds alternate the libraries
(A B A B ...) and the table gives each one's median microseconds per echo
and the median of the per-round ratios, with their spread.

    python bench/ws_protocols.py [--rounds 7] [--seconds 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import cast

Echo = Callable[[], None]

HANDSHAKE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3's example


def client_frame(payload: bytes, binary: bool) -> bytes:
    """The bytes a client sends for one masked, unfragmented message."""
    from websockets.frames import Frame, Opcode

    frame = Frame(Opcode.BINARY if binary else Opcode.TEXT, payload)
    return frame.serialize(mask=True, extensions=[])


def websockets_echo(payload: bytes, binary: bool) -> Echo:
    from websockets.datastructures import Headers
    from websockets.frames import Frame, Opcode
    from websockets.http11 import Request
    from websockets.server import ServerProtocol

    protocol = ServerProtocol(max_size=None)
    headers = Headers([("Host", "localhost"), ("Upgrade", "websocket"),
                       ("Connection", "Upgrade"), ("Sec-WebSocket-Key", HANDSHAKE_KEY),
                       ("Sec-WebSocket-Version", "13")])
    protocol.send_response(protocol.accept(Request("/", headers)))
    protocol.data_to_send()
    wire = client_frame(payload, binary)

    def echo() -> None:
        protocol.receive_data(wire)
        for frame in cast("list[Frame]", protocol.events_received()):
            if frame.opcode is Opcode.TEXT:
                protocol.send_text(frame.data)
            else:
                protocol.send_binary(frame.data)
        for _ in protocol.data_to_send():
            pass

    return echo


def wsproto_echo(payload: bytes, binary: bool) -> Echo:
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, BytesMessage, Request, TextMessage

    connection = WSConnection(ConnectionType.SERVER)
    connection.receive_data(
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: " + HANDSHAKE_KEY.encode()
        + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    for event in connection.events():
        if isinstance(event, Request):
            connection.send(AcceptConnection())
    wire = client_frame(payload, binary)

    def echo() -> None:
        connection.receive_data(wire)
        for event in connection.events():
            if isinstance(event, TextMessage | BytesMessage):
                connection.send(event)

    return echo


LIBRARIES: dict[str, Callable[[bytes, bool], Echo]] = {
    "websockets": websockets_echo,
    "wsproto": wsproto_echo,
}


def per_echo(echo: Echo, seconds: float) -> float:
    """Microseconds per echo, over about `seconds`."""
    n, batch = 0, 200
    started = time.perf_counter()
    while True:
        for _ in range(batch):
            echo()
        n += batch
        took = time.perf_counter() - started
        if took >= seconds:
            return took / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    cases = [("64 B text", b"x" * 64, False), ("64 B binary", os.urandom(64), True),
             ("16 KiB binary", os.urandom(16384), True),
             ("1 MiB binary", os.urandom(1 << 20), True)]
    print(f"Python {platform.python_version()}; websockets {version('websockets')}, "
          f"wsproto {version('wsproto')}; {args.rounds} rounds of {args.seconds:g} s each")
    print()
    print("| message | websockets µs/echo | wsproto µs/echo "
          "| wsproto / websockets (median, range) |")
    print("|---|---:|---:|---|")
    for label, payload, binary in cases:
        times: dict[str, list[float]] = {name: [] for name in LIBRARIES}
        for _ in range(args.rounds):
            for name, make in LIBRARIES.items():
                times[name].append(per_echo(make(payload, binary), args.seconds))
        ratios = [w / s for s, w in zip(times["websockets"], times["wsproto"], strict=True)]
        print(f"| {label} | {statistics.median(times['websockets']):.1f} | "
              f"{statistics.median(times['wsproto']):.1f} | "
              f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
