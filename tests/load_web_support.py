"""The web UI in a thread of the test process, and a headless Chromium.

`RunningUI` serves twincorn.load.web on 127.0.0.1:<free port> with its own
event loop (the load runs it starts run on that loop too). `chromium()`
launches Debian's Chromium (or $CHROMIUM) through Playwright, never a
browser of Playwright's own, and skips the test, saying why, where there is
no Chromium.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from twincorn.load.web import WebUIServer
from twincorn.load.web_control import RunFactory
from twincorn.server.worker import new_event_loop

CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


class RunningUI:
    """serve_ui's server, in a thread, until stop()."""

    def __init__(self, plan: Any, scenario: Any = None, make_run: RunFactory | None = None):
        self.loop, _ = new_event_loop("auto")
        self.ui = WebUIServer(plan, scenario, self.loop, host="127.0.0.1", port=0,
                              make_run=make_run)
        self.url = self.ui.url
        self.exit_status: int | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.exit_status = self.loop.run_until_complete(self.ui.serve())
        except BaseException as exc:
            self.error = exc
        finally:
            self.loop.close()

    def start(self) -> RunningUI:
        self._thread.start()
        return self

    def stop(self, timeout: float = 15) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.ui.shutdown)
            self._thread.join(timeout)
        assert not self._thread.is_alive(), "the web UI did not stop"
        if self.error is not None:
            raise self.error

    def __enter__(self) -> RunningUI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which(
        "chromium-browser")


@contextmanager
def chromium() -> Iterator[Any]:
    """A Playwright Browser over Debian's chromium, headless."""
    path = chromium_path()
    if path is None:
        pytest.skip("no chromium on this machine (Debian: apt-get install chromium; "
                    ".ci/run installs it)")
    # Not skipped when missing: playwright is in the test extra.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True,
                                             args=CHROMIUM_FLAGS, timeout=30_000)
        try:
            yield browser
        finally:
            browser.close()


class ConsoleWatch:
    """The console errors and uncaught exceptions of one page."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(message.text)


def distinct_colours(png: bytes) -> int:
    """How many distinct colours a screenshot has (a blank one has one)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    return len(colours) if colours is not None else 1 << 20
