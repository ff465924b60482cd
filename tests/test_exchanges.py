"""The adapters' exchanges driven directly, through a fake Channel
(tests/fakes.py): no connection, no socket; the test plays the driver."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from twincorn.asgi import ASGIAdapter, ASGIExchange, ClientDisconnected
from twincorn.http import Request
from twincorn.testing import FakeChannel, parse_responses, request, turn
from twincorn.wsgi import WSGIAdapter, WSGIExchange


class Recorder:
    """An ASGI app that records what receive() gives and can be told to answer."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.answer = asyncio.Event()
        self.raised: BaseException | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            self.messages.append(message)
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break
        await self.answer.wait()
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"done"})
        except BaseException as exc:
            self.raised = exc
            raise


def asgi_exchange(loop: asyncio.AbstractEventLoop, app: Any,
                  req: Request | None = None) -> tuple[ASGIExchange, FakeChannel]:
    channel = FakeChannel(loop)
    adapter = ASGIAdapter(app, loop, lifespan="off")
    exchange = adapter.new_exchange(req or request(), channel)
    assert isinstance(exchange, ASGIExchange)
    return exchange, channel


# -- ASGI ---------------------------------------------------------------------------


def test_asgi_body_arrives_in_pieces_with_back_pressure(loop: asyncio.AbstractEventLoop) -> None:
    app = Recorder()
    exchange, channel = asgi_exchange(loop, app, request("POST", body_length=200_000))
    exchange.start()
    exchange.feed_body(b"a" * 100_000)  # past the high-water mark: hold the body back
    assert channel.paused
    turn(loop)
    assert not channel.paused  # the app took it: reading resumes
    exchange.feed_body(b"b" * 100_000)
    exchange.body_complete()
    turn(loop)
    assert [(len(m["body"]), m["more_body"]) for m in app.messages] == [
        (100_000, True), (100_000, False)]
    app.answer.set()
    turn(loop)
    assert channel.completed == [True]
    [response] = parse_responses(bytes(channel.written))
    assert (response.status, response.body) == (200, b"done")


def test_asgi_100_continue_is_asked_of_the_channel(loop: asyncio.AbstractEventLoop) -> None:
    req = request("POST", body_length=2)
    req.expect_continue = True
    app = Recorder()
    exchange, channel = asgi_exchange(loop, app, req)
    exchange.start()
    turn(loop)
    assert channel.continues == 1  # the first receive() wants the body


def test_asgi_input_closed_answers_receive_with_disconnect(
    loop: asyncio.AbstractEventLoop
) -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append((await receive())["type"])  # the body
        seen.append((await receive())["type"])  # waits for the client to leave
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"still written"})

    exchange, channel = asgi_exchange(loop, app)
    exchange.start()
    exchange.body_complete()
    turn(loop)
    assert seen == ["http.request"]
    exchange.input_closed()  # the client's FIN: a half-close, or gone
    turn(loop)
    assert seen == ["http.request", "http.disconnect"]
    assert parse_responses(bytes(channel.written))[0].body == b"still written"


def test_asgi_app_that_stops_on_disconnect_is_no_error(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    """An event stream whose client shuts its side: the app is told
    http.disconnect and returns mid-response; nothing is logged, and the
    connection closes instead of being kept alive."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass

    exchange, channel = asgi_exchange(loop, app)
    exchange.start()
    exchange.body_complete()
    turn(loop)
    assert channel.completed == []
    exchange.input_closed()
    turn(loop)
    assert channel.completed == [False] and not channel.aborted
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_asgi_app_that_returns_mid_response_unasked_is_an_error(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})

    exchange, channel = asgi_exchange(loop, app)
    exchange.start()
    turn(loop)
    assert channel.aborted
    assert "returned before completing its response, serving GET /" in caplog.text


def test_asgi_send_after_the_client_left_raises(loop: asyncio.AbstractEventLoop) -> None:
    app = Recorder()
    exchange, channel = asgi_exchange(loop, app)
    exchange.start()
    exchange.body_complete()
    turn(loop)
    exchange.client_gone()
    app.answer.set()
    turn(loop)
    assert isinstance(app.raised, ClientDisconnected) and isinstance(app.raised, OSError)
    assert channel.completed == [False] and channel.written == b""


def test_asgi_failure_before_the_response_is_a_500(loop: asyncio.AbstractEventLoop) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise ValueError("boom")

    exchange, channel = asgi_exchange(loop, app)
    exchange.start()
    turn(loop)
    assert parse_responses(bytes(channel.written))[0].status == 500
    assert channel.completed == [False]


def test_asgi_failure_after_the_head_aborts(loop: asyncio.AbstractEventLoop) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise ValueError("boom")

    exchange, channel = asgi_exchange(loop, app)
    exchange.start()
    turn(loop)
    assert channel.aborted and channel.completed == []


@pytest.mark.parametrize(
    ("message", "error"),
    [({"type": "http.response.body", "body": b"x"}, "before http.response.start"),
     ({"type": "websocket.send"}, "unexpected ASGI message type")],
)
def test_asgi_wrong_messages_are_refused(
    loop: asyncio.AbstractEventLoop, message: dict[str, Any], error: str
) -> None:
    caught: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await send(message)
        except RuntimeError as exc:
            caught.append(exc)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    exchange, _ = asgi_exchange(loop, app)
    exchange.start()
    turn(loop)
    assert len(caught) == 1 and error in str(caught[0])


def test_asgi_response_says_close_when_the_channel_will_not_keep_alive(
    loop: asyncio.AbstractEventLoop
) -> None:
    app = Recorder()
    app.answer.set()
    exchange, channel = asgi_exchange(loop, app)
    channel.keep_alive = False  # e.g. the worker is stopping
    exchange.start()
    exchange.body_complete()
    turn(loop)
    assert parse_responses(bytes(channel.written))[0].header(b"connection") == b"close"
    assert channel.completed == [False]


# -- WSGI ---------------------------------------------------------------------------


def wsgi_exchange(loop: asyncio.AbstractEventLoop, app: Any,
                  req: Request | None = None) -> tuple[WSGIExchange, FakeChannel]:
    channel = FakeChannel(loop)
    adapter = WSGIAdapter(app, loop)
    return adapter.new_exchange(req or request(), channel), channel


def test_wsgi_chunked_body_comes_with_content_length(loop: asyncio.AbstractEventLoop) -> None:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        # As Django does: read CONTENT_LENGTH bytes, no more.
        length = int(environ.get("CONTENT_LENGTH") or 0)
        seen["body"] = environ["wsgi.input"].read(length)
        seen["client"] = environ["REMOTE_ADDR"], environ["REMOTE_PORT"]
        start_response("200 OK", [])
        return [b""]

    req = request("POST", chunked=True,
                  headers=[(b"host", b"t"), (b"transfer-encoding", b"chunked")])
    exchange, channel = wsgi_exchange(loop, app, req)
    exchange.start()
    exchange.feed_body(b"hello ")
    exchange.feed_body(b"world")
    exchange.body_complete()
    assert seen == {"body": b"hello world", "client": ("127.0.0.1", "50000")}
    assert channel.completed == [True]


def test_wsgi_stream_waits_for_the_client_and_closes_the_iterable(
    loop: asyncio.AbstractEventLoop
) -> None:
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"one"
            yield b"two"

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Any) -> Body:
        start_response("200 OK", [])
        return Body()

    exchange, channel = wsgi_exchange(loop, app)
    channel.write_paused = True  # the client does not read
    exchange.start()
    exchange.body_complete()
    assert channel.written.endswith(b"3\r\none\r\n") and closed == []
    channel.release_writes()
    turn(loop)
    assert channel.written.endswith(b"3\r\ntwo\r\n0\r\n\r\n")
    assert closed == [True] and channel.completed == [True]


def test_wsgi_client_gone_mid_stream_closes_the_iterable(
    loop: asyncio.AbstractEventLoop
) -> None:
    closed: list[bool] = []

    def pieces() -> Iterator[bytes]:
        try:
            yield b"one"
            yield b"two"
        finally:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        return pieces()

    exchange, channel = wsgi_exchange(loop, app)
    channel.write_paused = True
    exchange.start()
    exchange.body_complete()
    exchange.client_gone()
    channel.release_writes()
    turn(loop)
    assert closed == [True]
    assert channel.completed == [False]
