"""The connection driver (server/protocol.py) through fakes: no socket, and
a clock the test moves (tests/fakes.py).

Each test plays a client against HttpConnection: bytes in, what the driver
writes out, its flags. Deadlines are exact here: `advance(4.9)` must not
close what `advance(5.1)` closes (WorkerState.now is the sweep's clock; the
driver adds one sweep interval of lag, so a deadline of T seconds fires when
the clock has moved by more than T + 1).
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from typing import Any

import pytest

from twincorn.server.protocol import LINGER_SECONDS, Deadline, Phase
from twincorn.testing import FakeWorker, Link, fake_worker

LAG = 1.0  # the sweep's lag the driver allows for (server/protocol.py, _LAG)
HELD: dict[str, asyncio.Event] = {}
SEEN: list[str] = []


def get(path: str = "/echo", *headers: str) -> bytes:
    return "\r\n".join([f"GET {path} HTTP/1.1", "Host: t", *headers, "", ""]).encode()


def post(path: str, body: bytes, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: t", f"Content-Length: {len(body)}", *headers]
    return "\r\n".join([*lines, "", ""]).encode() + body


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope["path"]
    body = b""
    if path in ("/echo", "/wait-for-leave"):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                SEEN.append("disconnect before the body")
                return
            body += message["body"]
            if not message["more_body"]:
                break
    if path == "/wait-for-leave":  # an SSE stream or long poll: waits to hear the client left
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"event\n", "more_body": True})
        message = await receive()
        SEEN.append(message["type"])
        await send({"type": "http.response.body", "body": b"bye\n"})
        return
    if path.startswith("/hold/"):
        event = HELD.setdefault(path[6:], asyncio.Event())
        await event.wait()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body or path.encode()})


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [])
    return [body or environ["PATH_INFO"].encode()]


@pytest.fixture(autouse=True)
def _fresh_globals() -> None:
    HELD.clear()
    SEEN.clear()


@pytest.fixture(params=["asgi", "wsgi"])
def worker(request: pytest.FixtureRequest) -> Any:
    app = asgi_app if request.param == "asgi" else wsgi_app
    with fake_worker(app, request.param) as w:
        yield w


def asgi_worker(**settings: Any) -> Any:
    return fake_worker(asgi_app, "asgi", **settings)


# -- pipelining, draining, refusals ------------------------------------------------


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
def test_pipelined_requests_are_answered_in_order(worker: FakeWorker, bytewise: bool) -> None:
    link = worker.connect()
    link.send(get("/a") + post("/echo", b"body") + get("/c"), bytewise=bytewise)
    assert [r.body for r in link.responses()] == [b"/a", b"body", b"/c"]
    assert not link.closed and link.deadline is Deadline.IDLE


def test_an_unread_body_is_drained_and_the_next_request_served() -> None:
    with asgi_worker() as worker:
        link = worker.connect()
        link.send(post("/one", b"x" * 10)[:-6])  # the app answers before the body ends
        assert link.statuses() == [200]
        assert link.deadline is Deadline.DRAIN
        link.send(b"x" * 6 + get("/two"))  # the rest is thrown away, never parsed
        assert [r.body for r in link.responses()] == [b"/one", b"/two"]


def test_a_bad_request_after_good_ones_is_answered_after_them(worker: FakeWorker) -> None:
    link = worker.connect()
    link.send(get("/a") + get("/b") + b"BAD REQUEST\r\n\r\n" + get("/never"))
    assert link.statuses() == [200, 200, 400]
    assert link.responses()[-1].header(b"connection") == b"close"
    # Closing: our FIN is out, the socket waits for the client's.
    assert link.transport.eof_written and not link.transport.closing
    assert link.phase is Phase.CLOSING
    link.send(get("/ignored"))  # read and dropped
    assert link.statuses() == [200, 200, 400]
    link.fin()
    assert link.transport.closing and link.phase is Phase.CLOSED


def test_expect_100_continue_is_sent_when_the_body_is_wanted() -> None:
    with asgi_worker() as worker:
        link = worker.connect()
        link.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        assert link.data.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        link.send(b"ok")
        assert [r.status for r in link.responses()] == [100, 200]
        assert not link.closed


def test_answering_without_the_body_of_an_expect_closes() -> None:
    # No 100 went out: the client may or may not send the body; the next
    # request cannot be found, so the response says close (RFC 9110 s10.1.1).
    with asgi_worker() as worker:
        link = worker.connect()
        link.send(b"POST /noread HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        [response] = link.responses()
        assert response.status == 200 and response.header(b"connection") == b"close"
        assert b"100 Continue" not in link.data
        assert link.closed


# -- deadlines, with the clock in hand ------------------------------------------------


def test_idle_connection_closes_at_its_keep_alive_deadline_not_before() -> None:
    with asgi_worker(keep_alive=5.0) as worker:
        link = worker.connect()
        link.send(get("/a"))
        worker.advance(5.0 + LAG - 0.1)
        assert not link.closed
        worker.advance(0.2)
        # Closed without a word, and at once: nothing of ours is unread (no
        # linger), and a request the client sends now is lost either way.
        assert link.transport.closing and link.phase is Phase.CLOSED
        assert link.statuses() == [200]


def test_after_a_refusal_the_close_lingers_for_the_clients_fin() -> None:
    with asgi_worker() as worker:
        link = worker.connect()
        link.send(b"NOT HTTP\r\n\r\n")
        assert link.statuses() == [400]
        assert link.phase is Phase.CLOSING and not link.transport.closing
        worker.advance(LINGER_SECONDS + LAG - 0.1)
        assert not link.transport.closing
        worker.advance(0.2)  # the client never sent its FIN: closed all the same
        assert link.transport.closing and not link.transport.aborted


def test_head_deadline_runs_from_the_first_byte() -> None:
    with asgi_worker(request_head=20.0) as worker:
        link = worker.connect()
        link.send(b"GET / HTTP/1.1\r\n")
        for _ in range(20):  # trickling does not push it back
            worker.advance(1.0)
            link.send(b"X-A: b\r\n")
        worker.advance(LAG + 0.1)
        assert link.statuses() == [408]


def test_a_body_that_trickles_runs_out_of_time() -> None:
    with asgi_worker(request_body=30.0, min_body_rate=500.0) as worker:
        link = worker.connect()
        link.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
        for _ in range(6):  # 10 bytes every 5 s: never silent for 30 s...
            worker.advance(5.0)
            link.send(b"x" * 10)
        assert link.statuses() == []
        worker.advance(5.0)  # ...but 60 bytes bought 0.12 s past the first 30 (+ lag)
        assert link.statuses() == [408]


def test_deadlines_passing_together_are_expired_a_slice_per_loop_turn() -> None:
    # Thousands of slow-loris heads from the same second expire together:
    # expiring them all in one turn stalled the requests being served.
    with asgi_worker(request_head=20.0, max_connections=1000) as worker:
        links = [worker.connect() for _ in range(200)]
        for link in links:
            link.send(b"GET / HTTP/1.1\r\n")
        worker.state.sweep(worker.state.now + 20.0 + LAG + 0.1)
        assert sum(link.statuses() == [408] for link in links) == 64
        worker.run(5)
        assert all(link.statuses() == [408] for link in links)


def test_a_fast_body_is_bound_only_by_silence() -> None:
    with asgi_worker(request_body=30.0, min_body_rate=500.0) as worker:
        link = worker.connect()
        link.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n")
        for _ in range(99):  # 10 kB every 5 s, far above 500 B/s, for 500 s
            worker.advance(5.0)
            link.send(b"x" * 10_000)
        link.send(b"x" * 10_000)
        assert link.statuses() == [200]


def test_no_deadline_runs_while_the_server_holds_the_body_back() -> None:
    with asgi_worker(request_body=30.0) as worker:
        link = worker.connect()
        # /hold does not read: past the high-water mark the driver stops reading.
        link.send(b"POST /hold/h HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n"
                  + b"x" * 100_000)
        assert not link.transport.reading
        worker.advance(120.0)
        assert link.statuses() == []  # not the client's fault: no 408


def test_a_deadline_waits_while_the_clients_bytes_sit_unread() -> None:
    # After a long blocking call the sweep can run before the loop reads:
    # the client's next request is in the socket, unread. It must be served.
    ours, theirs = socket.socketpair()
    try:
        with asgi_worker(keep_alive=5.0) as worker:
            link = worker.connect(sock=ours)
            link.send(get("/a"))
            theirs.sendall(get("/b"))  # arrived; the loop has not read it yet
            worker.advance(60.0)
            assert not link.closed
            link.send(ours.recv(65536))  # the loop reads it at last
            assert [r.body for r in link.responses()] == [b"/a", b"/b"]
    finally:
        ours.close()
        theirs.close()


def test_a_client_that_does_not_read_is_cut_after_the_send_timeout() -> None:
    with asgi_worker(send=60.0) as worker:
        link = worker.connect()
        link.fill()
        worker.advance(60.0 + LAG + 0.1)
        assert link.transport.aborted


def test_a_pipelined_request_waits_while_the_client_does_not_read() -> None:
    with asgi_worker() as worker:
        link = worker.connect()
        link.fill()
        link.send(get("/a") + get("/b"))
        assert link.statuses() == []  # nothing more is buffered for a non-reader
        link.drain()
        assert link.statuses() == [200, 200]


# -- the client's FIN, and its departure -------------------------------------------------


def test_half_close_after_a_request_still_gets_the_response(worker: FakeWorker) -> None:
    link = worker.connect()
    link.send(get("/a"))
    link.fin()
    assert link.statuses() == [200]
    assert link.transport.closing  # the client is done: closed at once, no linger


def test_half_close_ends_an_asgi_wait_for_the_client_to_leave() -> None:
    with asgi_worker() as worker:
        link = worker.connect()
        link.send(get("/wait-for-leave"))
        assert SEEN == []
        link.fin()
        assert SEEN == ["http.disconnect"]
        assert link.data.endswith(b"bye\n\r\n0\r\n\r\n")  # its last words still go out


def test_a_reset_ends_an_asgi_wait_for_the_client_to_leave() -> None:
    with asgi_worker() as worker:
        link = worker.connect()
        link.send(get("/wait-for-leave"))
        link.reset()
        assert SEEN == ["http.disconnect"]


@pytest.mark.parametrize("cut", [b"GET / HTTP/1.1\r\nHo", post("/echo", b"12345")[:-2]],
                         ids=["head", "body"])
def test_half_close_in_the_middle_of_a_request_is_400(worker: FakeWorker, cut: bytes) -> None:
    link = worker.connect()
    link.send(cut)
    link.fin()
    assert link.statuses() == [400]
    assert link.transport.closing


def test_a_lost_connection_lets_go_of_everything() -> None:
    with asgi_worker() as worker:
        link = worker.connect()
        link.send(get("/hold/x") + get("/b"))
        conn = link.conn
        link.reset()
        assert conn.transport is None and conn._current is None and not conn._pending
        assert not hasattr(conn.parser, "_parser")  # the llhttp parser is let go
        assert conn not in worker.state.connections


# -- a graceful stop --------------------------------------------------------------


def test_stopping_announces_the_close_on_the_next_response() -> None:
    with asgi_worker(keep_alive=5.0) as worker:
        link = worker.connect()
        link.send(get("/a"))
        worker.state.stopping = True
        worker.advance(3.0)
        assert not link.closed  # an idle connection keeps its keep-alive deadline
        link.send(get("/b"))
        responses = link.responses()
        assert [r.status for r in responses] == [200, 200]
        assert responses[0].header(b"connection") is None
        assert responses[1].header(b"connection") == b"close"
        assert link.closed


def test_stopping_answers_every_pipelined_request_the_last_says_close() -> None:
    with asgi_worker() as worker:
        link = worker.connect()
        link.send(get("/hold/x"))
        worker.state.stopping = True
        link.send(get("/b") + get("/c"))
        HELD["x"].set()
        worker.run()
        responses = link.responses()
        assert [r.status for r in responses] == [200, 200, 200]
        assert [r.header(b"connection") for r in responses] == [None, None, b"close"]


def test_stopping_closes_an_idle_connection_at_its_deadline() -> None:
    with asgi_worker(keep_alive=5.0) as worker:
        link = worker.connect()
        link.send(get("/a"))
        worker.state.stopping = True
        worker.advance(5.0 + LAG + 0.1)
        assert link.closed


# -- the connection limit ------------------------------------------------------------


def fill_worker(worker: FakeWorker) -> dict[str, Link]:
    """Four connections, one of each kind, then a wait past "fresh"."""
    links = {
        "idle": worker.connect(),
        "slow-head": worker.connect(),
        "silent": worker.connect(),
        "busy": worker.connect(),
    }
    links["idle"].send(get("/a"))
    links["slow-head"].send(b"GET / HTTP/1.1\r\n")
    links["busy"].send(get("/hold/busy"))
    worker.settle()
    return links


def test_a_full_worker_sheds_slow_connections_first_then_idle_ones() -> None:
    with asgi_worker(max_connections=4) as worker:
        links = fill_worker(worker)
        worker.advance(0.5)
        links["slow-head"].send(b"X-More: 1\r\n")
        worker.advance(2.0)  # the slow head began before the silent one was noticed
        newcomers = [worker.connect() for _ in range(3)]
        assert links["slow-head"].statuses() == [503]  # in the middle of something
        assert links["silent"].closed
        assert links["idle"].closed  # then the idle one
        assert not links["busy"].closed  # never: the application has the turn
        assert not any(n.closed for n in newcomers)
        fourth = worker.connect()  # only the busy one and newcomers are left
        assert fourth.statuses() == [503] and fourth.closed


def test_a_brand_new_connection_is_not_shed() -> None:
    with asgi_worker(max_connections=1) as worker:
        first = worker.connect()
        second = worker.connect()  # the first is "fresh": most likely sending now
        assert not first.closed
        assert second.statuses() == [503]


# -- the WSGI slot hand-off ---------------------------------------------------------------


def test_thousands_of_queued_wsgi_calls_run_one_per_turn_without_recursion() -> None:
    # One inline call spans many loop turns (a streamed response, its
    # client not reading) while thousands of keep-alive connections queue
    # for the slot. Handed over inside the last call's frames, each call
    # nested deeper: about 4 frames a call, RecursionError within a
    # thousand (issue 9). Handed over on the loop's next turn, each call
    # runs at the same depth.
    depths: list[int] = []
    links: list[Link] = []

    def stream() -> Any:
        yield b"first"
        links[0].fill()  # the client stops reading: the stream waits in the slot
        yield b"second"

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        depths.append(len(inspect.stack(0)))
        start_response("200 OK", [])
        return stream() if environ["PATH_INFO"] == "/stream" else [b"ok"]

    with fake_worker(app, "wsgi", max_connections=10_000) as worker:
        links.append(worker.connect())
        links[0].send(get("/stream"))
        links.extend(worker.connect() for _ in range(3000))
        for link in links[1:]:
            link.send(get("/one"))
        assert all(link.statuses() == [] for link in links[1:])  # all waiting
        links[0].drain()
        for _ in range(40):
            worker.run(100)
        assert all(link.statuses() == [200] for link in links)
        assert len(depths) == 3001
        assert max(depths) - min(depths) <= 2  # each call at the same depth
