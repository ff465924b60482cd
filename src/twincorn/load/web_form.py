"""The web UI's start form: a plan shown in the form, and the form read back.

The form's fields are options of LoadPlan (plan.py) under the same names:
`model` (closed or open), `users`, `spawn_rate`, `rate`, `max_in_flight`,
`host` and `run_time`. `form_values` shows a plan in them (the command
line's -H or URL, -u, -r, -t... prefill the form); `apply_form` reads them
back into a copy of the plan. A field that is not sent keeps the plan's
value (a script may POST only `users`); a field sent empty was cleared.

The rules are the command line's, and stay in one place each: a field's
text is read by the parser plan.py declares for that option (the one `-u`
or `-t` uses), the plan is checked by `LoadPlan.validate()`, and the run's
need of a host is checked where the run is made (runner.py's LoadRun).
What this module adds is the form's words: a value that does not fit is
refused with a `FormError` that names the form's field (the page shows the
sentence beside it) and says what to enter there, never a flag. Fields are
applied one at a time and the plan checked after each, so the first rule
that fails belongs to the field just applied. Only the model, which the
command line has no field for, has a rule of its own here: the open model
needs a rate above 0 (on the command line, `--rate 0` is the closed model).

The host field means what the run will use. Without a scenario file it is
the URL every user GETs (the command line's URL, else -H). With one, it is
the base URL of the scenario's relative paths, in the order the users pick
theirs (drivers.py): -H, else the host all the User classes share, else
the URL given beside -f. Sent unchanged it changes nothing; changed, it is
the run's -H; cleared, each User class keeps its own host.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from twincorn.load.plan import LoadPlan, PlanError

HOST_EXAMPLE = "http://127.0.0.1:8000"

#: What a field takes, said when its value does not fit (the page shows it
#: beside the field). The sentences name the form's labels, not the flags.
HINTS: dict[str, str] = {
    "model": "Choose the closed or the open load model",
    "users": "Enter the number of users: a whole number, 1 or more",
    "spawn_rate": "Enter the ramp up in users started per second: a number, "
    "0 or more (0 starts them all at once)",
    "rate": "Enter the rate in requests per second: a number above 0",
    "max_in_flight": "Enter the most requests in flight: a whole number, 1 or more",
    "host": f"Enter the host as a URL that starts with http:// or https:// (ws:// or "
    f"wss:// for a WebSocket echo), e.g. {HOST_EXAMPLE}",
    "run_time": "Enter a run time such as 30s, 5m or 1h10m, or leave it empty "
    "to run until stopped",
}
NO_HOST = f"Enter the host to load, e.g. {HOST_EXAMPLE}"

#: Each field's text is read as its command-line option's is.
PARSERS: dict[str, Callable[[str], Any]] = {
    f.name: f.metadata["parse"] for f in dataclasses.fields(LoadPlan) if f.metadata["parse"]
}


class FormError(ValueError):
    """A start form value that cannot be used: one sentence in the form's
    words, and the field it is about (None: the form as a whole)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def bare(scenario: Any) -> bool:
    """True for no scenario file: each user GETs the plan's URL."""
    return scenario is None or getattr(scenario, "builtin", None) is not None


def shared_host(scenario: Any) -> str | None:
    """The host every User class of the scenario names, if they name one."""
    hosts = {getattr(cls, "host", None) or None for cls in getattr(scenario, "user_classes", ())}
    return hosts.pop() if len(hosts) == 1 else None


def form_host(plan: LoadPlan, scenario: Any) -> str | None:
    """What the host field shows: the host the run will use (module doc)."""
    if bare(scenario):
        return plan.url or plan.host
    return plan.host or shared_host(scenario) or plan.url


def format_duration(seconds: float | None) -> str:
    """Seconds as the form shows them: "1h10m", "30s", "" for none."""
    if seconds is None or seconds <= 0:
        return ""
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)


def form_values(plan: LoadPlan, scenario: Any = None) -> dict[str, Any]:
    """The plan as the start form shows it."""
    return {
        "model": plan.model,
        "users": plan.users,
        "spawn_rate": plan.spawn_rate,
        "rate": plan.rate or None,
        "max_in_flight": plan.max_in_flight,
        "host": form_host(plan, scenario) or "",
        "run_time": format_duration(plan.run_time),
    }


def apply_form(plan: LoadPlan, form: Mapping[str, str], scenario: Any = None) -> LoadPlan:
    """A copy of the plan with the form's values, checked (FormError)."""
    model = form.get("model", "").strip() or plan.model
    if model == "open":
        plan = _apply(plan, form, "rate", required=not plan.open_model)
        if not plan.open_model:  # a rate of 0 is the closed model
            raise FormError(hint("rate", plan), "rate")
        plan = _apply(plan, form, "max_in_flight")
    elif model == "closed":
        # Leaving the open model checks the users it had: theirs to answer for.
        plan = _apply(plan, form, "users", also={"rate": 0.0})
        plan = _apply(plan, form, "spawn_rate")
    else:
        raise FormError(hint("model", plan), "model")
    plan = _apply_host(plan, form, scenario)
    return _apply(plan, form, "run_time", cleared=None)


_REQUIRED = object()  # a field that may not be sent empty


def _apply(
    plan: LoadPlan, form: Mapping[str, str], name: str, *,
    also: Mapping[str, Any] | None = None, cleared: Any = _REQUIRED, required: bool = False,
) -> LoadPlan:
    """The plan with form field `name` (and `also`), checked: a FormError
    about that field if its text or the plan it makes does not fit."""
    changes = dict(also or {})
    text = form.get(name)
    if text is None:
        if required:
            raise FormError(hint(name, plan), name)
    elif text.strip():
        try:
            changes[name] = PARSERS[name](text.strip())
        except PlanError:
            raise FormError(hint(name, plan), name) from None
    elif cleared is _REQUIRED:
        raise FormError(hint(name, plan), name)
    else:
        changes[name] = cleared
    return _checked(plan, changes, name)


def _apply_host(plan: LoadPlan, form: Mapping[str, str], scenario: Any) -> LoadPlan:
    shown = form_host(plan, scenario)
    text = form.get("host")
    text = (shown or "") if text is None else text.strip()
    if bare(scenario):  # the URL to GET; -H means nothing without a scenario
        changes: dict[str, Any] = {"url": text} if text else {"url": None, "host": None}
    elif text == (shown or ""):
        return plan
    else:  # changed: the run's -H; cleared: each User class keeps its own host
        changes = {"host": text or None} if text else {"host": None, "url": None}
    return _checked(plan, changes, "host")


def _checked(plan: LoadPlan, changes: Mapping[str, Any], name: str) -> LoadPlan:
    try:
        return plan.replace(**changes).validate()
    except PlanError:
        raise FormError(hint(name, plan), name) from None


def hint(name: str, plan: LoadPlan) -> str:
    """What field `name` takes, in the form's words."""
    text = HINTS[name]
    if name == "run_time" and plan.warmup > 0:
        text += f" (longer than the {format_duration(plan.warmup)} warm-up)"
    return text


def missing_host(error: PlanError, plan: LoadPlan, scenario: Any) -> FormError:
    """The form's words for a run that could not be made from `plan`: a
    run with no host the form can show lacks one (runner.py checks that
    rule for the command line and the form alike); anything else, as said."""
    if not form_host(plan, scenario):
        return FormError(NO_HOST, "host")
    return FormError(str(error))
