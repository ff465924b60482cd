"""Zero-loss restarts: every way a worker ends while the server keeps serving
loses no request of a client that reuses its connections.

Each test runs a KeepAliveLoad (client threads, each reusing one
http.client connection, no retries) across one event — HUP, USR2 then TERM
of the old master, TTIN then TTOU, the three recycling limits, TERM of the
whole server — and asserts that no request failed, that the event really
happened (the pids that answer changed, the old master exited) and that
requests were served before, during and after it.

The apps (tests/restart_apps.py) answer their worker's pid, so the
responses themselves show which workers served. `-rP` prints each test's
counts (requests, connections, responses that said Connection: close, the
longest wait).
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from master_support import KeepAliveLoad, Master, children, get

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="the master needs fork"),
]

CLIENTS = 6
APPS = Path(__file__).resolve().parent  # restart_apps.py: pid apps with /slow and /leak


def start(factory: type[Master], interface: str, *args: str) -> Master:
    master = factory(f"restart_apps:{interface}", "--app-dir", str(APPS), *args)
    workers = int(args[args.index("-w") + 1]) if "-w" in args else 1
    master.wait_for(lambda: len(master.workers()) == workers, 15, f"{workers} workers")
    return master


@pytest.fixture
def loads() -> Iterator[Callable[..., KeepAliveLoad]]:
    """loads(port, ...) starts a KeepAliveLoad; all are stopped after the test."""
    started: list[KeepAliveLoad] = []

    def begin(port: int, clients: int = CLIENTS, path: str = "/", timeout: float = 5.0,
              think: float = 0.0) -> KeepAliveLoad:
        load = KeepAliveLoad(port, clients=clients, path=path, timeout=timeout, think=think)
        started.append(load)
        return load

    yield begin
    for load in started:
        load.stop()


def served_by(load: KeepAliveLoad) -> set[int]:
    """The pids that answered."""
    return {int(body) for body in load.bodies}


def answered_by(port: int) -> int:
    """The pid that answers a request on a new connection (0 if none did)."""
    status, body = get(port)
    return int(body) if status == 200 else 0


def check(master: Master, *loads: KeepAliveLoad) -> None:
    """No failure in any of the loads; their counts are printed (-rP)."""
    for load in loads:
        print(load.summary())
    failed = sum(len(load.failures) for load in loads)
    summaries = "\n".join(load.summary() for load in loads)
    assert failed == 0, f"{summaries}\n{master.output()}"


def phases(load: KeepAliveLoad, began: float, ended: float) -> tuple[int, int, int]:
    """Responses before, during and after the event."""
    return (load.ok_between(0, began), load.ok_between(began, ended),
            load.ok_between(ended))


def wait_replaced(master: Master, old: set[int], count: int, seconds: float = 20) -> set[int]:
    """Wait until none of `old` is a worker and `count` workers run; the new set."""
    master.wait_for(lambda: not (master.workers() & old) and len(master.workers()) == count,
                    seconds, f"workers {sorted(old)} to be replaced")
    return master.workers()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
def test_hup_loses_no_keep_alive_request(
    master_factory: type[Master], loads: Callable[..., KeepAliveLoad],
    interface: str,
) -> None:
    master = start(master_factory, interface, "-w", "2")
    load = loads(master.port, clients=CLIENTS)
    # And two clients that pause between requests, as people do: their
    # connections are idle most of the time when a worker stops.
    people = loads(master.port, clients=2, think=0.1)
    load.wait_for_ok(200, 10, "before the first HUP")
    began = time.monotonic()
    generations = [master.workers()]
    for _ in range(3):
        master.signal(signal.SIGHUP)
        generations.append(wait_replaced(master, generations[-1], 2))
        load.wait_for_ok(100, 10, "after a HUP")
        time.sleep(0.3)  # the people's connections move on too
    ended = time.monotonic()
    load.wait_for_ok(200, 10, "after the last HUP")
    load.stop()
    people.stop()
    check(master, load, people)
    assert people.ok >= 20
    before, during, after = phases(load, began, ended)
    assert before >= 200 and during >= 300 and after >= 200
    assert len(served_by(load)) >= 6
    last = {int(body) for body in load.bodies_between(ended)}
    assert last and last <= generations[-1]  # the old workers are gone


def read_pid(path: Path) -> int:
    """The pid in a pid file; 0 while it is absent or being written."""
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return 0


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


@pytest.mark.timeout(60)
def test_usr2_then_term_of_the_old_master_loses_no_keep_alive_request(
    master_factory: type[Master], tmp_path: Path, loads: Callable[..., KeepAliveLoad],
) -> None:
    pid_file = tmp_path / "master.pid"
    master = start(master_factory, "wsgi", "-w", "2", "--pid", str(pid_file))
    old_workers = master.workers()
    new_pid = 0
    try:
        load = loads(master.port, clients=CLIENTS)
        load.wait_for_ok(200, 10, "before USR2")
        began = time.monotonic()
        master.signal(signal.SIGUSR2)
        master.wait_for(lambda: read_pid(pid_file) not in (0, master.pid), 15, "the new master")
        new_pid = read_pid(pid_file)
        master.wait_for(lambda: len(children(new_pid)) == 2, 15, "the new master's workers")
        new_workers = children(new_pid)
        # Both masters serve side by side until the operator retires the old
        # one. The keep-alive clients stay with the workers they know: a new
        # connection per request shows the new workers serve.
        master.wait_for(lambda: answered_by(master.port) in new_workers, 10,
                        "the new master's workers to serve")
        load.wait_for_ok(100, 10, "beside both masters")
        master.signal(signal.SIGTERM)
        assert master.proc.wait(20) == 0
        assert all(gone(pid) for pid in old_workers)
        ended = time.monotonic()
        load.wait_for_ok(200, 10, "after the old master left")
        load.stop()
        check(master, load)
        before, during, after = phases(load, began, ended)
        assert before >= 200 and during >= 100 and after >= 200
        assert children(new_pid) == new_workers
        last = {int(body) for body in load.bodies_between(ended)}
        assert last and last <= new_workers
    finally:
        if new_pid:
            os.kill(new_pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while not gone(new_pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert gone(new_pid)


@pytest.mark.timeout(60)
def test_ttin_then_ttou_loses_no_keep_alive_request(
    master_factory: type[Master], loads: Callable[..., KeepAliveLoad],
) -> None:
    master = start(master_factory, "wsgi", "-w", "2")
    first = master.workers()
    load = loads(master.port, clients=CLIENTS)
    load.wait_for_ok(200, 10, "before TTIN")
    began = time.monotonic()
    retired: set[int] = set()
    for _ in range(2):  # the second round retires the other first-born worker
        before_ttin = master.workers()
        master.signal(signal.SIGTTIN)
        master.wait_for(lambda: len(master.workers()) == 3, 15, "a third worker")
        (added,) = master.workers() - before_ttin
        master.wait_for(lambda: answered_by(master.port) == added,  # noqa: B023 (called now)
                        10, "the third worker to serve a new connection")
        master.signal(signal.SIGTTOU)
        master.wait_for(lambda: len(master.workers()) == 2, 15, "a worker to be retired")
        retired |= before_ttin - master.workers()
        assert added in master.workers()  # the oldest goes, not the newest
        load.wait_for_ok(100, 10, "after TTOU")
    ended = time.monotonic()
    load.wait_for_ok(200, 10, "after the last TTOU")
    load.stop()
    check(master, load)
    assert retired == first
    before, during, after = phases(load, began, ended)
    assert before >= 200 and during >= 200 and after >= 200


# The limit and the path that reaches it (a worker starts at about 26 MB;
# /leak grows it by 96 MB within a few hundred requests).
RECYCLING = {
    "max-requests": (("--max-requests", "300", "--max-requests-jitter", "100"), "/"),
    "max-worker-lifetime": (("--max-worker-lifetime", "1"), "/"),
    "max-worker-memory": (("--max-worker-memory", "64m"), "/leak"),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("limit", list(RECYCLING))
def test_recycling_loses_no_keep_alive_request(
    master_factory: type[Master], loads: Callable[..., KeepAliveLoad],
    limit: str, workers: int,
) -> None:
    # With -w 1 the replacement starts only once the old worker is gone:
    # connections wait in the listen queue meanwhile (slow, not failed).
    flags, path = RECYCLING[limit]
    master = start(master_factory, "wsgi", "-w", str(workers), *flags)
    load = loads(master.port, clients=CLIENTS, path=path, timeout=10.0)
    began = time.monotonic()
    # Two generations replaced: at least workers + 2 pids have answered.
    master.wait_for(lambda: len(served_by(load)) >= workers + 2, 25,
                    f"two recyclings ({load.summary()})")
    ended = time.monotonic()
    load.wait_for_ok(100, 10, "after the recyclings")
    load.stop()
    check(master, load)
    output = master.output()
    assert "recycling this worker" in output  # the worker's own word for it
    assert "died" not in output
    assert load.ok_between(began, ended) >= 100


@pytest.mark.timeout(60)
@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
def test_term_answers_every_request_already_sent(
    master_factory: type[Master], loads: Callable[..., KeepAliveLoad],
    interface: str,
) -> None:
    """Slow requests (0.5 s) in flight when TERM arrives all get their 200
    (with Connection: close); keep-alive clients mid-stream lose no request
    sent before TERM. Requests sent after it are not counted: the server
    is going away."""
    master = start(master_factory, interface, "-w", "2", "--threads", "4")
    slow = loads(master.port, clients=4, path="/slow")
    fast = loads(master.port, clients=4)
    fast.wait_for_ok(200, 10, "before TERM")
    slow.wait_for_ok(8, 10, "before TERM")

    def all_slow_in_flight() -> bool:
        now = time.monotonic()
        sent = slow.sent_in_flight()
        return len(sent) == 4 and all(0.05 < now - t < 0.3 for t in sent)

    master.wait_for(all_slow_in_flight, 10, "four slow requests in flight")
    term = time.monotonic()
    master.signal(signal.SIGTERM)
    assert master.proc.wait(20) == 0
    exited = time.monotonic()
    time.sleep(0.2)
    slow.stop()
    fast.stop()
    for name, load in (("slow", slow), ("fast", fast)):
        late = Counter(f.kind for f in load.failures if f.sent and term <= f.sent < exited)
        print(f"{name}: {load.summary()}; sent after TERM, failed before the master "
              f"exited: {dict(late)}")
    for load in (slow, fast):
        lost = [f for f in load.failures if f.sent is not None and f.sent < term]
        assert len(lost) == 0, f"{load.summary()}\n{lost[:5]}\n{master.output()}"
    answered = [d for d in slow.done if d.sent < term < d.at]
    assert len(answered) == 4  # each slow client's request in flight at TERM
    assert all(d.closed for d in answered)
    assert fast.ok_between(0, term) >= 200


@pytest.mark.timeout(60)
def test_after_term_kept_connections_are_answered_and_new_ones_refused(
    master_factory: type[Master],
) -> None:
    """An idle keep-alive connection outlives TERM until its deadline: its
    next request is answered, saying Connection: close. A new connection
    is refused at once, not left in a queue nobody reads."""
    master = start(master_factory, "wsgi", "-w", "1")
    with socket.create_connection(("127.0.0.1", master.port), timeout=5) as kept:
        kept.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert kept.recv(65536).startswith(b"HTTP/1.1 200 ")
        master.signal(signal.SIGTERM)
        time.sleep(0.5)  # the worker has taken its queue and closed its listener
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", master.port), timeout=5).close()
        kept.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        answer = kept.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 ") and b"connection: close" in answer
    assert master.proc.wait(20) == 0
