"""What the lab runs: server configurations, the apps they serve, the model.

The experiment compares ways of serving an app whose every request waits
for something (a database, an API: here `sleep(service_time)`):

* a blocking WSGI app (`time.sleep`) holds its worker — or its thread — for
  the whole wait, so at most `workers x threads` requests are in progress
  at once: throughput levels off at `workers x threads / service_time`,
  and past that point each extra user only lengthens the queue;
* an async ASGI app (`await asyncio.sleep`) gives the event loop back while
  it waits, so one worker has as many requests in progress as there are
  users: throughput grows with the users (until the CPU, not the wait, is
  the limit).

`Setup.predicted_rps(users)` is that model, for a closed load of `users`
with no think time; `predicted_latency` follows from Little's law
(users = throughput x latency).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

#: The apps, by interface: the hello apps answer at once; the slow apps
#: wait `SLOW_APP_SECONDS` (a second by default), blocking or awaiting.
APPS = {
    ("wsgi", "hello"): "examples.wsgi.app:app",
    ("wsgi", "slow"): "examples.wsgi.slow_app:app",
    ("asgi", "hello"): "examples.asgi.app:app",
    ("asgi", "slow"): "examples.asgi.slow_app:app",
    # The WebSocket part: a chat room, every message sent to every member.
    ("asgi", "chat"): "examples.asgi.chat:app",
}

Command = Callable[[str, int], list[str]]


def model_rps(users: int, slots: int | None, service_time: float) -> float:
    """The model's throughput for `users` closed-loop users with no think
    time, `slots` requests served at once (None: as many as come)."""
    busy = users if slots is None else min(users, slots)
    return busy / service_time


def model_latency(users: int, slots: int | None, service_time: float) -> float:
    """Little's law: each user waits users / throughput seconds (at least
    the service time)."""
    return max(service_time, users / model_rps(users, slots, service_time))


@dataclass(frozen=True)
class Setup:
    """One way of serving: a server, its process model, an interface."""

    key: str
    title: str  # for charts and the summary
    server: str  # "twincorn", "gunicorn", "uvicorn"
    interface: str  # "wsgi" or "asgi"
    workers: int
    threads: int
    #: (app, port) -> the command line that serves `app` on 127.0.0.1:port
    command: Command = field(repr=False, compare=False)
    #: The command as a reader would type it, APP standing for the app.
    shown: str = ""
    #: Requests in progress at once at most; None for an async server.
    slots: int | None = None
    peer: bool = False  # one of the seed's own tools rather than twincorn

    def app(self, kind: str) -> str:
        return APPS[(self.interface, kind)]

    def shown_command(self, kind: str) -> str:
        """The command line as a reader would type it."""
        return self.shown.replace("APP", self.app(kind))

    def predicted_rps(self, users: int, service_time: float) -> float:
        return model_rps(users, self.slots, service_time)

    def predicted_latency(self, users: int, service_time: float) -> float:
        return model_latency(users, self.slots, service_time)

    def ceiling(self, service_time: float) -> float | None:
        """Where the model says throughput levels off (None: it does not)."""
        return None if self.slots is None else self.slots / service_time


def _twincorn(workers: int, threads: int) -> Command:
    def argv(app: str, port: int) -> list[str]:
        return [sys.executable, "-m", "twincorn", "serve", app, "-w", str(workers),
                "--threads", str(threads), "-b", f"127.0.0.1:{port}", "--no-access-log",
                "--timeout", "120", "--graceful-timeout", "2"]
    return argv


def _gunicorn(workers: int, worker_class: str | None = None) -> Command:
    def argv(app: str, port: int) -> list[str]:
        extra = ["-k", worker_class] if worker_class else []
        return [sys.executable, "-m", "gunicorn", app, "-w", str(workers), *extra,
                "-b", f"127.0.0.1:{port}", "--timeout", "120", "--graceful-timeout", "2",
                "--backlog", "2048"]
    return argv


def _uvicorn(app: str, port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log", "--log-level", "warning"]


def twincorn_setups(workers: int = 4, threads: int = 8) -> list[Setup]:
    """The three configurations the seed's lesson is about, on twincorn."""
    return [
        Setup("twincorn-wsgi", f"twincorn -w {workers} (WSGI, blocking)", "twincorn", "wsgi",
              workers, 1, _twincorn(workers, 1), f"twincorn serve APP -w {workers}",
              slots=workers),
        Setup("twincorn-wsgi-threads", f"twincorn -w {workers} --threads {threads} (WSGI)",
              "twincorn", "wsgi", workers, threads, _twincorn(workers, threads),
              f"twincorn serve APP -w {workers} --threads {threads}", slots=workers * threads),
        Setup("twincorn-asgi", "twincorn -w 1 (ASGI, async)", "twincorn", "asgi", 1, 1,
              _twincorn(1, 1), "twincorn serve APP -w 1"),
    ]


def peer_setups(workers: int = 4) -> list[Setup]:
    """The seed's own commands, where gunicorn and uvicorn are installed."""
    found: list[Setup] = []
    has = {name: importlib.util.find_spec(name) is not None for name in ("gunicorn", "uvicorn")}
    if has["gunicorn"]:
        found.append(Setup("gunicorn-wsgi", f"gunicorn -w {workers} (WSGI, sync)", "gunicorn",
                           "wsgi", workers, 1, _gunicorn(workers), f"gunicorn -w {workers} APP",
                           slots=workers, peer=True))
    if has["gunicorn"] and has["uvicorn"]:
        found.append(Setup("gunicorn-uvicorn-asgi", f"gunicorn -w {workers} -k UvicornWorker",
                           "gunicorn", "asgi", workers, 1,
                           _gunicorn(workers, "uvicorn.workers.UvicornWorker"),
                           f"gunicorn APP -w {workers} -k uvicorn.workers.UvicornWorker",
                           peer=True))
    if has["uvicorn"]:
        found.append(Setup("uvicorn-asgi", "uvicorn (ASGI, one process)", "uvicorn", "asgi",
                           1, 1, _uvicorn, "uvicorn APP", peer=True))
    return found


def websocket_setups(connections: int, peers: bool = False) -> list[Setup]:
    """The WebSocket part's servers, each one process holding every socket:
    twincorn's one async worker (`connections`: its connection limit, an
    open WebSocket counting as one) and, with `peers`, uvicorn with its
    default WebSocket implementation (`--ws auto`)."""
    def twincorn(app: str, port: int) -> list[str]:
        return [*_twincorn(1, 1)(app, port), "--worker-connections", str(connections)]

    found = [Setup("twincorn-ws", "twincorn -w 1", "twincorn", "asgi", 1, 1, twincorn,
                   f"twincorn serve APP -w 1 --worker-connections {connections}")]
    if peers and importlib.util.find_spec("uvicorn") is not None:
        found.append(Setup("uvicorn-ws", f"uvicorn (--ws {uvicorn_ws_default()})", "uvicorn",
                           "asgi", 1, 1, _uvicorn, "uvicorn APP", peer=True))
    return found


def uvicorn_ws_default() -> str:
    """The name of the implementation uvicorn's `--ws auto` picks here
    ("websockets-sansio" in uvicorn 0.35 and later, where websockets is
    installed), or "auto" where it cannot be told."""
    try:
        from uvicorn.config import WS_PROTOCOLS
        from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol
    except Exception:  # not installed, or laid out differently: say "auto"
        return "auto"
    if AutoWebSocketsProtocol is None:
        return "none"
    chosen = f"{AutoWebSocketsProtocol.__module__}:{AutoWebSocketsProtocol.__qualname__}"
    return next((name for name, path in WS_PROTOCOLS.items()
                 if path == chosen and name != "auto"), "auto")
