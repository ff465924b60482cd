"""Listening sockets: binding them, and accepting only while there is room.

The worker accepts connections itself (a reader callback on the listening
socket) rather than through loop.create_server, so that it can stop
accepting while its WSGI slots are all busy and leave new connections in
the kernel's queue for another worker to take. With TLS on, a connection
accepted on a TCP socket goes through server/tls.py's TlsAcceptor first
(unix: sockets stay plain: their peers are on this machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING

from twincorn.address import AddressError
from twincorn.address import parse_address as parse_address_text
from twincorn.config import UPGRADE_ENV

if TYPE_CHECKING:
    from twincorn.server.tls import TlsAcceptor

log = logging.getLogger("twincorn.error")

# Out of file descriptors: accepting pauses this long, while room is made.
_EXHAUSTED_PAUSE = 0.1
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def raise_descriptor_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit
    (as nginx's worker_rlimit_nofile and Go's runtime do): the soft 1024
    of many systems caps a worker far below --worker-connections. The
    limit now in force, or 0 where it cannot be known."""
    try:
        import resource
    except ImportError:  # Windows
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# The unix: socket files this process owns, removed again by release().
_bound_paths: set[str] = set()


class BindError(Exception):
    """An address that cannot be listened on, in one line."""


def parse_address(text: str) -> tuple[socket.AddressFamily, object]:
    """One --bind address as (family, address): address.py reads it."""
    try:
        return parse_address_text(text)
    except AddressError as exc:
        raise BindError(f"cannot listen on {exc}") from None


def bind(
    text: str, backlog: int, *, reuse_port: bool = False, unix_mode: int | None = None
) -> socket.socket:
    """A listening socket for one --bind address."""
    family, address = parse_address(text)
    if family == socket.AF_UNSPEC:
        assert isinstance(address, int)
        return inherited(address, text)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_UNIX:
            assert isinstance(address, str)
            if os.path.exists(address) and stat.S_ISSOCK(os.stat(address).st_mode):
                os.unlink(address)  # left by a server that did not stop cleanly
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)  # type: ignore[arg-type]
        if family == socket.AF_UNIX:
            _bound_paths.add(str(address))
            if unix_mode is not None:
                os.chmod(str(address), unix_mode)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on {text}: {exc.strerror or exc}") from None
    return sock


def inherited(fd: int, text: str) -> socket.socket:
    """A listening socket handed over already open (fd://N, systemd)."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise BindError(f"cannot listen on {text}: {exc.strerror or exc}") from None
    if sock.type != socket.SOCK_STREAM or not sock.getsockopt(
        socket.SOL_SOCKET, socket.SO_ACCEPTCONN
    ):
        sock.detach()
        raise BindError(f"cannot listen on {text}: not a listening stream socket")
    sock.setblocking(False)
    return sock


def systemd_sockets(environ: dict[str, str] | None = None) -> list[socket.socket]:
    """The sockets systemd passed (socket activation: LISTEN_FDS, LISTEN_PID).

    sd_listen_fds(3): they are fds 3, 4, ... and are ours only if LISTEN_PID
    is this process. The variables are removed so that children do not take
    the sockets for their own.
    """
    env = os.environ if environ is None else environ
    count, pid = env.get("LISTEN_FDS", ""), env.get("LISTEN_PID", "")
    if not count.isdigit() or pid != str(os.getpid()):
        return []
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        env.pop(name, None)
    return [inherited(3 + i, f"systemd socket {3 + i}") for i in range(int(count))]


def upgrade_sockets(environ: dict[str, str] | None = None) -> list[socket.socket]:
    """The sockets an old master handed over when it re-executed us (USR2).

    From now on this process owns them: it removes their unix: files when
    it stops, unless it hands them over again.
    """
    env = os.environ if environ is None else environ
    text = env.pop(UPGRADE_ENV, "")
    if not text:
        return []
    sockets = [inherited(int(fd), f"inherited socket {fd}") for fd in text.split(",")]
    reclaim(sockets)
    return sockets


def reclaim(sockets: list[socket.socket]) -> None:
    """Own these sockets' unix: files (again, if a new master died)."""
    for sock in sockets:
        if sock.family == socket.AF_UNIX and isinstance(sock.getsockname(), str):
            _bound_paths.add(sock.getsockname())


def hand_over(sockets: list[socket.socket]) -> str:
    """Before a USR2 re-execution: let the sockets pass through exec, and
    give up their unix: files (the new master removes them in its turn).
    The value of UPGRADE_ENV for the new process."""
    for sock in sockets:
        os.set_inheritable(sock.fileno(), True)
        if sock.family == socket.AF_UNIX:
            _bound_paths.discard(sock.getsockname())
    return ",".join(str(sock.fileno()) for sock in sockets)


def open_sockets(
    binds: tuple[str, ...], backlog: int, *, reuse_port: bool = False,
    unix_mode: int | None = None,
) -> list[socket.socket]:
    """The listening sockets: those of the master we replace (USR2), else
    systemd's if it passed some, else one per bind."""
    handed = upgrade_sockets()
    if handed:
        log.info("upgrade: %d socket%s inherited from the old master", len(handed),
                 "" if len(handed) == 1 else "s")
        return handed
    activated = systemd_sockets()
    if activated:
        log.info("socket activation: %d socket%s from systemd (--bind ignored)", len(activated),
                 "" if len(activated) == 1 else "s")
        return activated
    opened: list[socket.socket] = []
    try:
        for address in binds:
            opened.append(bind(address, backlog, reuse_port=reuse_port, unix_mode=unix_mode))
    except BindError:
        for sock in opened:
            release(sock)
        raise
    return opened


def release(sock: socket.socket) -> None:
    """Close a listening socket, and remove its UNIX socket file if this
    process created it (not one inherited through fd:// or systemd)."""
    path = sock.getsockname() if sock.family == socket.AF_UNIX else None
    sock.close()
    if isinstance(path, str) and path in _bound_paths:
        _bound_paths.discard(path)
        with contextlib.suppress(OSError):
            os.unlink(path)


def describe(sock: socket.socket, tls: bool = False) -> str:
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{name}"
    scheme = "https" if tls else "http"
    if sock.family == socket.AF_INET6:
        return f"{scheme}://[{name[0]}]:{name[1]}"
    return f"{scheme}://{name[0]}:{name[1]}"


class Listener:
    """Accepts connections on some sockets, pausing while `busy()` is true.

    Out of file descriptors (EMFILE), the listening socket stays readable
    and a plain accept loop would spin: accepting pauses for a moment
    instead, and `make_room()` closes the connections that made the least
    progress.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sockets: list[socket.socket],
        protocol_factory: Callable[[], asyncio.Protocol],
        busy: Callable[[], bool],
        make_room: Callable[[], bool] | None = None,
        tls: TlsAcceptor | None = None,
    ) -> None:
        self.loop = loop
        self.sockets = sockets
        self.factory = protocol_factory
        self.busy = busy
        self.make_room = make_room
        self.accepting = False
        self.closed = False
        self.pending: set[asyncio.Task[object]] = set()
        #: TLS connections in their handshake: not in `pending`, which
        #: busy() counts as WSGI slots taken (a stalled handshake would
        #: hold one for its whole deadline).
        self.tls = tls
        self.handshaking: set[asyncio.Task[None]] = set()
        self._exhausted: asyncio.TimerHandle | None = None

    def start(self) -> None:
        if not self.accepting:
            self.accepting = True
            for sock in self.sockets:
                self.loop.add_reader(sock.fileno(), self._accept, sock)

    def pause(self) -> None:
        if self.accepting:
            self.accepting = False
            for sock in self.sockets:
                self.loop.remove_reader(sock.fileno())

    def resume(self) -> None:
        """Called when a slot frees up (maybe after close(), by an app
        call that outlived the graceful stop: then nothing is reopened)."""
        if (not self.accepting and not self.closed and self._exhausted is None
                and not self.busy()):
            self.start()

    def _out_of_descriptors(self, exc: OSError) -> None:
        log.warning("accept() failed: %s; making room", exc.strerror or exc)
        self.pause()
        if self.make_room is not None:
            self.make_room()
        self._exhausted = self.loop.call_later(_EXHAUSTED_PAUSE, self._retry)

    def _retry(self) -> None:
        self._exhausted = None
        self.resume()

    def take_backlog(self) -> None:
        """Before a graceful stop: accept what is already queued in the
        kernel, so that those clients are served rather than reset."""
        for sock in self.sockets:
            self._accept(sock, limit=10_000, even_if_busy=True)

    def _accept(self, sock: socket.socket, limit: int = 64, even_if_busy: bool = False) -> None:
        for _ in range(limit):  # take a batch, then let the loop breathe
            if not even_if_busy and self.busy():
                self.pause()
                return
            try:
                conn, _addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_DESCRIPTORS:
                    self._out_of_descriptors(exc)
                else:  # ECONNABORTED and the like: that one connection is gone
                    log.debug("accept() failed: %s", exc)
                return
            conn.setblocking(False)
            if conn.family != socket.AF_UNIX:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.tls is not None:
                    handshake = self.loop.create_task(self.tls.accept(conn))
                    self.handshaking.add(handshake)
                    handshake.add_done_callback(self._handshake_done)
                    continue
            task = self.loop.create_task(self._connect(conn))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(self.factory, conn)
        except OSError as exc:
            log.debug("connection lost before it was set up: %s", exc)
            conn.close()
        finally:
            # This task counted against busy(); the connection may even have
            # been served already (a WSGI call runs inside data_received).
            self.pending.discard(asyncio.current_task())
            if not self.closed:
                self.resume()

    def _handshake_done(self, task: asyncio.Task[None]) -> None:
        self.handshaking.discard(task)
        if not self.closed:
            self.resume()

    async def settle(self) -> None:
        """Wait until the connections accepted so far are set up (their
        TLS handshakes too, within their deadline)."""
        waiting = self.pending | self.handshaking
        if waiting:
            await asyncio.wait(waiting, timeout=5)

    def close(self) -> None:
        self.closed = True
        if self._exhausted is not None:
            self._exhausted.cancel()
            self._exhausted = None
        self.pause()
        for sock in self.sockets:
            sock.close()
