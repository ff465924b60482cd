"""WebSockets served for real on 127.0.0.1, driven by the `websockets`
client: Starlette's and FastAPI's endpoints as their users write them, a
graceful stop with sockets open, and a whole master through HUP and TERM
(the close codes the clients see, the disconnect the application hears,
nothing left hanging)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import ws_apps
from master_support import Master
from support import RunningServer

pytestmark = pytest.mark.timeout(60)


def ws_url(server: RunningServer | Master, path: str) -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


@pytest.mark.parametrize("backend", ["websockets", "wsproto"])
def test_starlette_endpoint(backend: str) -> None:
    pytest.importorskip("starlette", reason="pip install starlette")

    async def talk(url: str) -> tuple[Any, ...]:
        async with connect(url + "?token=secret", subprotocols=["chat"]) as ws:  # type: ignore[list-item]
            await ws.send("hello")
            first = await ws.recv()
            await ws.send("bye")
            try:
                await ws.recv()
            except ConnectionClosed as exc:
                closed = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else None
            return ws.subprotocol, first, closed

    async def refused(url: str) -> int:
        try:
            async with connect(url):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    with RunningServer(ws_apps.starlette_app(), ws=backend, lifespan="off") as server:
        url = ws_url(server, "/rooms/lobby")
        assert run(talk(url)) == ("chat", "lobby: hello", (4001, "asked to"))
        assert run(refused(url)) == 403  # closed before accept


def test_fastapi_endpoint() -> None:
    pytest.importorskip("fastapi", reason="pip install fastapi")

    async def talk(url: str) -> Any:
        async with connect(url) as ws:
            await ws.send(json.dumps({"n": 1}))
            answer = json.loads(await ws.recv())
            await ws.wait_closed()
            return answer, ws.close_code

    with RunningServer(ws_apps.fastapi_app(), lifespan="off") as server:
        answer, code = run(talk(ws_url(server, "/items/7?q=x")))
    assert answer == {"item_id": 7, "q": "x", "got": {"n": 1}} and code == 1000


def test_django_channels_consumer() -> None:
    pytest.importorskip("channels", reason="pip install channels")

    async def talk(url: str) -> str:
        async with connect(url) as ws:
            await ws.send("hello")
            return str(await ws.recv())

    with RunningServer(ws_apps.channels_app(), lifespan="off") as server:
        assert run(talk(ws_url(server, "/ws/lobby/"))) == "lobby: hello"


def test_a_big_message_compressed_or_not() -> None:
    async def echo(url: str, compression: str | None) -> int:
        async with connect(url, compression=compression, max_size=None) as ws:
            payload = bytes(range(256)) * 4096  # 1 MiB
            await ws.send(payload)
            back = await ws.recv()
            assert back == payload
            return len(back)

    with RunningServer(ws_apps.echo, lifespan="off") as server:
        assert run(echo(ws_url(server, "/"), "deflate")) == 1 << 20
        assert run(echo(ws_url(server, "/"), None)) == 1 << 20


def test_graceful_stop_closes_open_sockets_with_1001() -> None:
    ws_apps.HEARD.clear()
    server = RunningServer(ws_apps.echo, lifespan="off", graceful_timeout=10).start()
    codes: list[int | None] = []
    opened: list[None] = []

    async def hold(url: str, all_open: asyncio.Event) -> None:
        async with connect(url) as ws:
            await ws.send("x")
            await ws.recv()
            opened.append(None)
            if len(opened) == 3:  # the stop begins with every socket open
                all_open.set()
                server.loop.call_soon_threadsafe(server.worker.stop)
            await all_open.wait()
            await ws.wait_closed()
            codes.append(ws.close_code)

    async def three() -> None:
        all_open = asyncio.Event()
        await asyncio.gather(*(hold(ws_url(server, "/"), all_open) for _ in range(3)))

    started = time.monotonic()
    try:
        run(three())
    finally:
        server.stop()
    assert codes == [1001, 1001, 1001]
    assert time.monotonic() - started < 5  # the stop did not wait out the grace
    assert [m["code"] for m in ws_apps.HEARD] == [1001, 1001, 1001]


def test_hup_restarts_with_1012_and_term_goes_away_with_1001() -> None:
    master = Master("tests.ws_apps:echo", "-w", "1")
    try:
        async def until_closed(action: Any) -> int | None:
            async with connect(ws_url(master, "/")) as ws:
                await ws.send("x")
                await ws.recv()
                action()
                await ws.wait_closed()
                return ws.close_code

        assert run(until_closed(lambda: master.signal(signal.SIGHUP))) == 1012
        # The successor serves WebSockets at once.
        master.wait_for(lambda: len(master.workers()) == 1, 15, "the old worker to go")

        async def again() -> str:
            async with connect(ws_url(master, "/")) as ws:
                await ws.send("again")
                return str(await ws.recv())

        assert run(again()) == "again"
        assert run(until_closed(lambda: master.signal(signal.SIGTERM))) == 1001
        assert master.proc.wait(15) == 0
    finally:
        master.stop()
