"""The first hour: every mistake on the command line gets two lines that
name the flag, the value and the fix, exit status 2, and no traceback; the
peers' flags get what twincorn calls them; nothing is bound before the
settings and the application's source are known to be good."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from twincorn import app_source, extras, peer_flags
from twincorn.address import AddressError, parse_address
from twincorn.cli import main, make_parser, subcommands
from twincorn.cli_parser import Parser, unknown_flag
from twincorn.peer_flags import Peer, Verdict

ROOT = Path(__file__).resolve().parent.parent


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run main(argv), which must refuse it: its stderr, checked for shape."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "usage:" not in err, err
    assert 1 <= len(err.splitlines()) <= 2, err
    return err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["serve", "-b", "127.0.0.1:99999", "x:app"], ["-b/--bind", "99999", "out of range"]),
        (["serve", "-b", "http://127.0.0.1:8000", "x:app"],
         ["-b/--bind", "without a scheme", "-b 127.0.0.1:8000"]),
        (["serve", "-b", "::1", "x:app"], ["in brackets", "[::1]:8000"]),
        (["serve", "-b", "127.0.0.1:http", "x:app"], ["'http' is not a number"]),
        (["serve", "--port", "70000", "x:app"], ["--port", "70000", "out of range"]),
        (["serve", "-w", "abc"], ["-w/--workers", "expected a whole number, got 'abc'"]),
        (["serve", "-w", "0", "x:app"], ["-w/--workers", "at least 1"]),
        (["serve", "--threads", "-1", "x:app"], ["--threads", "must not be negative, got -1"]),
        (["serve", "--timeout", "soon", "x:app"], ["--timeout", "expected a duration", "30s"]),
        (["serve", "--limit-request-body", "lots"], ["--limit-request-body", "100m"]),
        (["serve", "--interface", "asgi3", "x:app"], ["--interface", "'asgi3'", "wsgi"]),
        (["serve", "--wrokers", "2"], ["unknown flag --wrokers; did you mean --workers?"]),
        (["serve", "--thread", "2"], ["did you mean --threads?"]),  # no abbreviations
        (["serve", "--keep-aliv", "2"], ["did you mean --timeout-keep-alive?"]),
        (["serve", "--ws", "websocket", "x:app"], ["--ws", "'websocket'", "wsproto"]),
        (["serve", "--uds", "/tmp/s", "x:app"], ["twincorn spells it -b unix:PATH"]),
        (["serve", "-k", "gevent", "x:app"], ["-k is gunicorn's", "leave -k out"]),
        (["serve", "--daemon", "x:app"], ["--daemon is gunicorn's", "systemd"]),
        (["serve", "--ssl-version", "2", "x:app"], ["--ssl-version is gunicorn and uvicorn's",
                                                        "spells it --tls-min-version"]),
        (["serve", "--keyfile", "k.pem", "x:app"], ["TLS needs a certificate"]),
        (["serve", "--forwarded-allow-ips", "10.0.0.0/33", "x:app"],
         ["--forwarded-allow-ips", "'10.0.0.0/33' is not a network"]),
        (["serve", "--forwarded-allow-ips", "localhost", "x:app"],
         ["--forwarded-allow-ips", "'localhost' is not an IP address"]),
        (["serve", "-u", "www", "x:app"], ["-u is gunicorn's", "does not switch users"]),
        (["serve", "--users", "10", "x:app"], ["--users is a flag of twincorn load"]),
        (["serve", "x:app", "y:app"], ["unexpected argument 'y:app'"]),
        (["serve"], ["no application given", "twincorn serve examples.wsgi.app:app"]),
        (["serve", "examples/wsgi/app.py"], ["names a file", "examples.wsgi.app:app"]),
        (["serve", "app"], ["must be given as module:attribute", "app:app"]),
        (["load", "--headless", "--web"], ["--headless and --web contradict"]),
        (["load", "-w", "4", "http://127.0.0.1:1/"], ["-w is a flag of twincorn serve"]),
        (["load", "--users", "many"], ["-u/--users", "'many'"]),
        (["load", "-t", "3x", "http://127.0.0.1:1/"], ["-t/--run-time", "expected a duration"]),
        (["load", "--exit-code-on-error", "1"], ["twincorn spells it --fail-on"]),
        (["load", "--master"], ["one machine", "--processes"]),
        (["load", "--spawn-rat", "2"], ["did you mean --spawn-rate?"]),
        (["lab", "--max-users", "0"], ["--max-users", "more than 0"]),
        (["lab", "--step-seconds", "x"], ["--step-seconds", "expected a number"]),
        (["lab", "--no-opne"], ["did you mean --no-fixed-rate?"]),
        (["app:app"], ["to serve it: twincorn serve app:app"]),
        (["http://127.0.0.1:8000/"], ["twincorn load http://127.0.0.1:8000/"]),
        (["srve"], ["did you mean serve?"]),
        ([], ["give a command"]),
        (["-w", "4", "serve"], ["the command comes first", "twincorn serve -w"]),
    ],
)
def test_mistakes_get_two_lines_and_status_2(argv: list[str], expected: list[str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(argv, capsys)
    for fragment in expected:
        assert fragment in err, err


def test_a_bad_environment_variable_names_it(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TWINCORN_WORKERS", "abc")
    assert "workers: expected a whole number, got 'abc'" in refused(["serve", "x:app"], capsys)
    monkeypatch.delenv("TWINCORN_WORKERS")
    monkeypatch.setenv("TWINCORN_WOKRERS", "2")
    assert "TWINCORN_WORKERS" in refused(["serve", "x:app"], capsys)


def test_a_gunicorn_config_name_is_pointed_at_ours(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "twincorn.conf.py"
    conf.write_text("keepalive = 5\n")
    err = refused(["serve", "x:app", "-c", str(conf)], capsys)
    assert "unknown setting 'keepalive' (gunicorn's name; twincorn's is 'timeout_keep_alive')" \
        in err
    conf.write_text("worker_class = 'gevent'\n")
    assert "leave -k out" in refused(["serve", "x:app", "-c", str(conf)], capsys)


# -- the peers' flags -----------------------------------------------------------


def parse(argv: list[str]) -> dict[str, Any]:
    """What main() hands a command, for `argv` (which must be valid)."""
    parser = make_parser()
    args = vars(parser.parse_args(argv))
    subcommands(parser)[args.pop("command")].settle_peer_flags(args)
    return args


@pytest.mark.parametrize(
    ("argv", "dest", "value"),
    [
        (["serve", "-t", "5"], "timeout", 5.0),
        (["serve", "--keep-alive", "3"], "timeout_keep_alive", 3.0),
        (["serve", "--timeout-graceful-shutdown", "1m"], "graceful_timeout", 60.0),
        (["serve", "-p", "/run/app.pid"], "pid", "/run/app.pid"),
        (["serve", "--proxy-allow-from", "10.0.0.0/8"], "proxy_allow_ips", "10.0.0.0/8"),
        (["serve", "--log-file", "err.log"], "error_log_file", "err.log"),
        (["serve", "--access-logformat", "%(h)s"], "access_log_format", "%(h)s"),
        (["serve", "--limit-request-field_size", "1k"], "limit_request_field_size", 1024),
        (["load", "--locustfile", "locustfile.py"], "scenario", "locustfile.py"),
        (["load", "-P", "9000"], "web_port", 9000),
    ],
)
def test_aliases_mean_exactly_our_flags(argv: list[str], dest: str, value: Any) -> None:
    assert parse(argv)[dest] == value


def test_headless_is_accepted_and_changes_nothing() -> None:
    assert parse(["load", "--headless", "http://127.0.0.1:1/"]) == parse(
        ["load", "http://127.0.0.1:1/"])


def parsers() -> dict[str, Parser]:
    return subcommands(make_parser())


def visible(parser: Parser) -> set[str]:
    return {f for a in parser._actions if a.help != "==SUPPRESS==" for f in a.option_strings}


@pytest.mark.parametrize("entry", peer_flags.TABLE, ids=lambda e: f"{e.command} {e.flags[0]}")
def test_the_table_says_what_the_parser_does(entry: peer_flags.PeerFlag) -> None:
    parser = parsers()[entry.command]
    ours = visible(parser)
    own = parser.own_flags()
    twincorn = entry.twincorn.split()[0].split("/") if entry.twincorn else []
    assert all(flag in ours for flag in twincorn), entry
    if entry.verdict is Verdict.SAME:
        assert all(flag in ours for flag in entry.flags), entry
    elif entry.verdict is Verdict.ALIAS:
        assert len(twincorn) == 1
        for flag in entry.flags:
            assert flag not in ours and own[flag] == own[twincorn[0]], entry
    elif entry.verdict is Verdict.ACCEPTED:
        assert entry.note and all(flag not in ours for flag in entry.flags)
    else:  # refused, with what to do instead
        assert entry.note or entry.verdict is Verdict.SPELLED
        for flag in entry.flags:
            assert flag not in own, entry
            assert unknown_flag(parser, flag, parsers()) == entry.advice(flag)


def test_no_flag_is_in_the_table_twice() -> None:
    for command in ("serve", "load"):
        flags = [f for e in peer_flags.entries(command) for f in e.flags]
        assert len(flags) == len(set(flags)), command
    names = [e.setting for e in peer_flags.TABLE if e.setting]
    assert len(names) == len(set(names))


def test_the_guides_tables_are_made_from_the_table() -> None:
    for doc, peers in (("gunicorn-uvicorn.md", (Peer.GUNICORN, Peer.UVICORN)),
                       ("load.md", (Peer.LOCUST,))):
        text = (ROOT / "docs" / doc).read_text()
        assert peer_flags.refresh(text) == text, (
            f"docs/{doc} is stale: python -m twincorn.peer_flags")
        for peer in peers:
            assert f"<!-- peer-flags {'load' if peer is Peer.LOCUST else 'serve'} " \
                f"{peer.name.lower()} -->" in text


def test_the_guides_signals_are_the_masters() -> None:
    from twincorn.master.arbiter import Arbiter
    from twincorn.master.child import MASTER_SIGNALS

    text = (ROOT / "docs" / "gunicorn-uvicorn.md").read_text()
    table = text.split("## Signals", 1)[1].split("\n## ", 1)[0]
    named = {cell.strip("` ") for line in table.splitlines()[2:] if line.startswith("| `")
             for cell in line.split("|")[1].split(",")}
    handled = {name[3:] for name in MASTER_SIGNALS if name != "SIGCHLD"}
    assert named == handled
    assert all(hasattr(Arbiter, f"handle_{name.lower()}") for name in handled)


# -- nothing bound before the settings and the app are known good ------------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port we listen on: a server that tried to bind it would fail with
    'Address already in use' (exit 1), so another answer proves it did not try."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def serve(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "twincorn", "serve", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=30)


def test_no_application_binds_nothing(taken_port: int) -> None:
    done = serve("-b", f"127.0.0.1:{taken_port}")
    assert done.returncode == 2
    assert done.stderr.startswith("twincorn serve: error: no application given")
    assert len(done.stderr.splitlines()) == 2


@pytest.mark.parametrize(
    ("files", "spec", "expected", "lines"),
    [
        ({}, "nosuch:app", ["module 'nosuch' not found"], 1),
        ({"mod.py": "def app(environ, start_response):\n    return []\n"}, "mod:ap",
         ["has no attribute 'ap' (did you mean 'app'?)"], 1),
        ({"pkg/__init__.py": "", "pkg/web.py": "app = None\n"}, "pkg.wbe:app",
         ["package 'pkg' has no module 'wbe' (did you mean 'web'?)"], 1),
        ({"mod.py": "x = 1\n\ndef app(environ, start_response)\n    return []\n"}, "mod:app",
         ["SyntaxError in", "mod.py, line 3", "def app(environ, start_response)", "^"], 4),
    ],
)
def test_app_mistakes_end_before_binding(tmp_path: Path, taken_port: int,
                                         files: dict[str, str], spec: str,
                                         expected: list[str], lines: int) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    started = time.monotonic()
    done = serve(spec, "--app-dir", str(tmp_path), "-b", f"127.0.0.1:{taken_port}")
    assert done.returncode == 1, done.stderr
    assert time.monotonic() - started < 10
    for fragment in expected:
        assert fragment in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "importlib" not in done.stderr
    assert "cannot listen" not in done.stderr and "booting" not in done.stderr
    assert len(done.stderr.splitlines()) == lines, done.stderr


def test_preload_imports_before_binding(tmp_path: Path, taken_port: int) -> None:
    (tmp_path / "mod.py").write_text("raise RuntimeError('no database')\napp = None\n")
    done = serve("mod:app", "--preload", "--app-dir", str(tmp_path),
                 "-b", f"127.0.0.1:{taken_port}")
    assert done.returncode == 1
    assert "RuntimeError: no database" in done.stderr
    assert "cannot listen" not in done.stderr and "booting" not in done.stderr
    assert "importlib" not in done.stderr


def test_a_syntax_error_in_an_imported_module_shows_only_its_line(tmp_path: Path) -> None:
    """What the worker reports when the error is beyond the master's look."""
    (tmp_path / "mod.py").write_text("import helper\n\napp = helper.app\n")
    (tmp_path / "helper.py").write_text("def app(environ, start_response)\n    return []\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = serve("mod:app", "--app-dir", str(tmp_path), "-b", f"127.0.0.1:{port}")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and "SyntaxError in" in errors[0] and "helper.py, line 1" in errors[0]
    assert "importlib" not in done.stderr and "importer.py" not in done.stderr
    assert 'mod.py", line 1' in done.stderr  # the application's own frame stays


def test_help_says_each_default_once_in_words() -> None:
    for command in ("serve", "load", "lab"):
        text = " ".join(parsers()[command].format_help().split())
        assert "[default: none]" not in text and "Default" not in text, command
    serve_help = " ".join(parsers()["serve"].format_help().split())
    assert "--limit-request-body SIZE" in serve_help and "[default: 100m]" in serve_help
    load_help = " ".join(parsers()["load"].format_help().split())
    assert "once). [default: 0]" in load_help  # -r
    lab_help = parsers()["lab"].format_help()
    assert "--no-fixed-rate" in lab_help and "--no-open" not in lab_help


def test_the_old_lab_flag_still_works_and_says_its_new_name(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "twincorn", "lab", "--no-open", "--analyse", str(tmp_path / "no")],
        capture_output=True, text=True, timeout=30, cwd=ROOT,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("twincorn lab: --no-open is now --no-fixed-rate")
    assert "--analyse" in done.stderr and "Traceback" not in done.stderr


# -- the pure parts: addresses, the look at the source, install hints -----------------


@pytest.mark.parametrize(
    ("text", "family", "target"),
    [
        ("localhost", socket.AF_INET, ("localhost", 8000)),  # gunicorn: a bare host is :8000
        (":9000", socket.AF_INET, ("0.0.0.0", 9000)),
        ("[::1]", socket.AF_INET6, ("::1", 8000)),
        ("[::1]:9000", socket.AF_INET6, ("::1", 9000)),
        ("unix:/run/app.sock", socket.AF_UNIX, "/run/app.sock"),
        ("fd://3", socket.AF_UNSPEC, 3),
    ],
)
def test_addresses(text: str, family: socket.AddressFamily, target: Any) -> None:
    assert parse_address(text) == (family, target)


@pytest.mark.parametrize("text", ["unix:", "[::1", "[nope]:80", "[::1]x", "host:", "a:b:c"])
def test_addresses_refused(text: str) -> None:
    with pytest.raises(AddressError):
        parse_address(text)


@pytest.mark.parametrize(
    ("source", "names"),
    [
        ("import os.path\nfrom x import y as z\nclass C: pass\nasync def f(): v = 1\n",
         {"os", "z", "C", "f"}),
        ("if True:\n    app = 1\nelse:\n    try:\n        import app2 as app\n"
         "    except ImportError as e:\n        pass\nfor i, (j, k) in []: pass\n",
         {"app", "e", "i", "j", "k"}),
        ("with open('x') as fh: pass\n(w := 1)\napp: int\n", {"fh", "w"}),  # app: not bound
        ("from x import *\n", None),
        ("globals()['app'] = 1\n", None),
        ("import sys\nsetattr(sys.modules[__name__], 'app', 1)\n", None),
        ("def __getattr__(name): return 1\n", None),
    ],
)
def test_top_level_names(source: str, names: set[str] | None) -> None:
    import ast

    assert app_source.top_level_names(ast.parse(source)) == names


def test_a_package_attribute_may_be_a_submodule(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "wsgi.py").write_text("app = None\n")
    app_source.look("pkg", "wsgi", str(tmp_path))  # not refused: the import decides
    with pytest.raises(app_source.SourceProblem, match="no attribute 'other'"):
        app_source.look("pkg", "other", str(tmp_path))


def test_the_look_runs_no_code(tmp_path: Path) -> None:
    (tmp_path / "noisy").mkdir()
    (tmp_path / "noisy" / "__init__.py").write_text("raise SystemExit('ran')\n")
    (tmp_path / "noisy" / "web.py").write_text("raise SystemExit('ran')\napp = 1\n")
    app_source.look("noisy.web", "app", str(tmp_path))
    assert "noisy" not in sys.modules and "noisy.web" not in sys.modules


def test_install_hints(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert extras.checkout() == ROOT  # the tests run from the checkout, installed -e
    monkeypatch.chdir(ROOT)
    assert extras.install_hint("reload") == (
        "pip install -e '.[reload]' (this twincorn runs from a source checkout)")
    monkeypatch.setattr(extras, "checkout", lambda: None)
    assert extras.install_hint("reload") == "pip install 'twincorn[reload]'"


def test_reload_waits_for_a_fix_of_a_syntax_error(tmp_path: Path) -> None:
    """With --reload, a mistake in the code does not stop the start: the
    worker reports it and the master waits for the next save (only a module
    that is not there at all ends the command)."""
    pytest.importorskip("watchfiles")
    app_file = tmp_path / "mod.py"
    app_file.write_text("def app(environ, start_response)\n    return []\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "twincorn", "serve", "mod:app", "--reload", "--app-dir",
         str(tmp_path), "-b", f"127.0.0.1:{port}"],
        cwd=tmp_path, stderr=subprocess.PIPE, text=True,
    )
    lines: list[str] = []
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or ()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 15
        while not any("the next change to a watched file tries again" in x for x in lines):
            assert time.monotonic() < deadline and proc.poll() is None, lines
            time.sleep(0.05)
        app_file.write_text(
            "def app(environ, start_response):\n"
            "    start_response('200 OK', [])\n"
            "    return [b'fixed']\n")
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), 1) as conn:
                    conn.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    assert conn.recv(4096).endswith(b"fixed")
                break
            except (ConnectionError, AssertionError):
                assert time.monotonic() < deadline, "the fixed app was not served"
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(10)
        reader.join(5)
        proc.stderr.close()
