"""--reload: watch the application's files and tell the master what changed.

The watching runs in a thread of the master (watchfiles blocks while it
waits); the thread only queues the changed paths and writes a byte to the
master's wake-up pipe, and the master's main loop does the rest, as it does
for signals: it replaces the workers, which import the new code. A worker
that fails to import it dies at boot and the old ones keep serving, so a
syntax error mid-edit costs nothing; the next save tries again.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any

from twincorn.extras import install_hint

#: Watched besides the --reload-include patterns.
INCLUDE = ("*.py",)
#: Never watched, besides the --reload-exclude patterns (uvicorn's defaults).
EXCLUDE = (".*", "*.py[cod]", "*~", "__pycache__")
# Changes closer together than this are reported as one (a save that
# writes several files, an editor's backup dance).
_DEBOUNCE_MS = 100


class ReloadUnavailable(RuntimeError):
    """--reload was asked for but watchfiles is not installed."""


def require_watchfiles() -> None:
    """ReloadUnavailable, saying how to install it, unless watchfiles imports."""
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        raise ReloadUnavailable(
            f"--reload needs the watchfiles package: {install_hint('reload')}"
        ) from None


class Reloader:
    def __init__(
        self,
        folders: Sequence[str],
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        wakeup_fd: int | None = None,
    ) -> None:
        require_watchfiles()
        self.folders = [os.path.abspath(f) for f in folders]
        self.include = (*INCLUDE, *include)
        self.exclude = (*EXCLUDE, *exclude)
        self.wakeup_fd = wakeup_fd
        self._changed: deque[list[str]] = deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="twincorn-reload", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def take(self) -> list[str]:
        """The files changed since the last call (relative where possible)."""
        paths: set[str] = set()
        while self._changed:
            paths.update(self._changed.popleft())
        return sorted(paths)

    def wanted(self, path: str) -> bool:
        """Is this file one of ours: an included name, nothing excluded on its way?"""
        pure = PurePath(path)
        root = next((f for f in self.folders if path.startswith(f + os.sep)), None)
        parts = pure.relative_to(root).parts if root else (pure.name,)
        if any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in self.exclude):
            return False
        return any(fnmatch.fnmatch(pure.name, pattern) for pattern in self.include)

    def _watch(self) -> None:
        import watchfiles

        def keep(_change: Any, path: str) -> bool:
            return self.wanted(path)

        for changes in watchfiles.watch(
            *self.folders, watch_filter=keep, debounce=_DEBOUNCE_MS, step=20,
            stop_event=self._stop, raise_interrupt=False,
        ):
            self._changed.append([os.path.relpath(path) for _, path in changes])
            if self.wakeup_fd is not None:
                with contextlib.suppress(OSError):
                    os.write(self.wakeup_fd, b"r")
