"""Round trips with real clients: httpx and curl, against WSGI and ASGI."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from wire_apps import STREAM_PIECES
from wire_client import ServeFn, interface_fixture, start  # noqa: F401 - a fixture

CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(
    CURL is None, reason="curl is not installed (Debian: apt-get install curl)"
)


def curl(*args: str, timeout: float = 10) -> subprocess.CompletedProcess[bytes]:
    assert CURL is not None
    return subprocess.run(
        [CURL, "--silent", "--show-error", "--max-time", "8", *args],
        capture_output=True,
        timeout=timeout,
        check=True,
    )


# -- httpx ------------------------------------------------------------------------


def test_httpx_get_post_json_and_keep_alive(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    with httpx.Client(base_url=server.url, timeout=5) as client:
        r = client.get("/one")
        assert (r.status_code, r.text) == (200, "single")
        assert r.headers["content-length"] == "6"
        document = {"name": "twincorn", "numbers": [1, 2, 3], "nested": {"ok": True}}
        r = client.post("/echo", json=document)
        assert r.status_code == 200
        assert json.loads(r.content) == document
        assert r.headers["x-method"] == "POST"
        r = client.get("/stream")
        assert r.headers["transfer-encoding"] == "chunked"
        assert r.content == b"".join(STREAM_PIECES)
        r = client.head("/one")
        assert r.content == b""
        assert r.headers["content-length"] == "6"
        # All on one connection.
        assert len(server.worker.state.connections) == 1


def test_httpx_chunked_upload_from_a_generator(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    pieces = [b"alpha,", b"beta,", b"", b"gamma" * 1000]

    def generate() -> Iterator[bytes]:
        yield from pieces

    with httpx.Client(base_url=server.url, timeout=5) as client:
        request = client.build_request("POST", "/echo", content=generate())
        assert request.headers["transfer-encoding"] == "chunked"
        r = client.send(request)
        assert r.status_code == 200
        assert r.content == b"".join(pieces)


def test_httpx_streams_a_response(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface, threads=2)
    with httpx.stream("GET", server.url + "/slow", timeout=5) as r:
        received = b"".join(r.iter_bytes())
    assert len(received) == 40 * 1024


# -- curl -------------------------------------------------------------------------


@needs_curl
def test_curl_get_and_post_json(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    out = curl("--include", server.url + "/one").stdout
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\ncontent-length: 6\r\n" in out
    assert out.endswith(b"\r\n\r\nsingle")
    document = json.dumps({"a": [1, 2], "b": "c"})
    out = curl(
        "-H", "Content-Type: application/json", "--data-binary", document, server.url + "/echo"
    ).stdout
    assert json.loads(out) == json.loads(document)
    out = curl(server.url + "/stream").stdout
    assert out == b"".join(STREAM_PIECES)


@needs_curl
def test_curl_reuses_the_connection(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    result = curl("--verbose", server.url + "/one", server.url + "/stream")
    assert result.stdout == b"single" + b"".join(STREAM_PIECES)
    assert b"Re-using existing connection" in result.stderr or b"Reusing" in result.stderr


@needs_curl
def test_curl_expect_100_continue(serve: ServeFn, interface: str, tmp_path: Path) -> None:
    server = start(serve, interface)
    payload = tmp_path / "payload.bin"
    data = bytes(range(256)) * 400
    payload.write_bytes(data)
    begun = time.monotonic()
    # Without a 100 Continue, curl would wait 4 seconds before sending the body.
    result = curl(
        "--verbose",
        "--expect100-timeout",
        "4",
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        f"@{payload}",
        server.url + "/echo",
    )
    assert time.monotonic() - begun < 3
    assert b"HTTP/1.1 100 Continue" in result.stderr
    assert result.stdout == data


@needs_curl
def test_curl_chunked_upload(serve: ServeFn, interface: str, tmp_path: Path) -> None:
    server = start(serve, interface)
    payload = tmp_path / "payload.txt"
    payload.write_bytes(b"line\n" * 5000)
    result = curl(
        "-H", "Transfer-Encoding: chunked", "--data-binary", f"@{payload}", server.url + "/echo"
    )
    assert result.stdout == b"line\n" * 5000


@needs_curl
def test_curl_http10(serve: ServeFn, interface: str) -> None:
    server = start(serve, interface)
    out = curl("--http1.0", "--include", server.url + "/stream").stdout
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    assert b"transfer-encoding" not in head.lower()
    assert body == b"".join(STREAM_PIECES)
