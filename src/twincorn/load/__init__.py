"""twincorn load: a load tester (see docs/load.md).

A scenario file imports what it needs from here:

    from twincorn.load import User, task, between

and Python code runs a whole test with `twincorn.load.run(...)`, or drives
one with `LoadRun(LoadPlan(...), scenario)`. The run's machinery is
imported on first use, so that importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from twincorn.load.context import ResponseError, StopUser, WebSocketError
from twincorn.load.users import (
    User,
    between,
    constant,
    constant_pacing,
    constant_throughput,
    task,
)

if TYPE_CHECKING:
    from twincorn.load.api import run
    from twincorn.load.histogram import Histogram
    from twincorn.load.plan import LoadPlan, PlanError
    from twincorn.load.results import Results, merge_results
    from twincorn.load.runner import LoadRun
    from twincorn.load.scenario import Scenario

_LAZY = {
    "run": "twincorn.load.api",
    "Histogram": "twincorn.load.histogram",
    "LoadPlan": "twincorn.load.plan",
    "PlanError": "twincorn.load.plan",
    "Results": "twincorn.load.results",
    "merge_results": "twincorn.load.results",
    "LoadRun": "twincorn.load.runner",
    "Scenario": "twincorn.load.scenario",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'twincorn.load' has no attribute {name!r}")


__all__ = [
    "Histogram",
    "LoadPlan",
    "LoadRun",
    "PlanError",
    "ResponseError",
    "Results",
    "Scenario",
    "StopUser",
    "User",
    "WebSocketError",
    "between",
    "constant",
    "constant_pacing",
    "constant_throughput",
    "merge_results",
    "run",
    "task",
]
