"""The master's life cycle as whole processes: the config file and its hooks,
reloading the settings (HUP), reopening logs (USR1), upgrading (USR2) and
--reload."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from master_support import ROOT, Load, Master, children, get
from test_cli import free_port

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="the master needs fork"),
    pytest.mark.timeout(60),
]

HOOKS = '''
import os
workers = 2
threads = 2
access_log = False

def _note(text):
    with open(os.environ["HOOK_LOG"], "a") as f:
        f.write(text + "\\n")

def on_starting(arbiter):
    _note("on_starting")

def when_ready(arbiter):
    _note(f"when_ready {len(arbiter.sockets)}")

def pre_fork(arbiter, worker):
    _note(f"pre_fork {worker.age}")

def post_fork(arbiter, worker):
    _note(f"post_fork {worker.age} {worker.pid == os.getpid()}")

def worker_exit(arbiter, worker):
    _note(f"worker_exit {worker.pid}")

def on_exit(arbiter):
    _note("on_exit")
'''


def test_config_file_sets_settings_and_runs_hooks(
    master_factory: type[Master], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "twincorn.conf.py"
    conf.write_text(HOOKS)
    hook_log = tmp_path / "hooks.log"
    monkeypatch.setenv("HOOK_LOG", str(hook_log))
    master = master_factory("examples.wsgi.app:app", "-c", str(conf))
    master.wait_for(lambda: len(master.workers()) == 2, 10, "2 workers from the file")
    assert master.stop() == 0
    lines = hook_log.read_text().splitlines()
    assert lines[:2] == ["on_starting", "when_ready 1"]
    assert sorted(x for x in lines if x.startswith("pre_fork")) == ["pre_fork 1", "pre_fork 2"]
    assert sorted(x for x in lines if x.startswith("post_fork")) == [
        "post_fork 1 True", "post_fork 2 True"]
    assert len([x for x in lines if x.startswith("worker_exit")]) == 2
    assert lines[-1] == "on_exit"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("worker = 4\n", "unknown setting 'worker' (did you mean 'workers'?)"),
        ("def on_startng(arbiter):\n    pass\n",
         "unknown setting 'on_startng' (did you mean 'on_starting'?)"),
        ("threads = 'many'\n", "threads: expected a whole number, got 'many'"),
        ("workers = 1 +\n", "failed (line 1): SyntaxError"),
        ("import nonexistent_module_xyz\n", "ModuleNotFoundError"),
        ("post_fork = 3\n", "post_fork: a server hook must be a function"),
    ],
)
def test_config_file_errors(tmp_path: Path, source: str, message: str) -> None:
    conf = tmp_path / "bad.conf.py"
    conf.write_text(source)
    result = subprocess.run(
        [sys.executable, "-m", "twincorn", "serve", "examples.wsgi.app:app", "-c", str(conf),
         "--check-config"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert message in result.stderr, result.stderr


def test_config_file_ignores_imports_and_private_names(tmp_path: Path) -> None:
    (tmp_path / "twincorn.conf.py").write_text(
        "import multiprocessing\n"
        "from os import cpu_count\n"
        "_cores = cpu_count() or 1\n"
        "workers = _cores * 2 + 1\n"
        "bind = ['127.0.0.1:9999']\n"
    )
    # Found in the working folder without -c (gunicorn's convention);
    # a flag still wins over the file.
    result = subprocess.run(
        [sys.executable, "-m", "twincorn", "serve", "examples.wsgi.app:app",
         "--app-dir", str(ROOT), "--threads", "3", "--print-config"],
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    printed = dict(line.split(" = ", 1) for line in result.stdout.splitlines())
    printed = {k.strip(): v for k, v in printed.items()}
    assert printed["workers"] == str((os.cpu_count() or 1) * 2 + 1)
    assert printed["bind"] == "('127.0.0.1:9999',)"
    assert printed["threads"] == "3"
    assert printed["config"] == "'twincorn.conf.py'"


def test_term_while_a_worker_boots_stops_it_once_booted(tmp_path: Path) -> None:
    # A stop asked while the worker imports the application is not fatal:
    # the worker boots, stops, and its worker_exit hook runs.
    (tmp_path / "slowboot.py").write_text(
        "import time\ntime.sleep(1.5)\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [])\n    return [b'ok']\n")
    hook_log = tmp_path / "hooks.log"
    conf = tmp_path / "twincorn.conf.py"
    conf.write_text(
        "def worker_exit(arbiter, worker):\n"
        f"    open({str(hook_log)!r}, 'a').write('worker_exit\\n')\n")
    log = tmp_path / "master.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "twincorn", "serve", "slowboot:app", "--app-dir",
             str(tmp_path), "-c", str(conf), "-b", f"127.0.0.1:{free_port()}"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 10
            while "booting worker" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)  # the worker is importing the app now
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
    assert hook_log.read_text() == "worker_exit\n", log.read_text()


def test_hup_reads_the_config_file_again(master_factory: type[Master], tmp_path: Path) -> None:
    conf = tmp_path / "twincorn.conf.py"
    conf.write_text("workers = 1\n")
    master = master_factory("examples.wsgi.app:app", "-c", str(conf))
    master.wait_for(lambda: len(master.workers()) == 1, 10, "1 worker")
    conf.write_text("workers = 3\n")
    master.signal(signal.SIGHUP)
    master.wait_for(lambda: len(master.workers()) == 3, 10, "3 workers after HUP")
    conf.write_text("workers = oops\n")
    master.signal(signal.SIGHUP)
    master.wait_for(lambda: "the settings were not reloaded" in master.output(), 10,
                    "the bad file to be reported")
    time.sleep(0.5)
    assert len(master.workers()) == 3
    assert get(master.port)[0] == 200


def test_usr1_reopens_log_files(tmp_path: Path) -> None:
    error_log, access_log = tmp_path / "error.log", tmp_path / "access.log"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "twincorn", "serve", "examples.wsgi.app:app", "-w", "2",
         "-b", f"127.0.0.1:{port}", "--error-logfile", str(error_log),
         "--access-logfile", str(access_log)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while get(port, "/first")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "GET /first" in access_log.read_text()
        # A log rotator moves the files away, then asks for new ones.
        error_log.rename(tmp_path / "error.log.1")
        access_log.rename(tmp_path / "access.log.1")
        os.kill(proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while not access_log.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the workers reopen theirs too
        for _ in range(4):  # reach both workers
            assert get(port, "/second")[0] == 200
        assert "GET /second" in access_log.read_text()
        assert "GET /second" not in (tmp_path / "access.log.1").read_text()
        assert "USR1: log files reopened" in error_log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def read_pid(path: Path) -> int:
    """The pid in a pid file; 0 while it is absent or being written."""
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return 0


def test_usr2_upgrades_with_no_failed_request(tmp_path: Path) -> None:
    pid_file = tmp_path / "master.pid"
    master = Master("examples.wsgi.app:app", "-w", "2", "--pid", str(pid_file))
    new_pid = 0
    try:
        master.wait_for(lambda: len(master.workers()) == 2, 10, "2 workers")
        load = Load(master.port, clients=4)
        try:
            time.sleep(0.3)
            master.signal(signal.SIGUSR2)
            master.wait_for(lambda: read_pid(pid_file) not in (0, master.pid), 15,
                            "the new master")
            new_pid = read_pid(pid_file)
            assert (tmp_path / "master.pid.oldbin").read_text().strip() == str(master.pid)
            master.wait_for(lambda: len(children(new_pid)) == 2, 15, "the new master's workers")
            time.sleep(0.5)
            master.signal(signal.SIGTERM)  # the operator retires the old master
            assert master.proc.wait(20) == 0
            time.sleep(0.5)
        finally:
            load.stop()
        assert load.failed == 0, master.output()
        assert load.ok > 50
        assert get(master.port)[0] == 200  # served by the new master alone
        assert pid_file.read_text().strip() == str(new_pid)
        assert not (tmp_path / "master.pid.oldbin").exists()
    finally:
        if new_pid:
            os.kill(new_pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while Path(f"/proc/{new_pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not Path(f"/proc/{new_pid}").exists()
        master.stop()


def test_reload_serves_the_edited_code_and_survives_a_broken_edit(
    master_factory: type[Master], tmp_path: Path
) -> None:
    pytest.importorskip("watchfiles")
    app_file = tmp_path / "edited.py"
    app_file.write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [b'v1']\n"
    )
    (tmp_path / "notes.txt").write_text("not watched")
    master = master_factory("edited:app", "--reload", cwd=tmp_path)
    assert get(master.port)[1] == b"v1"
    time.sleep(0.3)  # the watcher is up
    (tmp_path / "notes.txt").write_text("still not watched")
    app_file.write_text(app_file.read_text().replace("v1", "v2"))
    took = master.wait_for(lambda: get(master.port)[1] == b"v2", 5, "the new code")
    assert took < 2.0
    output = master.output()
    assert "reload: edited.py changed" in output
    assert "notes.txt" not in output
    # A broken edit: the old code keeps serving, the error is shown.
    app_file.write_text("def app(environ, start_response)\n")
    master.wait_for(lambda: "SyntaxError" in master.output(), 5, "the error to be shown")
    for _ in range(5):
        assert get(master.port)[1] == b"v2"
    app_file.write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [b'v3']\n"
    )
    master.wait_for(lambda: get(master.port)[1] == b"v3", 5, "the fixed code")


def test_reload_waits_for_a_fix_when_the_first_boot_fails(tmp_path: Path) -> None:
    pytest.importorskip("watchfiles")
    app_file = tmp_path / "broken.py"
    app_file.write_text("def app(environ, start_response)\n")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "twincorn", "serve", "broken:app", "--reload",
         "-b", f"127.0.0.1:{port}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        time.sleep(1.5)
        assert proc.poll() is None  # still there, waiting for a fix
        app_file.write_text(
            "def app(environ, start_response):\n"
            "    start_response('200 OK', [])\n"
            "    return [b'fixed']\n"
        )
        deadline = time.monotonic() + 5
        while get(port, timeout=1)[1] != b"fixed" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert get(port)[1] == b"fixed"
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    assert "next change to a watched file tries again" in output
    assert proc.returncode == 0


def test_run_from_python_starts_the_same_master(tmp_path: Path) -> None:
    port = free_port()
    script = tmp_path / "serve_it.py"
    script.write_text(
        "import twincorn\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [b'from python']\n"
        "if __name__ == '__main__':\n"
        f"    twincorn.run(app, workers=2, port={port}, access_log=False)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while (get(port, timeout=1)[1] != b"from python" or len(children(proc.pid)) < 2) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert get(port)[1] == b"from python"
        assert len(children(proc.pid)) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
