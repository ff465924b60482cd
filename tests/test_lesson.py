"""The seed's lesson, measured on real processes.

A blocking WSGI app (`time.sleep(1)`) is served at workers x threads
requests per second, however many clients wait; an ASGI app awaiting
`asyncio.sleep(1)` keeps up with its clients on one worker.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from master_support import Master

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="the master needs fork"),
    pytest.mark.timeout(60),
]


async def _client(
    port: int, stop_at: float, window: tuple[float, float], done: list[float]
) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < stop_at:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = await reader.read()
            writer.close()
        except OSError:
            await asyncio.sleep(0.05)
            continue
        now = loop.time()
        if data.startswith(b"HTTP/1.1 200 ") and window[0] <= now <= window[1]:
            done.append(now)


def throughput(port: int, clients: int, seconds: float = 4.0, warmup: float = 1.5) -> float:
    """Completed requests per second while `clients` loop without pause."""

    async def main() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        window = (start + warmup, start + warmup + seconds)
        done: list[float] = []
        await asyncio.gather(
            *(_client(port, window[1], window, done) for _ in range(clients))
        )
        return len(done) / seconds

    return asyncio.run(main())


def test_blocking_wsgi_four_workers(master_factory: type[Master]) -> None:
    master = master_factory("examples.wsgi.slow_app:app", "-w", "4")
    rate = throughput(master.port, clients=16)
    assert 3.0 <= rate <= 4.6, rate  # the model: 4 workers x 1 thread / 1 s


def test_blocking_wsgi_four_workers_eight_threads(master_factory: type[Master]) -> None:
    master = master_factory("examples.wsgi.slow_app:app", "-w", "4", "--threads", "8")
    rate = throughput(master.port, clients=64)
    assert 26.0 <= rate <= 36.0, rate  # the model: 4 x 8 / 1 s


def test_async_asgi_one_worker_keeps_up(master_factory: type[Master]) -> None:
    master = master_factory("examples.asgi.slow_app:app", "-w", "1", "--backlog", "1024")
    rate = throughput(master.port, clients=300)
    assert rate >= 240, rate  # about one per client per second
