"""How the ASGI adapter runs applications: errors, contexts, suspension,
concurrency, and stopping with applications in flight."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import queue
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import pytest

from asgi_types import App, Message, Receive, Scope, Send, ServeFn
from support import Response, RunningServer, connect, exchange, parse_responses, read_until_close

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
START: Message = {"type": "http.response.start", "status": 200, "headers": []}


async def respond(send: Send, body: bytes = b"ok", status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


def only(data: bytes) -> Response:
    responses = parse_responses(data)
    assert len(responses) == 1, data[:300]
    return responses[0]


def still_serves(server: RunningServer) -> None:
    response = httpx.get(server.url + "/healthy", timeout=3)
    assert response.status_code == 200 and response.text == "ok"


def guarded(handler: App) -> App:
    """`handler` for http requests but /healthy, which always answers "ok"."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/healthy":
            await respond(send)
            return
        await handler(scope, receive, send)

    return app


# -- errors ----------------------------------------------------------------------


@pytest.mark.parametrize("suspend", [False, True])
def test_exception_before_start_is_a_500_and_close(
    serve: ServeFn, suspend: bool, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        if suspend:
            await asyncio.sleep(0)
        raise ValueError("boom")

    server = serve(guarded(handler))
    with caplog.at_level(logging.ERROR, logger="twincorn.error"):
        # Keep-alive and a second request pipelined: the 500 ends the connection.
        data = exchange(server.port, GET + GET)
    response = only(data)
    assert response.status == 500
    assert response.header(b"connection") == b"close"
    assert response.complete
    assert any(
        r.exc_info is not None and isinstance(r.exc_info[1], ValueError) for r in caplog.records
    )
    still_serves(server)


@pytest.mark.parametrize("sent_body", [False, True])
def test_exception_after_start_closes_the_connection(serve: ServeFn, sent_body: bool) -> None:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        if sent_body:
            await send({"type": "http.response.body", "body": b"partial", "more_body": True})
            await asyncio.sleep(0.01)
        raise ValueError("boom")

    server = serve(guarded(handler))
    data = exchange(server.port, GET + GET)
    if sent_body:
        # What was sent stays sent; the response is cut short (no last chunk).
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        assert data.endswith(b"7\r\npartial\r\n")
        response = only(data)
        assert not response.complete
    else:
        assert data == b""  # nothing of the head had been written
    still_serves(server)


def test_return_without_a_response_is_a_500(serve: ServeFn) -> None:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()

    server = serve(guarded(handler))
    response = only(exchange(server.port, GET))
    assert response.status == 500
    assert response.header(b"connection") == b"close"
    still_serves(server)


def test_return_in_the_middle_of_the_body_closes_the_connection(serve: ServeFn) -> None:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        await send({"type": "http.response.body", "body": b"half", "more_body": True})

    server = serve(guarded(handler))
    data = exchange(server.port, GET + GET)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"4\r\nhalf\r\n")
    assert not only(data).complete
    still_serves(server)


Misuse = Callable[[Send], Awaitable[None]]


def misuse_app(errors: queue.Queue[BaseException], misuse: Misuse) -> App:
    """Records what `misuse(send)` raised, then lets it propagate."""

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await misuse(send)
        except Exception as exc:
            errors.put(exc)
            raise
        errors.put(AssertionError("no error raised"))

    return guarded(handler)


async def body_before_start(send: Send) -> None:
    await send({"type": "http.response.body", "body": b"x"})


async def unknown_type(send: Send) -> None:
    await send({"type": "http.response.bogus"})


async def websocket_message(send: Send) -> None:
    await send({"type": "websocket.accept"})


@pytest.mark.parametrize("misuse", [body_before_start, unknown_type, websocket_message])
def test_send_misuse_raises_and_becomes_a_500(serve: ServeFn, misuse: Misuse) -> None:
    errors: queue.Queue[BaseException] = queue.Queue()
    server = serve(misuse_app(errors, misuse))
    response = only(exchange(server.port, GET))
    assert isinstance(errors.get(timeout=2), RuntimeError)
    assert response.status == 500
    still_serves(server)


@pytest.mark.parametrize("status", [99, 600, 0, "200", None, 200.0])
def test_invalid_status_raises_and_becomes_a_500(serve: ServeFn, status: object) -> None:
    errors: queue.Queue[BaseException] = queue.Queue()

    async def misuse(send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"never"})

    server = serve(misuse_app(errors, misuse))
    response = only(exchange(server.port, GET))
    assert isinstance(errors.get(timeout=2), Exception)
    assert response.status == 500
    assert b"never" not in response.body
    still_serves(server)


@pytest.mark.parametrize(
    "header",
    [(b"bad name", b"v"), (b"x-ok", b"a\r\nx-injected: 1"), ("x-str", "text"), (b"x-nul", b"\x00")],
)
def test_invalid_header_raises_and_becomes_a_500(serve: ServeFn, header: Any) -> None:
    errors: queue.Queue[BaseException] = queue.Queue()

    async def misuse(send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [header]})
        await send({"type": "http.response.body", "body": b"never"})

    server = serve(misuse_app(errors, misuse))
    data = exchange(server.port, GET)
    assert isinstance(errors.get(timeout=2), Exception)
    assert only(data).status == 500
    assert b"injected" not in data
    still_serves(server)


def test_start_twice_raises_and_the_first_start_stands(serve: ServeFn) -> None:
    errors: queue.Queue[BaseException] = queue.Queue()

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        try:
            await send({"type": "http.response.start", "status": 202, "headers": []})
        except RuntimeError as exc:
            errors.put(exc)
        await send({"type": "http.response.body", "body": b"created"})

    server = serve(guarded(handler))
    response = only(exchange(server.port, GET))
    assert isinstance(errors.get(timeout=2), RuntimeError)
    assert (response.status, response.body) == (201, b"created")


def test_many_failures_leave_the_worker_serving(serve: ServeFn) -> None:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["query_string"] == b"ok":
            await respond(send, b"fine")
            return
        raise KeyError(scope["query_string"])

    server = serve(guarded(handler))
    logging.getLogger("twincorn.error").disabled = True
    try:
        for i in range(20):
            data = exchange(server.port, b"GET /?%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            assert only(data).status == 500
    finally:
        logging.getLogger("twincorn.error").disabled = False
    response = httpx.get(server.url + "/?ok")
    assert (response.status_code, response.text) == (200, "fine")


# -- contexts --------------------------------------------------------------------

request_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="unset")
worker_var: contextvars.ContextVar[str] = contextvars.ContextVar("worker_var")


@pytest.mark.parametrize("suspend", [False, True])
def test_each_request_runs_in_a_fresh_context(serve: ServeFn, suspend: bool) -> None:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        before = request_var.get()
        request_var.set(scope["path"])
        if suspend:
            await asyncio.sleep(0)
        after = request_var.get()  # the same context after a suspension
        await respond(send, f"{before} {after} {worker_var.get('missing')}".encode())

    token = worker_var.set("from the worker's start")
    try:
        server = serve(guarded(handler))
    finally:
        worker_var.reset(token)
    with httpx.Client(base_url=server.url) as client:  # one keep-alive connection
        texts = [client.get(f"/r{i}").text for i in range(3)]
    assert texts == [f"unset /r{i} from the worker's start" for i in range(3)]
    assert request_var.get() == "unset"  # nothing leaked to the test's context


def test_context_set_by_one_request_is_not_seen_by_a_concurrent_one(serve: ServeFn) -> None:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        request_var.set(scope["path"])
        await asyncio.sleep(0.05)
        await respond(send, request_var.get().encode())

    server = serve(guarded(handler))
    results: dict[str, str] = {}

    def fetch(path: str) -> None:
        results[path] = httpx.get(server.url + path, timeout=3).text

    threads = [threading.Thread(target=fetch, args=(f"/p{i}",)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert results == {f"/p{i}": f"/p{i}" for i in range(5)}


# -- suspending or not -----------------------------------------------------------


async def no_suspension(scope: Scope, receive: Receive, send: Send) -> None:
    body = (await receive())["body"]
    await respond(send, b"inline:" + body)


async def bare_yield(scope: Scope, receive: Receive, send: Send) -> None:
    body = (await receive())["body"]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    await respond(send, b"sleep0:" + body)


async def awaits_a_future(scope: Scope, receive: Receive, send: Send) -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[bytes] = loop.create_future()
    loop.call_later(0.02, future.set_result, b"future:")
    prefix = await future
    body = (await receive())["body"]
    await respond(send, prefix + body)


async def in_a_child_task(scope: Scope, receive: Receive, send: Send) -> None:
    async def read() -> bytes:
        return bytes((await receive())["body"])

    body = await asyncio.ensure_future(read())
    await respond(send, b"task:" + body)


@pytest.mark.parametrize(
    ("handler", "prefix"),
    [
        (no_suspension, b"inline:"),
        (bare_yield, b"sleep0:"),
        (awaits_a_future, b"future:"),
        (in_a_child_task, b"task:"),
    ],
)
def test_apps_that_suspend_or_not(serve: ServeFn, handler: App, prefix: bytes) -> None:
    server = serve(guarded(handler))
    with httpx.Client(base_url=server.url) as client:
        for i in range(3):
            response = client.post("/", content=b"body%d" % i)
            assert response.status_code == 200
            assert response.content == prefix + b"body%d" % i


def test_receive_waits_for_a_body_not_yet_sent(serve: ServeFn) -> None:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message["body"]
            if not message["more_body"]:
                break
        await respond(send, body)

    server = serve(guarded(handler))
    with connect(server.port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n")
        time.sleep(0.1)
        sock.sendall(b"abc")
        time.sleep(0.1)
        sock.sendall(b"def")
        sock.shutdown(socket.SHUT_WR)
        response = only(read_until_close(sock))
    assert (response.status, response.body) == (200, b"abcdef")


def test_app_runs_in_a_task_with_timeouts_and_task_groups(serve: ServeFn) -> None:
    # asyncio.timeout, TaskGroup and libraries built on them (anyio, hence
    # Starlette and FastAPI) need asyncio.current_task() from the first line
    # of the application, before anything suspends.
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        async with asyncio.timeout(1):
            await respond(send, b"in a task")

    server = serve(guarded(handler))
    response = httpx.get(server.url + "/")
    assert (response.status_code, response.text) == (200, "in a task")


def test_anyio_cancel_scopes_and_task_groups_work_from_the_first_line(serve: ServeFn) -> None:
    # What Starlette's StreamingResponse and BaseHTTPMiddleware do.
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        with anyio.fail_after(1):
            async with anyio.create_task_group() as group:
                group.start_soon(respond, send, b"anyio")

    server = serve(guarded(handler))
    response = httpx.get(server.url + "/")
    assert (response.status_code, response.text) == (200, "anyio")


def test_an_app_whose_call_raises_at_once_gets_a_500(serve: ServeFn) -> None:
    class SyncCallRaises:
        def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
            if scope["type"] == "http" and scope["path"] != "/healthy":
                raise LookupError("no route")
            return guarded(no_suspension)(scope, receive, send)

    server = serve(SyncCallRaises(), interface="asgi")
    response = only(exchange(server.port, GET))
    assert response.status == 500
    still_serves(server)


def test_timeout_in_the_app_cancels_only_its_own_wait(serve: ServeFn) -> None:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with asyncio.timeout(0.05):
                await asyncio.sleep(5)
        except TimeoutError:
            await respond(send, b"timed out")

    server = serve(guarded(handler))
    response = httpx.get(server.url + "/", timeout=3)
    assert response.text == "timed out"


# -- many at once ----------------------------------------------------------------


def test_fifty_slow_requests_run_at_once_on_one_worker(serve: ServeFn) -> None:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(0.5)
        await respond(send, scope["path"].encode())

    server = serve(guarded(handler))
    results: dict[int, bytes] = {}

    def fetch(i: int) -> None:
        data = exchange(server.port, b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
        results[i] = only(data).body

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(50)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    elapsed = time.monotonic() - started
    assert results == {i: b"/%d" % i for i in range(50)}
    # One after another would take 25 s.
    assert elapsed < 2.0, elapsed


# -- stopping ----------------------------------------------------------------------


def test_stop_cancels_an_app_that_never_answers(serve: ServeFn) -> None:
    events: queue.Queue[str] = queue.Queue()

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        events.put("started")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            events.put("cancelled")
            raise
        finally:
            events.put("cleaned up")

    server = serve(guarded(handler), graceful_timeout=0.2)
    with connect(server.port) as sock:
        sock.sendall(GET)
        assert events.get(timeout=2) == "started"
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 3
        assert read_until_close(sock, 2) == b""
    assert events.get(timeout=1) == "cancelled"
    assert events.get(timeout=1) == "cleaned up"
    assert server.exit_status == 0


def test_stop_lets_a_slow_response_finish(serve: ServeFn) -> None:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(0.3)
        await respond(send, b"finished")

    server = serve(guarded(handler), graceful_timeout=3)
    with connect(server.port) as sock:
        sock.sendall(GET)
        time.sleep(0.05)
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        response = only(read_until_close(sock, 3))
        stopper.join(3)
    assert (response.status, response.body) == (200, b"finished")
    assert response.header(b"connection") == b"close"
    assert server.exit_status == 0
