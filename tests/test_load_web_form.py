"""The web UI's start form (src/twincorn/load/web_form.py): the plan shown
in it, the form read back, and the sentences a value that does not fit
gets, in the form's words; then the same over HTTP, with a fake run, as
the page gets them (400, the sentence, the field)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest

from load_web_fakes import FakeRun
from load_web_support import RunningUI
from twincorn.load.plan import LoadPlan, PlanError
from twincorn.load.scenario import Scenario, from_classes, from_url
from twincorn.load.users import User, task
from twincorn.load.web import parse_form
from twincorn.load.web_form import (
    HINTS,
    NO_HOST,
    FormError,
    apply_form,
    form_values,
    format_duration,
    missing_host,
)

PLAN = LoadPlan(url="http://127.0.0.1:9/", users=4, spawn_rate=100.0)


class Shop(User):
    host: ClassVar[str | None] = "http://127.0.0.1:7001"

    @task
    async def browse(self) -> None:
        await self.client.get("/")


class Shop2(Shop):
    pass


class Elsewhere(Shop):
    host = "http://127.0.0.1:7002"


class Nowhere(Shop):
    host = None


def scenario(*classes: type[User]) -> Scenario:
    return from_classes(list(classes))


# -- the plan in the form -------------------------------------------------------------


def test_form_values_show_the_plan() -> None:
    values = form_values(PLAN.replace(run_time=4200.0))
    assert values == {"model": "closed", "users": 4, "spawn_rate": 100.0, "rate": None,
                      "max_in_flight": 1000, "host": "http://127.0.0.1:9/",
                      "run_time": "1h10m"}
    assert form_values(PLAN.replace(rate=50.0))["model"] == "open"
    assert format_duration(None) == "" and format_duration(1.5) == "1.5s"


@pytest.mark.parametrize("plan, chosen, host", [
    # No scenario file: the URL to GET, from the positional URL or from -H.
    (LoadPlan(url="http://127.0.0.1:8000/"), None, "http://127.0.0.1:8000/"),
    (LoadPlan(host="http://127.0.0.1:8000"), None, "http://127.0.0.1:8000"),
    (LoadPlan(), None, ""),
    (LoadPlan(url="http://127.0.0.1:8000/"), from_url("http://127.0.0.1:8000/"),
     "http://127.0.0.1:8000/"),
    # A scenario file: -H, else the host its classes share, else the URL.
    (LoadPlan(host="http://127.0.0.1:8000"), scenario(Shop), "http://127.0.0.1:8000"),
    (LoadPlan(), scenario(Shop, Shop2), "http://127.0.0.1:7001"),
    (LoadPlan(url="http://127.0.0.1:8000/"), scenario(Shop, Shop2), "http://127.0.0.1:7001"),
    (LoadPlan(url="http://127.0.0.1:8000/"), scenario(Shop, Elsewhere), "http://127.0.0.1:8000/"),
    (LoadPlan(), scenario(Shop, Elsewhere), ""),
    (LoadPlan(), scenario(Nowhere), ""),
])
def test_the_host_field_shows_the_host_the_run_uses(
    plan: LoadPlan, chosen: Scenario | None, host: str,
) -> None:
    assert form_values(plan, chosen)["host"] == host


def test_the_command_lines_users_ramp_and_run_time_fill_the_form() -> None:
    values = form_values(LoadPlan(host="http://127.0.0.1:8000", users=3, spawn_rate=2.5,
                                  run_time=90.0))
    assert (values["users"], values["spawn_rate"], values["run_time"]) == (3, 2.5, "1m30s")


# -- the form into the plan -------------------------------------------------------------


def test_apply_form_closed_and_open_models() -> None:
    plan = apply_form(PLAN, {"model": "closed", "users": "7", "spawn_rate": "2",
                             "host": "http://127.0.0.1:8000", "run_time": "2m"})
    assert (plan.users, plan.spawn_rate, plan.rate, plan.run_time) == (7, 2.0, 0.0, 120.0)
    assert plan.url == "http://127.0.0.1:8000"  # no scenario file: the URL to GET
    plan = apply_form(PLAN, {"model": "open", "rate": "250", "max_in_flight": "50"})
    assert (plan.rate, plan.max_in_flight, plan.users) == (250.0, 50, 4)
    # 0 users per second starts them all at once, as -r 0 does.
    assert apply_form(PLAN, {"model": "closed", "spawn_rate": "0"}).spawn_rate == 0.0
    # A field not sent keeps the plan's value; run time sent empty: until stopped.
    plan = apply_form(PLAN.replace(run_time=30.0), {"users": "5"})
    assert (plan.users, plan.spawn_rate, plan.url, plan.run_time) == (5, 100.0, PLAN.url, 30.0)
    assert apply_form(PLAN.replace(run_time=30.0), {"run_time": " "}).run_time is None
    # The model not sent is the plan's: a script may change the rate alone.
    assert apply_form(PLAN.replace(rate=100.0), {"rate": "300"}).rate == 300.0


def test_apply_form_with_only_dash_h() -> None:
    """`twincorn load -H URL --web`: the form's host is the URL every user GETs."""
    plan = LoadPlan(host="http://127.0.0.1:8000")
    assert apply_form(plan, {"host": "http://127.0.0.1:8000"}).url == "http://127.0.0.1:8000"
    assert apply_form(plan, {}).url == "http://127.0.0.1:8000"  # not sent: what it showed


def test_apply_form_host_with_a_scenario_file() -> None:
    chosen = scenario(Shop, Elsewhere)
    base = LoadPlan(url="http://127.0.0.1:8000/")
    # Sent as shown: nothing changes (the classes with a host keep theirs).
    assert apply_form(base, {"host": "http://127.0.0.1:8000/"}, chosen) == base
    # Changed: the run's -H, for every class.
    changed = apply_form(base, {"host": "http://127.0.0.1:9000"}, chosen)
    assert (changed.host, changed.url) == ("http://127.0.0.1:9000", base.url)
    # Cleared: each class keeps its own host.
    cleared = apply_form(base.replace(host="http://127.0.0.1:9000"), {"host": ""}, chosen)
    assert (cleared.host, cleared.url) == (None, None)


def hint(name: str) -> str:
    return HINTS[name]


@pytest.mark.parametrize("form, field, message", [
    ({"users": "many"}, "users", hint("users")),
    ({"users": "0"}, "users", hint("users")),
    ({"users": "-3"}, "users", hint("users")),
    ({"users": "2.5"}, "users", hint("users")),
    ({"users": ""}, "users", hint("users")),
    ({"spawn_rate": "-1"}, "spawn_rate", hint("spawn_rate")),
    ({"spawn_rate": "fast"}, "spawn_rate", hint("spawn_rate")),
    ({"model": "open", "rate": ""}, "rate", hint("rate")),
    ({"model": "open"}, "rate", hint("rate")),
    ({"model": "open", "rate": "0"}, "rate", hint("rate")),
    ({"model": "open", "rate": "-5"}, "rate", hint("rate")),
    ({"model": "open", "rate": "10", "max_in_flight": "0"}, "max_in_flight",
     hint("max_in_flight")),
    ({"model": "sideways"}, "model", hint("model")),
    ({"run_time": "soon"}, "run_time", hint("run_time")),
    ({"run_time": "0s"}, "run_time", hint("run_time")),
    ({"host": "ftp://x"}, "host", hint("host")),
    ({"host": "127.0.0.1:8000"}, "host", hint("host")),
    ({"host": "http://127.0.0.1:99999"}, "host", hint("host")),
])
def test_apply_form_refuses_bad_values_in_the_forms_words(
    form: dict[str, str], field: str, message: str,
) -> None:
    with pytest.raises(FormError) as refused:
        apply_form(PLAN, form)
    assert (str(refused.value), refused.value.field) == (message, field)
    assert "--" not in message and "-f" not in message  # no flag in a form's sentence


def test_the_forms_sentences() -> None:
    """What a newcomer reads beside a field (docs/load-web.md quotes them)."""
    assert NO_HOST == "Enter the host to load, e.g. http://127.0.0.1:8000"
    assert hint("users") == "Enter the number of users: a whole number, 1 or more"
    assert hint("host") == ("Enter the host as a URL that starts with http:// or https:// "
                            "(ws:// or wss:// for a WebSocket echo), e.g. http://127.0.0.1:8000")


def test_a_run_time_within_the_warm_up() -> None:
    with pytest.raises(FormError) as refused:
        apply_form(PLAN.replace(warmup=10.0), {"run_time": "5s"})
    assert refused.value.field == "run_time"
    assert str(refused.value).endswith("(longer than the 10s warm-up)")


def test_leaving_the_open_model_checks_its_users() -> None:
    """`--rate 100 -u 0` is a valid command line (users mean nothing in the
    open model); the form's closed model then needs users, and says so there."""
    with pytest.raises(FormError) as refused:
        apply_form(PLAN.replace(rate=100.0, users=0), {"model": "closed"})
    assert refused.value.field == "users"


def test_missing_host_names_the_field_only_when_there_is_no_host() -> None:
    error = PlanError("give a URL to load, or a scenario (-f FILE)")
    assert missing_host(error, LoadPlan(), None).field == "host"
    assert str(missing_host(error, LoadPlan(), None)) == NO_HOST
    other = missing_host(PlanError("something else"), PLAN, None)
    assert (str(other), other.field) == ("something else", None)


def test_parse_form_urlencoded_and_json() -> None:
    assert parse_form(b"users=3&host=http%3A%2F%2Fx%3A1&run_time=") == {
        "users": "3", "host": "http://x:1", "run_time": ""}
    assert parse_form(b'{"users": 3, "run_time": null}') == {"users": "3", "run_time": ""}
    with pytest.raises(FormError):
        parse_form(b"{nope")


# -- over HTTP: what the page gets ----------------------------------------------------


@pytest.fixture
def ui() -> Iterator[RunningUI]:
    with RunningUI(PLAN, make_run=lambda plan, s: FakeRun(plan, s, tick=0.05)) as running:
        yield running


def refusal(url: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    reply = httpx.post(f"{url}/api/start", data=form, timeout=5)
    body: dict[str, Any] = reply.json()
    return reply.status_code, body


@pytest.mark.parametrize("form, field", [
    ({"users": "0"}, "users"),
    ({"users": "lots"}, "users"),
    ({"host": "localhost:8000"}, "host"),
    ({"run_time": "1 minute"}, "run_time"),
    ({"model": "open", "rate": "0"}, "rate"),
])
def test_the_server_refuses_bad_values_with_the_field(
    ui: RunningUI, form: dict[str, str], field: str,
) -> None:
    status, body = refusal(ui.url, form)
    assert (status, body) == (400, {"error": HINTS[field], "field": field})
    assert httpx.get(f"{ui.url}/api/state", timeout=5).json()["state"] == "ready"


def test_the_server_refuses_an_empty_host_in_the_forms_words() -> None:
    """`twincorn load --web` with no URL and no -H, Start with the host left
    empty: the real LoadRun refuses it (runner.py's rule), the form says
    what to enter, beside the host field. Nothing starts."""
    with RunningUI(LoadPlan()) as running:
        status, body = refusal(running.url, {"users": "2", "host": ""})
        assert (status, body) == (400, {"error": NO_HOST, "field": "host"})
        status, body = refusal(running.url, {"users": "2"})
        assert (status, body) == (400, {"error": NO_HOST, "field": "host"})
        assert running.ui.control.run is None


def test_a_form_that_is_not_one(ui: RunningUI) -> None:
    reply = httpx.post(f"{ui.url}/api/start", content=b"{nope", timeout=5)
    assert reply.status_code == 400
    assert reply.json() == {"error": "The form is not valid JSON", "field": None}
    reply = httpx.post(f"{ui.url}/api/start", content=b"x" * (65 * 1024), timeout=5)
    assert reply.status_code == 413
