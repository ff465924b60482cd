"""The load tester's imports: its own modules, and of the server only the
choice of event loop; its statistics do no I/O; its command line is light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from test_layering import imported

LOAD = Path(__file__).resolve().parent.parent / "src" / "twincorn" / "load"
WEB_UI = ("web", "report_", "static_files")  # the web UI and HTML report, served by twincorn
PURE = ("histogram.py", "stats.py", "results.py", "plan.py", "output_csv.py", "thresholds.py")


def core_modules() -> list[Path]:
    return [p for p in LOAD.glob("*.py") if not p.name.startswith(WEB_UI)]


def test_the_core_imports_only_itself_and_the_loop_choice() -> None:
    # ... and units.py, the reader and writer of durations shared with serve,
    # and ws/core.py's Assembler, RFC 6455's message rules shared with it too.
    for path in core_modules():
        bad = {
            name for name in imported(path)
            if not (name == "twincorn.load" or name.startswith("twincorn.load."))
            and name not in ("twincorn.server.worker", "twincorn.units", "twincorn.ws.core")
        }
        assert not bad, f"load/{path.name} imports {bad}"


def test_statistics_and_outputs_do_no_io() -> None:
    for name in PURE:
        text = (LOAD / name).read_text()
        for forbidden in ("import asyncio", "import socket", "httptools", "uvloop"):
            assert forbidden not in text, f"load/{name} uses {forbidden}"


def test_the_command_line_imports_little() -> None:
    code = (
        "import sys, twincorn.load.cli; "
        "print(sorted(m for m in sys.modules if m in ('asyncio', 'httptools', 'uvloop')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
