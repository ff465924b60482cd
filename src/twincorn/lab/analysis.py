"""Reading the measurements: where each configuration saturates, how that
compares with the model, and the summary in words.

Everything here works on the plain dictionaries of results.json, so that a
saved run can be analysed again (`twincorn lab --analyse results.json`).
"""

from __future__ import annotations

import statistics
from typing import Any

# Throughput "stopped growing" when more users bought less than this much more.
_GROWTH = 1.15


def knee(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first step past which more users bought little more throughput.

    Returns {"users", "rps", "ceiling_rps"} (the ceiling being the median
    throughput from the knee on), or None if throughput kept growing over
    the whole ramp.
    """
    for i in range(len(steps) - 1):
        here, there = steps[i], steps[i + 1]
        if here["rps"] > 0 and there["rps"] < here["rps"] * _GROWTH:
            plateau = [s["rps"] for s in steps[i:]]
            return {"users": here["users"], "rps": here["rps"],
                    "ceiling_rps": statistics.median(plateau)}
    return None


def describe(configuration: dict[str, Any], service_time: float) -> str:
    """A paragraph on one configuration's ramp, from its numbers."""
    steps = configuration["steps"]
    title = configuration["title"]
    command = configuration["command"]
    if not steps:
        return f"**{title}** (`{command}`): no measurement."
    found = configuration.get("knee")
    ceiling = configuration.get("model_ceiling_rps")
    first, last = steps[0], steps[-1]
    errors = sum(s["errors"] for s in steps)
    parts = [f"**{title}** (`{command}`):"]
    if ceiling is not None and found is not None:
        slots = configuration["workers"] * configuration["threads"]
        parts.append(
            f"levelled off at {found['ceiling_rps']:.1f} req/s from {found['users']} users on; "
            f"the model says {ceiling:.1f} ({slots} request{'s' if slots != 1 else ''} at a "
            f"time, {service_time:g} s each)."
        )
        parts.append(
            f"Past that, latency grew with the queue: p50 {_seconds(first['p50_ms'])} at "
            f"{_users(first['users'])}, "
            f"{_seconds(last['p50_ms'])} at {last['users']} users "
            f"(model: {_seconds(last['predicted_latency_ms'])})."
        )
    elif ceiling is not None:
        parts.append(
            f"reached {last['rps']:.1f} req/s at {last['users']} users without levelling off; "
            f"the model puts the ceiling at {ceiling:.1f} req/s, beyond this ramp."
        )
    elif found is None:
        parts.append(
            f"throughput kept growing with the users, {first['rps']:.1f} req/s at "
            f"{_users(first['users'])} to {last['rps']:.1f} req/s at {_users(last['users'])} "
            f"(model: {last['predicted_rps']:.0f}); p50 latency stayed near the "
            f"{service_time:g} s wait ({_seconds(last['p50_ms'])} at {last['users']} users)."
        )
    else:
        parts.append(
            f"grew to {found['ceiling_rps']:.1f} req/s and levelled off from {found['users']} "
            f"users on, below the model's {last['predicted_rps']:.0f}: something other than "
            f"the wait (the CPU, the client) became the limit."
        )
    if errors:
        parts.append(f"{errors:,} request{'' if errors == 1 else 's'} failed along the way.")
    return " ".join(parts)


def describe_open(configuration: dict[str, Any]) -> list[str]:
    """Sentences on the fixed-rate runs: did the answers keep pace?"""
    lines = []
    for run in configuration.get("open", []):
        ceiling = run.get("model_ceiling_rps")
        versus = f" (the model's ceiling: {ceiling:g})" if ceiling else ""
        if run["kept_up"]:
            verdict = (f"kept up: p50 {_seconds(run['p50_ms'])}, p99 "
                       f"{_seconds(run['p99_ms'])}")
        else:
            verdict = (f"fell behind: the queue grew while the requests kept coming, "
                       f"p50 {_seconds(run['p50_ms'])}, p99 {_seconds(run['p99_ms'])}")
        text = (f"At a fixed {run['rate']:g} requests/s{versus}, {configuration['title']} "
                f"{verdict}, counted from when each request was due")
        if run.get("unfinished"):
            text += f"; {run['unfinished']} were still unanswered when the run gave up"
        lines.append(text + ".")
    return lines


def summary_markdown(results: dict[str, Any]) -> str:
    """summary.md: what the run shows, in a few paragraphs of plain words."""
    service = results["service_time_s"]
    lines = [
        "# twincorn lab: blocking WSGI against async ASGI",
        "",
        f"Each request of the slow apps waits {service:g} s (a database, an API). "
        "Users send requests one after the other with no pause; the number of users "
        "grows step by step.",
        "",
    ]
    for configuration in results["configurations"]:
        lines += [describe(configuration, service), ""]
    open_lines = [x for c in results["configurations"] for x in describe_open(c)]
    if open_lines:
        lines += ["## At a fixed rate (open model)", ""]
        lines += [f"- {x}" for x in open_lines]
        lines += [
            "",
            "With users that wait for each answer (the ramps above), a saturated "
            "server slows its own load down and latency levels off at users / "
            "throughput. Requests arriving on a schedule do not wait: past the "
            "ceiling the queue, and the latency, grow for as long as the run lasts.",
            "",
        ]
    hello = results.get("hello", [])
    if hello:
        lines += ["## The hello apps (no wait)", ""]
        for row in hello:
            best = max(row["steps"], key=lambda s: s["rps"]) if row["steps"] else None
            if best:
                lines.append(
                    f"- {row['title']}: up to {best['rps']:,.0f} req/s "
                    f"(p50 {best['p50_ms']:.2f} ms at {best['users']} users)."
                )
        lines.append("")
    lines += [
        "## The lesson",
        "",
        "A blocking app is served as many requests at a time as its server has "
        "workers x threads: beyond that, more users only make a longer queue. "
        "An async app awaiting its I/O is served as many at a time as there are "
        "users, on a single worker.",
        "",
    ]
    return "\n".join(lines)


def _users(n: int) -> str:
    return f"{n} user{'s' if n != 1 else ''}"


def _seconds(ms: float) -> str:
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.0f} ms"
