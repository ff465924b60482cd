"""What a scenario gets wrong is said before any traffic, in a line or two
with its file and line: a task or hook that is not `async def`, a request
written without `await`, `from locust import ...`, import and syntax
errors. At run time, requests dropped unsent are named with their task, and
a run whose tasks sent no request at all fails (exit 1) and says why, while
one whose requests all failed is reported as before."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from load_support import FakeServer, answer_each, new_client, run_loop
from twincorn.load import LoadPlan, LoadRun, User, task
from twincorn.load.context import NotAwaited
from twincorn.load.report_tables import figures
from twincorn.load.results import Results
from twincorn.load.scenario import ScenarioError, from_classes, from_file
from twincorn.load.stats import ExceptionCount, Tally, Window
from twincorn.load.thresholds import Threshold, exit_status
from twincorn.load.web_control import RunControl

ROOT = Path(__file__).resolve().parent.parent
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
MISSING = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


def write(folder: Path, name: str, source: str) -> str:
    path = folder / name
    path.write_text(textwrap.dedent(source).lstrip("\n"))
    return str(path)


def refusal(path: str) -> str:
    """The message from_file refuses `path` with."""
    with pytest.raises(ScenarioError) as caught:
        from_file(path)
    error = caught.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    message = str(caught.value)
    assert 1 <= len(message.splitlines()) <= 2, message
    assert "Traceback" not in message and "importlib" not in message
    return message


# -- before it runs: the checker, on small files --------------------------------------


SYNC_TASK = """
from twincorn.load import User, task


class Visitor(User):
    @task(3)
    def index(self):
        self.client.get("/")
"""


def test_a_plain_def_task_is_refused_at_its_def_line(tmp_path: Path) -> None:
    path = write(tmp_path, "sync.py", SYNC_TASK)
    message = refusal(path)
    assert message.startswith(f"{path}:6: Visitor.index is a plain def")  # past @task(3)
    assert "write `async def index(self):`" in message
    assert "`await self.client.get(...)`" in message


@pytest.mark.parametrize("hook", ["on_start", "on_stop"])
def test_a_plain_def_hook_is_refused(tmp_path: Path, hook: str) -> None:
    path = write(tmp_path, "hook.py", f"""
        from twincorn.load import User, task


        class Visitor(User):
            def {hook}(self):
                pass

            @task
            async def index(self):
                await self.client.get("/")
        """)
    message = refusal(path)
    assert message.startswith(f"{path}:5: Visitor.{hook} is a plain def")
    assert f"write `async def {hook}(self):`" in message


def test_tasks_given_as_a_list_and_async_generators_are_checked_too(tmp_path: Path) -> None:
    path = write(tmp_path, "listed.py", """
        from twincorn.load import User


        def browse(user):
            return None


        async def stream(user):
            yield 1


        class Visitor(User):
            tasks = [browse, stream]
        """)
    message = refusal(path)
    assert message.startswith(f"{path}:4: Visitor.browse is a plain def")
    assert message.endswith("(1 more like it)")
    path = write(tmp_path, "generator.py", """
        from twincorn.load import User, task


        class Visitor(User):
            @task
            async def index(self):
                yield await self.client.get("/")
        """)
    assert "Visitor.index is an async generator (it has yield)" in refusal(path)


def test_a_request_written_without_await_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "noawait.py", """
        from twincorn.load import User, task


        class Visitor(User):
            @task
            async def index(self):
                if True:
                    self.client.post("/items", json={"a": 1})
        """)
    assert refusal(path) == (
        f"{path}:8: Visitor.index calls self.client.post(...) without await, so the "
        "request is never sent: write `await self.client.post(...)`"
    )


def test_awaited_and_kept_requests_are_not_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "fine.py", """
        import asyncio
        from twincorn.load import User, task


        class Visitor(User):
            @task
            async def index(self):
                await self.client.get("/")
                pending = self.client.get("/later")  # kept: the run decides
                async with self.client.get("/checked", check=True) as r:
                    r.success()
                await asyncio.gather(self.client.get("/a"), self.client.get("/b"))
                await pending
        """)
    scenario = from_file(path)
    assert [c.__name__ for c in scenario.user_classes] == ["Visitor"]


def test_locust_imports_point_to_twincorn_load_and_the_guide(tmp_path: Path) -> None:
    path = write(tmp_path, "locustfile.py", """
        '''A locustfile.'''
        from locust import HttpUser, task, between, events
        from locust.exception import StopUser


        class Visitor(HttpUser):
            wait_time = between(1, 2)

            @task
            def index(self):
                self.client.get("/")
        """)
    first, second = refusal(path).splitlines()
    assert first.startswith(f"{path}:2: twincorn does not use Locust: write "
                            "`from twincorn.load import User, task, between, StopUser`")
    assert "async def" in first
    assert second == "docs/locust.md maps each of Locust's names onto twincorn's " \
                     "(not in twincorn: events)"
    path = write(tmp_path, "plain.py", "import os\nimport locust.contrib.fasthttp\n")
    first, _ = refusal(path).splitlines()
    assert first.startswith(f"{path}:2: twincorn does not use Locust: write "
                            "`from twincorn.load import User, task`")


def test_every_name_the_message_suggests_is_in_twincorn_load() -> None:
    from twincorn import load
    from twincorn.load.scenario_checks import LOCUST_NAMES

    for ours in LOCUST_NAMES.values():
        assert ours in load.__all__, ours


def test_a_syntax_error_is_its_file_line_and_text(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.py", """
        from twincorn.load import User, task


        class Visitor(User):
            @task
            async def index(self)
                await self.client.get("/")
        """)
    first, second = refusal(path).splitlines()
    assert first == f"{path}:6: SyntaxError: expected ':'"
    assert second == "    async def index(self)"


def test_an_error_while_importing_is_its_file_line_and_message(tmp_path: Path) -> None:
    path = write(tmp_path, "typo.py", """
        from twincorn.load import User, task

        HOST = undefined_name
        """)
    assert refusal(path) == f"{path}:3: NameError: name 'undefined_name' is not defined"
    path = write(tmp_path, "missing.py", "import twincorn_no_such_module\n")
    assert refusal(path) == (
        f"{path}:1: ModuleNotFoundError: No module named 'twincorn_no_such_module'"
    )
    path = write(tmp_path, "empty_user.py", """
        from twincorn.load import User


        class Visitor(User):
            pass
        """)
    assert refusal(path) == (
        f"{path}:4: TypeError: Visitor has no tasks: mark async methods with @task, "
        "or set tasks"
    )


def test_an_error_in_a_module_it_imports_names_both_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "scenario_helper_x.py", """
        import json

        DATA = json.loads("{not json")
        """)
    path = write(tmp_path, "uses_helper.py", """
        from twincorn.load import User, task
        from scenario_helper_x import DATA
        """)
    message = refusal(path)
    assert message.startswith("scenario_helper_x.py:3: JSONDecodeError: ")
    assert message.endswith(f"(imported at {path}:2)")


def test_user_classes_from_python_are_checked(tmp_path: Path) -> None:
    class Plain(User):
        @task
        def index(self) -> None:
            pass

    with pytest.raises(ScenarioError, match=r"Plain\.index is a plain def"):
        from_classes([Plain])


# -- at run time: requests dropped unsent, and runs that send nothing -------------------


def test_the_client_knows_a_request_dropped_without_await() -> None:
    received: list[bytes] = []
    with FakeServer(answer_each(OK, received)) as server:

        async def main() -> tuple[NotAwaited | None, NotAwaited | None, int]:
            client, _ = new_client(server.url)
            try:
                await client.get("/sent")
                async with client.get("/checked", check=True) as r:
                    r.success()
                kept = client.get("/kept")
                before = client.take_not_awaited()
                client.get("/dropped?x=1")
                client.post("/dropped/too")
                dropped = client.take_not_awaited()
                await kept
                return before, dropped, client.dropped_requests
            finally:
                client.close()

        before, dropped, left = run_loop(main())
    assert before is None and left == 0
    assert str(dropped) == (
        "self.client.post('/dropped/too') was not awaited (and 1 more), so it was never "
        "sent: write `await self.client.post(...)`"
    )
    assert [r.split(b" ")[1] for r in received] == [b"/sent", b"/checked", b"/kept"]


def idle_results(requests: int = 0, tasks: int = 7, state: str = "stopped") -> Results:
    total = Tally("", "Aggregated", no_response=requests, failures=requests)
    return Results("closed", 1.0, total, [], tasks=tasks, state=state, stopped_by="run-time")


def test_a_run_that_sent_no_request_fails_and_says_why() -> None:
    results = idle_results()
    reason = ("the tasks ran 7 times but sent no request: a task sends one with "
              "`await self.client.get(...)`")
    assert results.no_request == reason
    assert results.to_dict()["no_request"] == reason
    assert exit_status(results, []) == (1, [reason])
    # Thresholds decide the rest, but not this: p99 and rps of nothing pass.
    assert exit_status(results, [Threshold.parse("p99>500ms")]) == (1, [reason])
    assert idle_results(tasks=0).no_request == "no request was sent (stopped by run-time)"
    assert idle_results(state="running").no_request == ""  # not yet: it may still send


def test_failed_requests_are_not_no_request() -> None:
    results = idle_results(requests=5)
    assert results.no_request == ""
    assert exit_status(results, []) == (1, ["5 of 5 requests failed"])
    assert exit_status(results, [Threshold.parse("error_rate>100%")]) == (0, [])


def test_dropped_requests_are_named_with_their_task_at_the_exit() -> None:
    results = idle_results()
    results.exceptions = [
        ExceptionCount("Visitor.index", "NotAwaited: self.client.get('/') was not awaited, "
                       "so it was never sent: write `await self.client.get(...)`", "", 3),
        ExceptionCount("Visitor.about", "KeyError: 'x'", "", 2),
    ]
    _, reasons = exit_status(results, [])
    assert reasons[1:] == [
        "Visitor.index: self.client.get('/') was not awaited, so it was never sent: "
        "write `await self.client.get(...)` (3 times)",
        "tasks raised 2 exceptions",
    ]


def test_task_runs_add_up_across_processes_and_json() -> None:
    one = Window(1, 1.0, 1.0, 1, 0, {}, {}, {}, tasks=3)
    one.merge(Window(1, 1.0, 1.0, 1, 0, {}, {}, {}, tasks=4))
    assert one.tasks == 7
    data = idle_results().to_dict()
    assert Results.from_dict(data).tasks == 7


def test_the_web_ui_and_html_report_show_why_in_their_figures() -> None:
    requests = figures(idle_results().to_dict())[0]
    assert requests["label"] == "Requests" and requests["bad"]
    assert requests["value"].startswith("0: the tasks ran 7 times but sent no request")
    assert not figures(idle_results(requests=5).to_dict())[0]["bad"]


class Idle(User):
    host = "http://127.0.0.1:9"  # never connected to: the task sends nothing

    @task
    async def think(self) -> None:
        pass


def test_the_web_ui_s_end_state_of_a_run_that_sent_nothing() -> None:
    async def main() -> dict[str, Any]:
        control = RunControl(LoadPlan(users=2, run_time=0.3), from_classes([Idle]))
        control.start({})
        assert control.task is not None
        await control.task
        return control.view(control.results(), whole=False)

    view = run_loop(main())
    assert view["state"] == "stopped"
    assert view["figures"][0]["bad"]
    assert "sent no request" in view["figures"][0]["value"]


def test_a_load_run_counts_its_tasks() -> None:
    run = LoadRun(LoadPlan(users=2, run_time=0.3), from_classes([Idle]))
    results = run_loop(run.run())
    assert results.tasks > 0 and results.requests == 0
    assert results.no_request.startswith(f"the tasks ran {results.tasks:,} times")


# -- end to end: `twincorn load -f FILE` against a tiny server -----------------------------


def twincorn_load(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twincorn", "load", *args],
        capture_output=True, text=True, timeout=30, cwd=ROOT,
    )


@pytest.fixture
def server() -> Iterator[FakeServer]:
    """A tiny HTTP server on 127.0.0.1: 404 for /missing, else 200; it keeps
    the requests it got in .requests."""
    fake = FakeServer(lambda sock, number: None)
    fake.handler = answer_each(lambda r: MISSING if b" /missing " in r else OK, fake.requests)
    with fake:
        yield fake


TASK = """
from twincorn.load import User, task


class Visitor(User):
    @task
    async def index(self):
        {body}
"""


def scenario(folder: Path, body: str) -> str:
    return write(folder, "scenario.py", TASK.format(body=body))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('self.client.get("/")', "scenario.py:7: Visitor.index calls self.client.get(...) "
                                 "without await"),
        ('from locust import task', "twincorn does not use Locust"),
    ],
)
def test_refused_scenarios_exit_2_before_any_traffic(
    server: FakeServer, tmp_path: Path, body: str, message: str
) -> None:
    done = twincorn_load("-f", scenario(tmp_path, body), "-H", server.url, "-t", "2s", "-q")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("twincorn load: error: ")
    assert message in done.stderr and "Traceback" not in done.stderr
    assert server.accepted == 0


def test_a_plain_def_scenario_exits_2_before_any_traffic(
    server: FakeServer, tmp_path: Path
) -> None:
    path = write(tmp_path, "sync.py", SYNC_TASK)
    done = twincorn_load("-f", path, "-H", server.url, "-u", "1", "-t", "2s")
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"twincorn load: error: {path}:6: Visitor.index is a plain def, but twincorn runs "
        "its tasks on an event loop: write `async def index(self):` and await each request "
        "(`await self.client.get(...)`)\n"
    )
    assert server.accepted == 0


def test_a_forgotten_await_fails_the_run_and_names_the_task(
    server: FakeServer, tmp_path: Path
) -> None:
    path = scenario(tmp_path, 'response = self.client.get("/")')
    out = tmp_path / "out.json"
    done = twincorn_load("-f", path, "-H", server.url, "-u", "1", "-t", "1s", "-q",
                         "--json", str(out))
    assert done.returncode == 1, done.stderr
    data = json.loads(out.read_text())
    assert data["requests"] == 0 and data["tasks"] > 0
    lines = [line for line in done.stderr.splitlines() if not line.startswith("wrote ")]
    assert lines[0] == f"twincorn load: {data['no_request']}"
    assert lines[0].startswith(f"twincorn load: the tasks ran {data['tasks']:,} times but "
                               "sent no request")
    assert lines[1].startswith("twincorn load: Visitor.index: self.client.get('/') was not "
                               "awaited, so it was never sent: write "
                               "`await self.client.get(...)`")
    assert server.accepted == 0


def test_tasks_that_send_nothing_fail_the_run(server: FakeServer, tmp_path: Path) -> None:
    done = twincorn_load("-f", scenario(tmp_path, "pass"), "-H", server.url, "-u", "1",
                         "-t", "1s", "-q", "--fail-on", "p99>1s")
    assert done.returncode == 1
    assert "sent no request: a task sends one with `await self.client.get(...)`" \
        in done.stderr


def test_requests_that_all_failed_are_reported_as_failures(
    server: FakeServer, tmp_path: Path
) -> None:
    path = scenario(tmp_path, 'await self.client.get("/missing")')
    done = twincorn_load("-f", path, "-H", server.url, "-u", "1", "--stop-after", "5", "-q")
    assert done.returncode == 1
    assert done.stderr == "twincorn load: 5 of 5 requests failed\n"
    assert len(server.requests) == 5
