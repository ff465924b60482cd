from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from corpus_cases import CORPUS  # noqa: E402
from master_support import Master  # noqa: E402
from support import RunningServer  # noqa: E402


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A fresh event loop for tests that drive adapters by hand; what is
    left running is cancelled."""
    loop = asyncio.new_event_loop()
    yield loop
    for task in asyncio.all_tasks(loop):
        task.cancel()
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., RunningServer]]:
    """serve(app, **settings) starts a server; all are stopped after the test."""
    started: list[RunningServer] = []

    def start(app: Callable[..., Any], **settings: Any) -> RunningServer:
        server = RunningServer(app, **settings).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.fail(f"corpus not found at {CORPUS}: tests/data/ is part of the repository")
    return CORPUS


os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")


@pytest.fixture
def master_factory() -> Iterator[type[Master]]:
    """master_factory(*args) starts `twincorn serve` with a master; all are
    stopped after the test."""
    started: list[Master] = []

    class Tracked(Master):
        def __init__(self, *args: str, cwd: Path = ROOT) -> None:
            super().__init__(*args, cwd=cwd)
            started.append(self)

    yield Tracked
    for m in started:
        m.stop()
