"""docs/tutorial.md, walked as written, its figures checked.

How the tutorial says what to run and what it prints (edit it this way):

- A fenced block whose first line is `# terminal 1` holds one command: a
  server. It is started in the background, in a process group of its own
  (as a shell starts a foreground job), its output going to a file. It
  counts as ready once it has logged `serving` and its port accepts.
- A fenced block whose first line is `# terminal 2` holds client commands,
  run one after the other in the foreground with bash, each with a
  timeout; each must exit 0.
- On the line right after a block's closing fence, an HTML comment (not
  shown by Markdown renderers) says what to find in its output:

      <!-- expect: req/s 3.5-4.5, failed 0, p50 3.8-4.3 s, oldest 3.5-4.5 s -->

  with these clauses, separated by commas:

      req/s LO-HI        the requests/s of twincorn load's last summary line
      failed LO[-HI]     the failed requests of that line
      pNN LO-HI s|ms     a percentile (p50, p95, p99.9...) of the Aggregated row
      max LO-HI s|ms     of the "Response time percentiles" table (max: 100%)
      oldest LO-HI s|ms  the oldest request still in flight at the end, as the
                         last line reports it (0 when there is no such line)
      prints "TEXT"      the block's stdout contains TEXT
      log "TEXT"         terminal 1 shows TEXT before its server is stopped
                         (within 10 s)

- A server runs until the next `# terminal 1` block or the end of its
  section (a `##` heading); it is then stopped as Ctrl-C does (SIGINT to
  its process group) and must exit with status 0, leave no process of its
  group behind, free its port and print no traceback. The prose must say
  Ctrl-C before the next server starts (test_every_server_is_stopped...).
- Before each terminal-2 block and each Ctrl-C the walk waits for
  terminal 1's log to go quiet (no new line for QUIET seconds), as the
  tutorial asks: a blocking worker finishes the requests a run left behind.

Blocks without a terminal line (the setup, the lab, production) are not
run. Commands run from the root of the repository with the venv's
`twincorn` first on PATH. So that the walk runs beside anything else on the
machine, each port the marked blocks name (`127.0.0.1:8000`, `--port
8001`) is replaced by a free one, the same in every command of a section,
and a server that names none gets the one for 8000 (TWINCORN_PORT).
"""

from __future__ import annotations

import enum
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "tutorial.md"
DEFAULT_PORT = 8000  # twincorn serve's, when a command names none
COMMAND_TIMEOUT = 40.0  # seconds, for one terminal-2 command
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
# Terminal 1 counts as quiet after this long without a new line: more than
# the slow apps' 1 s per request. Before each terminal-2 block and each
# Ctrl-C, the walk waits for it, as the tutorial asks the reader to.
QUIET = 1.3
QUIET_TIMEOUT = 20.0
LOG_TIMEOUT = 10.0  # for a `log` clause's line to appear in terminal 1


class Terminal(enum.Enum):
    SERVER = "# terminal 1"
    CLIENT = "# terminal 2"


@dataclass(frozen=True)
class Clause:
    """One expectation: a figure within [low, high] (in ms for latencies), or
    a text that the output (prints) or the server's log (log) contains."""

    key: str
    low: float = 0.0
    high: float = 0.0
    text: str = ""
    source: str = ""


@dataclass
class Block:
    terminal: Terminal
    commands: list[str]
    line: int  # in docs/tutorial.md, 1-based, of the opening fence
    expect: list[Clause] = field(default_factory=list)
    prose_after: str = ""  # the text up to the next marked block or heading


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


class ExpectError(ValueError):
    """An expect comment the test cannot read (the doc is to be fixed)."""


_FIGURE = re.compile(
    r"(?P<key>req/s|failed|oldest|max|p\d+(?:\.\d+)?)\s+(?P<low>\d+(?:\.\d+)?)"
    r"(?:\s*-\s*(?P<high>\d+(?:\.\d+)?))?(?:\s*(?P<unit>ms|s))?"
)
_TEXT = re.compile(r'(?P<key>prints|log)\s+"(?P<text>[^"]*)"')
_TIMED = ("oldest", "max")


def parse_clause(source: str) -> Clause:
    source = source.strip()
    if m := _TEXT.fullmatch(source):
        return Clause(m["key"], text=m["text"], source=source)
    m = _FIGURE.fullmatch(source)
    if m is None:
        raise ExpectError(f"cannot read the clause {source!r} (see tests/test_tutorial.py)")
    key, unit = m["key"], m["unit"]
    low = float(m["low"])
    high = float(m["high"]) if m["high"] is not None else low
    timed = key in _TIMED or key.startswith("p")
    if timed != (unit is not None):
        raise ExpectError(f"{source!r}: latencies take a unit (s or ms), counts and rates none")
    scale = 1000.0 if unit == "s" else 1.0
    if high < low:
        raise ExpectError(f"{source!r}: the range is upside down")
    return Clause(key, low * scale, high * scale, source=source)


def parse_expect(comment: str) -> list[Clause]:
    body = comment.strip().removeprefix("<!--").removesuffix("-->").strip()
    body = body.removeprefix("expect:")
    return [parse_clause(part) for part in re.findall(r'(?:[^,"]|"[^"]*")+', body)
            if part.strip()]


def parse_tutorial(text: str) -> list[Section]:
    """The sections of the tutorial with their marked blocks."""
    sections: list[Section] = [Section("(before the first heading)")]
    lines = text.splitlines()
    last: Block | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            sections.append(Section(line[3:].strip()))
            last = None
        elif line.startswith("```"):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")),
                       len(lines))
            body = lines[i + 1:end]
            first = body[0].strip() if body else ""
            marks = {t.value: t for t in Terminal}
            if first in marks:
                commands = [c.strip() for c in body[1:]
                            if c.strip() and not c.strip().startswith("#")]
                last = Block(marks[first], commands, i + 1)
                if end + 1 < len(lines) and lines[end + 1].startswith("<!-- expect:"):
                    last.expect = parse_expect(lines[end + 1])
                    end += 1
                sections[-1].blocks.append(last)
            i = end
        elif last is not None:
            last.prose_after += line + "\n"
        i += 1
    return [s for s in sections if s.blocks]


SECTIONS = parse_tutorial(TUTORIAL.read_text())


# -- reading what a command printed -----------------------------------------------

_SUMMARY = re.compile(
    r"^([\d,]+) requests? in ([\d.]+) s: ([\d,.]+) req/s, ([\d,]+) failed", re.MULTILINE
)
_OLDEST = re.compile(r"the oldest had waited ([\d.]+) s")


def load_figures(output: str) -> dict[str, float]:
    """The figures of twincorn load's final report, keyed like the clauses
    (latencies in ms): empty when the output has no report."""
    figures: dict[str, float] = {}
    summaries = _SUMMARY.findall(output)
    if summaries:
        _, _, rps, failed = summaries[-1]
        figures["req/s"] = float(rps.replace(",", ""))
        figures["failed"] = float(failed.replace(",", ""))
        oldest = _OLDEST.search(output)
        figures["oldest"] = 1000.0 * float(oldest[1]) if oldest else 0.0
    lines = output.splitlines()
    if "Response time percentiles (ms)" in lines:
        start = lines.index("Response time percentiles (ms)")
        labels = [t for t in lines[start + 1].split() if t.endswith("%")]
        total = next((line.split() for line in lines[start + 2:]
                      if line.split()[:1] == ["Aggregated"]), None)
        if total is not None:
            for label, value in zip(labels, total[1:], strict=False):
                key = "max" if label == "100%" else "p" + label[:-1]
                figures[key] = float(value)
    return figures


def problems(clauses: list[Clause], output: str) -> list[str]:
    """What the output contradicts, one line per clause that does not hold
    (`log` clauses are checked against the server's log, elsewhere)."""
    figures = load_figures(output)
    found = []
    for clause in clauses:
        if clause.key == "log":
            continue
        if clause.key == "prints":
            if clause.text not in output:
                found.append(f"{clause.source}: not in the output")
            continue
        value = figures.get(clause.key)
        if value is None:
            found.append(f"{clause.source}: no such figure in the output")
        elif not clause.low <= value <= clause.high:
            shown = f"{value / 1000:g} s" if clause.source.endswith(" s") else f"{value:g}"
            found.append(f"{clause.source}: measured {shown}")
    return found


# -- ports ----------------------------------------------------------------------------

_PORT = re.compile(r"(?P<before>127\.0\.0\.1:|--port[ =])(?P<port>\d+)")


def doc_ports(section: Section) -> set[int]:
    ports = {DEFAULT_PORT}
    for block in section.blocks:
        for command in block.commands:
            ports |= {int(m["port"]) for m in _PORT.finditer(command)}
    return ports


def quiet_port(taken: set[int]) -> int:
    """A free port below the ephemeral range, so that the load tester's own
    connections (ephemeral source ports) cannot hold it."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port between 20000 and 32000")


def rewrite(command: str, ports: dict[int, int]) -> str:
    return _PORT.sub(lambda m: m["before"] + str(ports[int(m["port"])]), command)


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# -- running a section ------------------------------------------------------------------

def environment(default_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWINCORN_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["TWINCORN_PORT"] = str(default_port)
    env.pop("COLUMNS", None)
    return env


class Server:
    """A terminal-1 command in its own process group, as a shell runs a job."""

    def __init__(self, command: str, port: int, env: dict[str, str], log: Path) -> None:
        self.command = command
        self.port = port
        self.log_path = log
        self.log_checks: list[Clause] = []
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                ["bash", "-c", f"exec {command}"], cwd=ROOT, env=env, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"`{self.command}` exited with status {self.process.returncode} "
                            f"before serving:\n{self.output()}")
            if "serving " in self.output() and accepts(self.port):
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"`{self.command}` was not serving on port {self.port} after "
                        f"{READY_TIMEOUT:g} s:\n{self.output()}")
        # Every worker up (their boot lines written), as after a human's glance.
        size = -1
        while size != len(self.output()) and time.monotonic() < deadline:
            size = len(self.output())
            time.sleep(0.4)

    def wait_quiet(self) -> None:
        """Until terminal 1 has printed nothing new for QUIET seconds."""
        deadline = time.monotonic() + QUIET_TIMEOUT
        size, since = len(self.output()), time.monotonic()
        while time.monotonic() - since < QUIET:
            if time.monotonic() > deadline:
                pytest.fail(f"`{self.command}` kept logging for {QUIET_TIMEOUT:g} s after "
                            f"the last command:\n{self.output()[-3000:]}")
            time.sleep(0.1)
            now = len(self.output())
            if now != size:
                size, since = now, time.monotonic()

    def wait_logged(self) -> None:
        """Until each `log` clause's text is in terminal 1 (LOG_TIMEOUT in all)."""
        deadline = time.monotonic() + LOG_TIMEOUT
        while time.monotonic() < deadline:
            if all(c.text in self.output() for c in self.log_checks):
                return
            time.sleep(0.1)
        missing = [c.source for c in self.log_checks if c.text not in self.output()]
        pytest.fail(f"terminal 1 of `{self.command}` lacks {missing}:\n{self.output()}")

    def stop(self) -> None:
        """Ctrl-C: SIGINT to the whole group; then it must be gone, cleanly."""
        self.wait_logged()
        self.wait_quiet()
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            status = self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"`{self.command}` did not stop within {STOP_TIMEOUT:g} s of "
                        f"Ctrl-C:\n{self.output()}")
        output = self.output()
        assert status == 0, f"`{self.command}` exited with {status} on Ctrl-C:\n{output}"
        assert "Traceback" not in output, output
        time.sleep(0.2)
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            pass
        else:
            self.kill()
            pytest.fail(f"`{self.command}` left processes behind after Ctrl-C")
        assert port_is_free(self.port), f"port {self.port} still bound after Ctrl-C"

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.process.wait(5)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers a failed walk left running are killed."""
    started: list[Server] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.kill()


def run_client(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`{command}` still ran after {COMMAND_TIMEOUT:g} s: {exc.stdout!r}")
    assert done.returncode == 0, (
        f"`{command}` exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done


@pytest.mark.skipif(not hasattr(os, "fork"), reason="twincorn serve's master needs fork")
@pytest.mark.skipif(shutil.which("curl") is None, reason="the tutorial uses curl")
@pytest.mark.timeout(120)
@pytest.mark.parametrize("section", SECTIONS, ids=[s.title for s in SECTIONS])
def test_the_section_runs_as_written(
    section: Section, servers: list[Server], tmp_path: Path
) -> None:
    taken: set[int] = set()
    ports: dict[int, int] = {}
    for doc_port in sorted(doc_ports(section)):
        ports[doc_port] = quiet_port(taken)
        taken.add(ports[doc_port])
    env = environment(ports[DEFAULT_PORT])
    server: Server | None = None
    for block in section.blocks:
        where = f"docs/tutorial.md:{block.line}"
        if block.terminal is Terminal.SERVER:
            if server is not None:
                server.stop()
            (command,) = block.commands
            named = [int(m["port"]) for m in _PORT.finditer(command)]
            port = ports[named[0] if named else DEFAULT_PORT]
            server = Server(rewrite(command, ports), port, env,
                            tmp_path / f"terminal1-{block.line}.log")
            servers.append(server)
            server.wait_ready()
            server.log_checks += [c for c in block.expect if c.key == "log"]
            continue
        if server is not None:
            server.log_checks += [c for c in block.expect if c.key == "log"]
            server.wait_quiet()
        output = "".join(run_client(rewrite(c, ports), env).stdout for c in block.commands)
        found = problems(block.expect, output)
        assert not found, f"{where}: the figures do not hold:\n" + "\n".join(found) + (
            f"\n\nthe output:\n{output}"
        )
    if server is not None:
        server.stop()


# -- the doc itself, and the checks above, without running anything -------------------

def test_the_tutorial_has_steps_to_walk() -> None:
    titles = [s.title for s in SECTIONS]
    assert len(titles) >= 5, titles
    loads = [b for s in SECTIONS for b in s.blocks
             if any(c.startswith("twincorn load") for c in b.commands)]
    assert len(loads) >= 4
    for block in loads:  # a load whose figures nobody checks would be prose only
        assert len(block.commands) == 1, f"docs/tutorial.md:{block.line}: one load per block"
        assert {"req/s", "p50"} <= {c.key for c in block.expect}, (
            f"docs/tutorial.md:{block.line}: say its req/s and p50 in an expect comment"
        )


def test_every_server_is_stopped_before_the_next_starts() -> None:
    for section in SECTIONS:
        blocks = section.blocks
        for i, block in enumerate(blocks):
            if block.terminal is not Terminal.SERVER:
                continue
            assert len(block.commands) == 1, f"docs/tutorial.md:{block.line}: one server"
            command = block.commands[0]
            assert not re.search(r"(^|\s)(-b|--bind)\s", command), (
                f"docs/tutorial.md:{block.line}: use --port, which the walk can rewrite"
            )
            until = next((j for j in range(i + 1, len(blocks))
                          if blocks[j].terminal is Terminal.SERVER), len(blocks))
            prose = "".join(b.prose_after for b in blocks[i:until])
            assert "Ctrl-C" in prose, (
                f"docs/tutorial.md:{block.line}: say where this server is stopped (Ctrl-C)"
            )


REPORT = """\
Response time percentiles (ms)
Type Name        50%  66%  75%  80%  90%  95%  98%  99% 99.9% 99.99% 100% # reqs
--------------------------------------------------------------------------------
GET  /          4006 4006 4006 4006 4006 4006 4006 4006  4006   4006 4008     32
--------------------------------------------------------------------------------
     Aggregated 4006 4006 4006 4006 4006 4006 4006 4006  4006   4006 4008     32

32 requests in 8.00 s: 4.0 req/s, 0 failed (0.00%); stopped at --run-time
16 requests still in flight at the end were not counted; the oldest had waited 3.99 s
"""


def test_figures_are_read_from_the_report() -> None:
    assert load_figures(REPORT) == {
        "req/s": 4.0, "failed": 0.0, "oldest": 3990.0, "p50": 4006.0, "p66": 4006.0,
        "p75": 4006.0, "p80": 4006.0, "p90": 4006.0, "p95": 4006.0, "p98": 4006.0,
        "p99": 4006.0, "p99.9": 4006.0, "p99.99": 4006.0, "max": 4008.0,
    }


@pytest.mark.parametrize(
    ("comment", "wrong"),
    [
        ("req/s 3.5-4.5, failed 0, p50 3.8-4.3 s, max 3.8-4.5 s, oldest 3.5-4.5 s", []),
        ("req/s 15-16.5", ["req/s 15-16.5: measured 4"]),
        ("p50 0.95-1.1 s", ["p50 0.95-1.1 s: measured 4.006 s"]),
        ("failed 1-9", ["failed 1-9: measured 0"]),
        ("p99.9 4000-4010 ms, oldest 8-10 s", ["oldest 8-10 s: measured 3.99 s"]),
        ('prints "4.0 req/s", log "anything"', []),
        ('prints "Hello, World!"', ['prints "Hello, World!": not in the output']),
        ("p75 1-2 s", ["p75 1-2 s: measured 4.006 s"]),
    ],
)
def test_a_wrong_figure_fails(comment: str, wrong: list[str]) -> None:
    assert problems(parse_expect(f"<!-- expect: {comment} -->"), REPORT) == wrong


def test_a_missing_report_fails() -> None:
    assert problems(parse_expect("<!-- expect: req/s 1-2 -->"), "curl: (7) refused") == [
        "req/s 1-2: no such figure in the output"
    ]


@pytest.mark.parametrize(
    "bad", ["p50 1-2", "req/s 3 s", "rps 3-4", "p50 2-1 s", 'prints Hello', "max 1-"]
)
def test_an_unreadable_expectation_is_refused(bad: str) -> None:
    with pytest.raises(ExpectError):
        parse_expect(f"<!-- expect: {bad} -->")


def test_ports_are_rewritten_in_every_command() -> None:
    ports = {8000: 23456, 8001: 23457}
    assert rewrite("curl http://127.0.0.1:8001/", ports) == "curl http://127.0.0.1:23457/"
    assert (rewrite("twincorn serve a:app --port 8001 --trace", ports)
            == "twincorn serve a:app --port 23457 --trace")
    assert rewrite("twincorn load http://127.0.0.1:8000/ -u 16", ports).count("23456") == 1
