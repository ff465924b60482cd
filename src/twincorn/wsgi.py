"""The WSGI adapter (PEP 3333): environ, start_response, the input stream.

Execution model (the seed's lesson depends on it):

* The event loop reads the whole request body before the application is
  called: in memory up to `spool_size` bytes, in a temporary file above it.
  A slow client therefore never holds a WSGI slot.
* With `threads == 1` (the default) the application is called inline, on the
  event loop's thread, one call at a time: a blocking application blocks its
  worker, exactly as under gunicorn's sync worker.
* With `threads > 1` up to that many calls run at once in a thread pool.
* While every slot is taken, `busy` is true and the worker stops accepting
  connections, so that another worker can take them.

The response iterable is consumed a piece at a time and each piece written
as it comes; when the socket's buffer is full, consuming pauses until it
drains, so a large response is never held in memory. `close()` is always
called on the iterable (PEP 3333, "Specification Details").
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from time import monotonic
from types import TracebackType
from typing import IO, Any
from urllib.parse import unquote_to_bytes

from twincorn.exchange import SERVING, Channel
from twincorn.http import Request
from twincorn.http.errors import ResponseError
from twincorn.http.forwarded import Forwarded
from twincorn.http.request import RequestLine
from twincorn.http.response import ResponseWriter, encode_error_response

log = logging.getLogger("twincorn.error")

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], None]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

# Header names are turned into environ keys once per process, not per request.
_KEYS: dict[bytes, str | None] = {
    b"content-type": "CONTENT_TYPE",
    b"content-length": "CONTENT_LENGTH",
}
_EMPTY_BODY = b""
# Bytes a pool thread may hand to the loop before it waits for them to be
# written (see WSGIExchange._write_from_thread).
_SYNC_BYTES = 1 << 18
_PROTOCOLS = {"1.0": "HTTP/1.0", "1.1": "HTTP/1.1"}


def environ_key(name: bytes) -> str | None:
    """The environ key for a (lower-case) header name; None drops it.

    A name with "_" is dropped: "X_Forwarded_For" would otherwise arrive as
    HTTP_X_FORWARDED_FOR, the same key as "X-Forwarded-For", and could pose
    as a header a proxy vouches for.
    """
    try:
        return _KEYS[name]
    except KeyError:
        pass
    key = None if b"_" in name else "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
    if len(_KEYS) < 4096:
        _KEYS[name] = key
    return key


def _forwarded_environ(environ: dict[str, Any], forwarded: Forwarded) -> None:
    """A trusted proxy's word (http/forwarded.py) over the connection's
    keys. A client the proxy hid has no REMOTE_ADDR (as a unix: socket's
    peer); one given without a port, no REMOTE_PORT. The X-Forwarded-*
    headers themselves stay, as HTTP_X_FORWARDED_*."""
    client = forwarded.client
    environ.pop("REMOTE_ADDR", None)
    environ.pop("REMOTE_PORT", None)
    if client is not None:
        environ["REMOTE_ADDR"] = client[0]
        if client[1]:
            environ["REMOTE_PORT"] = str(client[1])
    environ["wsgi.url_scheme"] = forwarded.scheme
    server = forwarded.server
    if server is not None:
        environ["SERVER_NAME"] = server[0]
        environ["SERVER_PORT"] = str(server[1])
    if forwarded.host is not None:
        environ["HTTP_HOST"] = forwarded.host.decode("latin-1")


class FileWrapper:
    """wsgi.file_wrapper: a file sent with sendfile where the loop allows."""

    def __init__(self, filelike: IO[bytes], blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self) -> Iterator[bytes]:
        while True:
            block = self.filelike.read(self.blksize)
            if not block:
                return
            yield block

    def span(self) -> tuple[int, int] | None:
        """(offset, count) of what is left in a real file, else None."""
        try:
            fd = self.filelike.fileno()
            offset = self.filelike.tell()
            size = os.fstat(fd).st_size
        except (AttributeError, OSError, io.UnsupportedOperation):
            return None
        return offset, max(0, size - offset)


class ErrorStream:
    """wsgi.errors: text written by the application goes to the error log."""

    def __init__(self) -> None:
        self._buffer = ""

    def write(self, text: str) -> int:
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            log.error("%s", line)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._buffer:
            log.error("%s", self._buffer)
            self._buffer = ""


class WSGIAdapter:
    """Makes a WSGIExchange per request and hands out the WSGI slots."""

    def __init__(
        self,
        app: WSGIApp,
        loop: asyncio.AbstractEventLoop,
        *,
        threads: int = 1,
        root_path: str = "",
        server_header: bytes = b"",
        spool_size: int = 1 << 20,
        multiprocess: bool = False,
    ) -> None:
        self.app = app
        self.loop = loop
        self.threads = max(1, threads)
        self.pool = ThreadPoolExecutor(self.threads, "twincorn-wsgi") if threads > 1 else None
        self.server_header = server_header
        self.spool_size = spool_size
        self.running = 0
        self.waiting: deque[WSGIExchange] = deque()
        self._handing_off = False  # a hand-off to the next waiting call is scheduled
        #: Called when a slot frees up (the worker resumes accepting).
        self.on_release: Callable[[], None] | None = None
        self.errors = ErrorStream()
        self.base_environ: dict[str, Any] = {
            "SCRIPT_NAME": root_path,
            "wsgi.version": (1, 0),
            "wsgi.errors": self.errors,
            "wsgi.multithread": self.pool is not None,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": FileWrapper,
        }
        self.description = (
            f"wsgi, {self.threads} threads" if self.pool else "wsgi, inline (1 call at a time)"
        )

    @property
    def busy(self) -> bool:
        return self.running + len(self.waiting) >= self.threads

    def new_exchange(self, request: Request, channel: Channel) -> WSGIExchange:
        return WSGIExchange(self, request, channel)

    def submit(self, exchange: WSGIExchange) -> None:
        """Run `exchange` now if a slot is free, else when one is (after
        the calls already waiting)."""
        if self.running < self.threads and not self.waiting:
            self.running += 1
            exchange.run()
        else:
            self.waiting.append(exchange)

    def release(self) -> None:
        """A call ended. The next waiting call starts on a later turn of the
        loop, never inside this one: handing over inside would nest each
        call in the last one's frames (a long queue overflows the stack),
        and the loop would read no socket and expire no deadline until the
        whole queue had run."""
        self.running -= 1
        if self.waiting:
            self._schedule_hand_off()
        elif self.on_release is not None:
            self.on_release()

    def _schedule_hand_off(self) -> None:
        if not self._handing_off:
            self._handing_off = True
            self.loop.call_soon(self._hand_off)

    def _hand_off(self) -> None:
        self._handing_off = False
        waiting = self.waiting
        while waiting and self.running < self.threads:
            exchange = waiting.popleft()
            if exchange.gone:
                exchange._discard_spool()  # never called: its body goes too
                continue
            self.running += 1
            exchange.run()
            if self.pool is None:
                break  # inline: one call per turn of the loop
        if waiting and self.running < self.threads:
            self._schedule_hand_off()
        if self.on_release is not None and self.running < self.threads:
            self.on_release()

    async def startup(self) -> None:
        return None

    async def shutdown(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)


class WSGIExchange:
    """One request: its body, environ, start_response and the app call."""

    __slots__ = (
        "_chunks",
        "_complete",
        "_finished",
        "_input",
        "_iter",
        "_result",
        "_size",
        "_spool",
        "_started",
        "_threaded",
        "_unsynced",
        "_writer",
        "adapter",
        "bytes_sent",
        "channel",
        "gone",
        "request",
        "status",
    )

    def __init__(self, adapter: WSGIAdapter, request: Request, channel: Channel) -> None:
        self.adapter = adapter
        self.request = request
        self.channel = channel
        self.status = 0
        self.bytes_sent = 0
        self.gone = False
        self._chunks: list[bytes] = []
        self._size = 0
        self._spool: IO[bytes] | None = None
        self._input: IO[bytes] | None = None
        self._started = False
        self._complete = False
        self._writer: ResponseWriter | None = None
        self._result: Iterable[bytes] | None = None
        self._iter: Iterator[bytes] | None = None
        self._threaded = adapter.pool is not None
        self._unsynced = 0
        self._finished = False

    # -- the request body, read by the event loop -------------------------

    def feed_body(self, data: bytes) -> None:
        self._size += len(data)
        if self._spool is not None:
            self._spool.write(data)
            return
        self._chunks.append(data)
        if self._size > self.adapter.spool_size:
            spool = self._spool = tempfile.TemporaryFile()
            spool.writelines(self._chunks)
            self._chunks = []

    def body_complete(self) -> None:
        if self._spool is not None:
            self._spool.seek(0)
            self._input = self._spool
        else:
            chunks = self._chunks
            self._input = io.BytesIO(
                chunks[0] if len(chunks) == 1 else b"".join(chunks) if chunks else _EMPTY_BODY
            )
            self._chunks = []
        self._complete = True
        if self._started:
            self.adapter.submit(self)

    def input_closed(self) -> None:
        """Nothing to do: the body was read before the call, and the
        response is written whatever the client does with its side."""

    def client_gone(self) -> None:
        self.gone = True
        if not self._started or not self._complete:
            # Never called: nothing to wait for.
            self._discard_spool()
            if self._started and not self._finished:
                self._finished = True
                self.channel.response_complete(False)

    def start(self) -> None:
        self._started = True
        if self.request.expect_continue and not self._complete:
            # The server reads the body for the application before calling
            # it, so this is the moment the body is wanted (RFC 9110 s10.1.1).
            self.channel.send_continue()
        if self._complete:
            self.adapter.submit(self)

    # -- the call -----------------------------------------------------------

    def run(self) -> None:
        """A slot is ours: call the application (inline or in a thread)."""
        if self._threaded:
            future = self.adapter.loop.run_in_executor(self.adapter.pool, self._run_in_thread)
            future.add_done_callback(self._thread_done)
            return
        serving = SERVING.set((self, monotonic()))
        try:
            result = self._call()
        except BaseException as exc:
            self._failed(exc)
            return
        finally:
            SERVING.reset(serving)
        writer = self._writer
        if type(result) is list and len(result) == 1 and writer is not None:
            # The common case, a response in one piece: one write, with a
            # Content-Length, and nothing left to wait for.
            try:
                data = writer.body(result[0], False)
            except BaseException as exc:
                self._failed(exc)
                return
            self.channel.write(data)
            self._done(writer)
            return
        if isinstance(result, FileWrapper) and writer is not None:
            span = result.span()
            if span is not None:
                self._send_file(result, writer, *span)
                return
        self._iter = iter(result)
        self._pump()

    def _call(self) -> Iterable[bytes]:
        result = self._result = self.adapter.app(self._environ(), self.start_response)
        return result

    def _environ(self) -> dict[str, Any]:
        request = self.request
        channel = self.channel
        base = channel.adapter_state
        if base is None:
            base = channel.adapter_state = self._connection_environ()
        environ: dict[str, Any] = base.copy()
        path = request.path
        environ["REQUEST_METHOD"] = request.method
        environ["PATH_INFO"] = (
            _unquote_latin1(path) if b"%" in path else path.decode("latin-1")
        )
        environ["QUERY_STRING"] = request.query.decode("latin-1")
        environ["RAW_URI"] = request.target.decode("latin-1")
        environ["SERVER_PROTOCOL"] = _PROTOCOLS[request.http_version]
        environ["wsgi.input"] = self._input
        for name, value in request.headers:
            key = environ_key(name)
            if key is None:
                continue
            text = value.decode("latin-1")
            if key in environ:
                # RFC 9110 section 5.3: repeated fields combine with commas.
                environ[key] += "," + text
            else:
                environ[key] = text
        if request.chunked:
            # The whole body is read before the call, so its length is known:
            # frameworks that trust only CONTENT_LENGTH (Django, Falcon)
            # would otherwise read nothing of a chunked body.
            environ["CONTENT_LENGTH"] = str(self._size)
        if request.forwarded is not None:
            _forwarded_environ(environ, request.forwarded)
        return environ

    def _connection_environ(self) -> dict[str, Any]:
        """The part of the environ that is the same for a whole connection."""
        channel = self.channel
        environ = self.adapter.base_environ.copy()
        server = channel.server or ("localhost", 0)
        environ["SERVER_NAME"] = server[0]
        environ["SERVER_PORT"] = str(server[1])
        client = channel.client
        if client is not None:
            environ["REMOTE_ADDR"] = client[0]
            environ["REMOTE_PORT"] = str(client[1])
        environ["wsgi.url_scheme"] = channel.scheme
        if channel.tls is not None:
            environ.update(channel.tls.environ)
        return environ

    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: ExcInfo | None = None,
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                # Too late once the head is out (even with no body bytes, as
                # for HEAD): PEP 3333 says re-raise.
                if self._writer is not None and self._writer.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # PEP 3333: avoid a reference cycle
        elif self._writer is not None:
            raise AssertionError("start_response called twice without exc_info")
        if not isinstance(status, str) or len(status) < 4 or not status[:3].isdigit():
            raise ResponseError(f"invalid WSGI status {status!r}")
        pairs = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        try:
            self._writer = ResponseWriter(
                int(status[:3]), pairs, self.request, self.adapter.server_header,
                self.channel.keep_alive,
            )
        except ResponseError as exc:
            log.error("response refused: %s, serving %s", exc, RequestLine(self.request))
            raise
        self.status = self._writer.status
        return self._write

    def _write(self, data: bytes) -> None:
        """The legacy write() callable of PEP 3333."""
        writer = self._writer
        if writer is None:
            raise AssertionError("write() before start_response()")
        out = writer.body(data, True)
        if not out or self.gone:
            return
        if self._threaded:
            self._write_from_thread(out)
        else:
            self.channel.write(out)

    # -- inline: consuming the iterable on the loop --------------------------

    def _pump(self) -> None:
        iterator = self._iter
        assert iterator is not None
        try:
            for chunk in iterator:
                if self.gone:
                    break
                writer = self._writer
                if writer is None:
                    raise AssertionError("body produced before start_response()")
                data = writer.body(chunk, True)
                if data:
                    self.channel.write(data)
                if self.channel.write_paused:
                    self.channel.drain().add_done_callback(lambda _: self._pump())
                    return
            self._end()
        except BaseException as exc:
            self._failed(exc)

    def _end(self) -> None:
        writer = self._writer
        if self.gone:
            self._close_result()
            self._release(False)
            return
        if writer is None:
            raise AssertionError("the application returned without start_response()")
        data = writer.body(b"", False)
        if data:
            self.channel.write(data)
        self._done(writer)

    def _send_file(
        self, result: FileWrapper, writer: ResponseWriter, offset: int, count: int
    ) -> None:
        self.channel.write(writer.file_head(count))
        if not writer.sends_body or not writer.bytes_sent:
            self._done(writer)
            return
        task = self.adapter.loop.create_task(
            self.channel.sendfile(result.filelike, offset, writer.bytes_sent)
        )
        task.add_done_callback(lambda t: self._file_sent(t, writer))

    def _file_sent(self, task: asyncio.Task[Any], writer: ResponseWriter) -> None:
        exc = None if task.cancelled() else task.exception()
        if exc is not None or task.cancelled():
            self._failed(exc or asyncio.CancelledError())
        else:
            self._done(writer)

    # -- threaded: the call runs in the pool ----------------------------------

    def _run_in_thread(self) -> tuple[bytes, ResponseWriter | None]:
        """In a pool thread: call, consume, return the last bytes to write."""
        result = self._call()
        writer = self._writer
        if type(result) is list:
            if len(result) == 1 and writer is not None:
                # One piece: one write, with a Content-Length (as inline).
                return writer.body(result[0], False), writer
            # Every piece exists already: they may be written together.
            batch = 65536
        else:
            # PEP 3333: a piece is not held back while the application
            # produces the next one (which may take any time).
            batch = 1
        out: list[bytes] = []
        size = 0
        for chunk in result:
            if self.gone:
                break
            writer = self._writer
            if writer is None:
                raise AssertionError("body produced before start_response()")
            data = writer.body(chunk, True)
            if data:
                out.append(data)
                size += len(data)
                if size >= batch:
                    self._write_from_thread(b"".join(out))
                    out, size = [], 0
        writer = self._writer
        if writer is None:
            raise AssertionError("the application returned without start_response()")
        if not self.gone:
            out.append(writer.body(b"", False))
        return b"".join(out), writer

    def _write_from_thread(self, data: bytes) -> None:
        loop = self.adapter.loop
        loop.call_soon_threadsafe(self.channel.write, data)
        # write_paused lags behind the writes still queued for the loop, so
        # every _SYNC_BYTES the thread also waits for the loop to catch up:
        # otherwise a fast producer could queue without bound.
        self._unsynced += len(data)
        if self.channel.write_paused or self._unsynced >= _SYNC_BYTES:
            self._unsynced = 0
            asyncio.run_coroutine_threadsafe(_wait(self.channel.drain), loop).result()

    def _thread_done(self, future: asyncio.Future[tuple[bytes, ResponseWriter | None]]) -> None:
        exc = future.exception() if not future.cancelled() else asyncio.CancelledError()
        if exc is not None:
            self._failed(exc)
            return
        data, writer = future.result()
        if self.gone or writer is None:
            self._close_result()
            self._release(False)
            return
        if data:
            self.channel.write(data)
        self._done(writer)

    # -- endings ----------------------------------------------------------------

    def _done(self, writer: ResponseWriter) -> None:
        self.bytes_sent = writer.bytes_sent
        self._close_result()
        self._release(writer.keep_alive)

    def _failed(self, exc: BaseException) -> None:
        if self.gone:
            self._close_result()
            self._release(False)
            return
        log.error("exception in WSGI application, serving %s", RequestLine(self.request),
                  exc_info=exc)
        writer = self._writer
        self._close_result()
        if writer is None or not writer.head_sent:
            self.status = 500
            self.channel.write(encode_error_response(500, "", self.adapter.server_header))
            self._release(False)
        else:
            self._finished = True
            self.adapter.release()
            self.channel.abort()

    def _close_result(self) -> None:
        result, self._result = self._result, None
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except BaseException as exc:
                log.error("exception in the close() of a WSGI response, serving %s",
                          RequestLine(self.request), exc_info=exc)
        self._discard_spool()

    def _discard_spool(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def _release(self, keep_alive: bool) -> None:
        if self._finished:
            return
        self._finished = True
        self.adapter.release()
        self.channel.response_complete(keep_alive)


async def _wait(make: Callable[[], Any]) -> None:
    await make()


def _unquote_latin1(path: bytes) -> str:
    return unquote_to_bytes(path).decode("latin-1")


