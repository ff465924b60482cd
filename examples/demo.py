"""`make hello`: serve the WSGI and the ASGI hello apps side by side.

(`make demo` is the lab, `twincorn lab --quick`: src/twincorn/lab/.)

Starts `twincorn serve` twice (WSGI on port 8000, ASGI on 8001), asks each
for a page to show that both answer, then keeps serving until Ctrl-C (or for
--seconds N).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = [("WSGI", "examples.wsgi.app:app"), ("ASGI", "examples.asgi.app:app")]


def wait_ready(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the server on port {port} did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000, help="first port (default 8000)")
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long")
    args = parser.parse_args()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for offset, (_kind, app) in enumerate(APPS):
            port = args.port + offset
            cmd = [sys.executable, "-m", "twincorn", "serve", app, "--port", str(port)]
            print(f"$ twincorn serve {app} --port {port}")
            procs.append(subprocess.Popen(cmd, cwd=ROOT))
            wait_ready(port)
        print()
        for offset, (kind, _app) in enumerate(APPS):
            url = f"http://127.0.0.1:{args.port + offset}/"
            with urllib.request.urlopen(url, timeout=5) as response:
                print(f"{kind} at {url} answered {response.status}: {response.read()!r}")
        print(
            "\nTry them yourself:\n"
            f"  curl -i http://127.0.0.1:{args.port}/     (WSGI)\n"
            f"  curl -i http://127.0.0.1:{args.port + 1}/     (ASGI)\n"
            "Ctrl-C stops both."
        )
        deadline = time.monotonic() + args.seconds if args.seconds else None
        while deadline is None or time.monotonic() < deadline:
            if any(p.poll() is not None for p in procs):
                print("a server stopped", file=sys.stderr)
                return 1
            time.sleep(0.2)
    except KeyboardInterrupt:
        print()
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
