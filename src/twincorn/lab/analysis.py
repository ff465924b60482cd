"""Reading the measurements: where each configuration saturates, how that
compares with the model, and the summary in words.

Everything here works on the plain dictionaries of results.json, so that a
saved run can be analysed again (`twincorn lab --analyse results.json`).
"""

from __future__ import annotations

import datetime
import enum
import statistics
from dataclasses import dataclass
from typing import Any

from twincorn.lab.cpu import SATURATED

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


TITLE = "twincorn lab: blocking WSGI against async ASGI"


def run_line(results: dict[str, Any]) -> str:
    """'Run of 3 December 2026, 07:40 UTC, 1 min 32 s (--quick), on 2 cores.'"""
    cpus = (results.get("machine") or {}).get("cpus")
    return (f"Run of {run_when(results['started'], results['duration_s'])}"
            f"{' (--quick)' if results.get('quick') else ''}"
            f"{f', on {cpus} cores' if cpus else ''}.")


def summary_markdown(results: dict[str, Any]) -> str:
    """summary.md: what the run shows, in a few paragraphs of plain words."""
    return f"# {TITLE}\n\n{run_line(results)}\n\n{summary_body(results)}"


def summary_body(results: dict[str, Any]) -> str:
    """The summary without its title: its sections, one after the other."""
    return "\n".join(line for part in summary_parts(results).values() for line in part)


def summary_parts(results: dict[str, Any]) -> dict[str, list[str]]:
    """The summary's sections as markdown lines, by name ("ramps", "open",
    "hello", "lesson", "websockets"; an empty one is left out): index.html
    puts its charts between them."""
    parts = {"ramps": ramps_markdown(results), "open": open_markdown(results),
             "hello": hello_markdown(results.get("hello", [])),
             "lesson": _LESSON if results["configurations"] else [],
             "websockets": websockets_markdown(results.get("websockets"))}
    return {name: lines for name, lines in parts.items() if lines}


def ramps_markdown(results: dict[str, Any]) -> list[str]:
    if not results["configurations"]:
        return []
    service = results["service_time_s"]
    lines = [
        f"Each request of the slow apps waits {service:g} s (a database, an API). "
        "Users send requests one after the other with no pause; the number of users "
        "grows step by step.",
        "",
    ]
    for configuration in results["configurations"]:
        lines += [describe(configuration, service), ""]
    return lines


def open_markdown(results: dict[str, Any]) -> list[str]:
    open_lines = [x for c in results["configurations"] for x in describe_open(c)]
    if not open_lines:
        return []
    return [
        "## At a fixed rate (open model)", "",
        *[f"- {x}" for x in open_lines],
        "",
        "With users that wait for each answer (the ramps above), a saturated "
        "server slows its own load down and latency levels off at users / "
        "throughput. Requests arriving on a schedule do not wait: past the "
        "ceiling the queue, and the latency, grow for as long as the run lasts.",
        "",
    ]


_LESSON = [
    "## The lesson",
    "",
    "A blocking app is served as many requests at a time as its server has "
    "workers x threads: beyond that, more users only make a longer queue. "
    "An async app awaiting its I/O is served as many at a time as there are "
    "users, on a single worker.",
    "",
]


class Bound(enum.Enum):
    """What ran out first in a run with no wait."""

    LOAD_GENERATOR = "the load generator"
    MACHINE = "the machine's CPU"
    SERVER = "the server's CPU"
    ROUND_TRIPS = "the round trips"


#: The limits that are not the server's, as the hello section names them.
_OUTSIDE = {
    Bound.LOAD_GENERATOR: "the load generator (one process: one core at most)",
    Bound.MACHINE: "the machine's CPU, shared by the load generator and the server",
}


@dataclass(frozen=True)
class Limit:
    """What limited one run, and the sentence that says so."""

    bound: Bound
    text: str


def cpu_limit(step: dict[str, Any], workers: int) -> Limit | None:
    """What limited a step, from its CPU shares (cpu.py); None for a step
    measured without them (a results.json from an older lab)."""
    client = step.get("load_generator_cpu")
    if client is None:
        return None
    server, machine, cores = step.get("server_cpu"), step.get("machine_cpu"), step.get("cores")
    server_part = "" if server is None else f", the server's processes {_pct(server)}"
    if client >= SATURATED:
        shared = f", on a machine of {cores} cores shared with the server" if cores else ""
        return Limit(Bound.LOAD_GENERATOR, f"limited by the load generator (one process at "
                                           f"{_pct(client)} of a core{shared})")
    if machine is not None and cores and machine >= SATURATED:
        return Limit(Bound.MACHINE, (
            f"limited by the machine's CPU: its {_count(cores, 'core')} were {_pct(machine)} "
            f"busy (the load generator, one process, used {_pct(client)} of a core"
            f"{server_part}, other programs and the kernel the rest)"))
    if server is not None and server >= SATURATED * min(workers, cores or workers):
        return Limit(Bound.SERVER, f"limited by the server's CPU: its "
                                   f"{_count(workers, 'worker')} used {_pct(server)} of a core")
    return Limit(Bound.ROUND_TRIPS, f"no CPU was saturated (the load generator used "
                                    f"{_pct(client)} of a core{server_part}): each user's "
                                    f"round trips were the limit")


def hello_markdown(hello: list[dict[str, Any]]) -> list[str]:
    """The hello apps' section: each row's best step, with what limited it."""
    if not hello:
        return []
    lines = ["## The hello apps (no wait)", ""]
    bounds = set()
    for row in hello:
        best = max(row["steps"], key=lambda s: s["rps"]) if row["steps"] else None
        if best is None:
            continue
        limit = cpu_limit(best, row.get("workers", 1))
        if limit is not None:
            bounds.add(limit.bound)
        lines.append(
            f"- {row['title']}: up to {best['rps']:,.0f} req/s "
            f"(p50 {best['p50_ms']:.2f} ms at {best['users']} users)"
            + (f"; {limit.text}." if limit else ".")
        )
    lines.append("")
    outside = [_OUTSIDE[b] for b in Bound if b in bounds and b in _OUTSIDE]
    if outside:
        lines += [
            f"With no wait, a run measures whatever runs out first, and here that was "
            f"{' and '.join(outside)}, not the interface: these rows do not say that "
            "ASGI, or WSGI, is faster. To compare servers "
            "on a hello app, give the load generator cores of its own "
            "(`twincorn load --processes N` on another machine).",
            "",
        ]
    return lines


#: Other programs busy on this many cores' worth during the broadcasts:
#: said, as the times then depend on them too.
OTHERS_BUSY = 0.25

_MEMORY_KINDS = {
    "USS": "USS, the pages of its processes that are theirs alone",
    "RSS": "RSS, as /proc gives no USS here",
}


def websockets_markdown(part: dict[str, Any] | None) -> list[str]:
    """The WebSocket part's section: memory per idle socket and broadcast
    latency, per server, then what they teach (None: the part did not run)."""
    if not part:
        return []
    ladder = part["sockets"]
    measured = [c for c in part["configurations"] if c["steps"]]
    kind = next((c["memory"] for c in measured if c.get("memory")), "USS")
    lines = [
        "## Holding WebSockets", "",
        f"The chat room of `{part['app'].split(':')[0].replace('.', '/')}.py` (every message "
        f"goes to every member) on one server process. The lab opened "
        f"{_and([f'{n:,}' for n in ladder])} idle WebSockets to it, one rung after the other, "
        f"and read the server's memory before and with them open "
        f"({_MEMORY_KINDS.get(kind, kind)}; the kernel's socket buffers are in no process's "
        f"memory). Then one more client sent {part['message_bytes']}-byte messages to the "
        "room, and each one's arrival at every socket was timed.",
        "",
    ]
    if part.get("capped"):
        lines += [f"The ladder was cut short: {part['capped']}.", ""]
    timeout = part.get("broadcast_timeout_s", 10.0)
    lines += [describe_websockets(c, timeout) for c in part["configurations"]]
    lines.append("")
    lines += websockets_lesson(measured)
    return lines


def describe_websockets(configuration: dict[str, Any], timeout_s: float) -> str:
    """A bullet on one server's sockets: memory each, broadcast latency
    (`timeout_s`: how long a broadcast was waited for)."""
    head = f"- **{configuration['title']}** (`{configuration['command']}`)"
    steps = configuration["steps"]
    if not steps:
        return f"{head}: no measurement ({configuration.get('problem') or 'nothing ran'})."
    top = steps[-1]
    growth = (top["memory_kib"] - configuration["before_kib"]) / 1024
    lower = "; ".join(f"{s['opened']:,}: {s['per_socket_kib']:.1f} KiB"
                      for s in reversed(steps[:-1]) if s["per_socket_kib"] is not None)
    parts = [f"{head}: {top['opened']:,} idle sockets took {growth:.1f} MiB more, "
             f"{top['per_socket_kib']:.1f} KiB each" + (f" ({lower})." if lower else ".")]
    if top["received"]:
        first = steps[0]
        whom = (f"all {top['opened']:,}" if top["received"] == top["deliveries"]
                else "the sockets that heard it")
        parts.append(
            f"A broadcast reached {whom} in {_ms(top['last_ms'])} (over "
            f"{top['broadcasts']} broadcasts: p50 {_ms(top['p50_ms'])}, p99 "
            f"{_ms(top['p99_ms'])}, max {_ms(top['max_ms'])}"
            + (f"; {first['opened']:,} sockets: {_ms(first['last_ms'])}"
               if first is not top and first["last_ms"] is not None else "") + ")"
            + (f", {top['server_us_per_message']:.1f} µs of the server's CPU per socket "
               "written." if top.get("server_us_per_message") else "."))
    missing = sum(s["deliveries"] - s["received"] for s in steps)
    if missing:
        every = sum(s["deliveries"] for s in steps)
        parts.append(f"{missing:,} of {every:,} deliveries did not arrive within "
                     f"{timeout_s:g} s.")
    others = max((s.get("others_cpu") or 0.0 for s in steps), default=0.0)
    if others >= OTHERS_BUSY:
        cores = next((s["cores"] for s in steps if s.get("cores")), None)
        parts.append(f"While it broadcast, other programs kept up to {others:.1f} of the "
                     f"machine's {cores} cores busy: on a quieter machine these times are "
                     "shorter.")
    client = top.get("client_cpu")
    if client is not None and client >= SATURATED:
        parts.append(f"The lab's client, one process, was busy {_pct(client)} of each "
                     "broadcast reading them: at this size its reads took about as long as "
                     "the server's writes.")
    if configuration.get("problem"):
        parts.append(f"It stopped early: {configuration['problem']}.")
    return " ".join(parts)


def websockets_lesson(measured: list[dict[str, Any]]) -> list[str]:
    """What the part teaches, in the first measured server's figures."""
    if not measured:
        return []
    c = measured[0]
    top, first = c["steps"][-1], c["steps"][0]
    lines = [
        f"One process held {top['opened']:,} idle sockets for {top['per_socket_kib']:.1f} "
        f"KiB each ({c['title']}) because an idle WebSocket is a file descriptor and a "
        "coroutine waiting in `receive()`, not a thread: a server with a thread per "
        "socket would give each its own stack, and switch between thousands of them.",
    ]
    if top is not first and top["last_ms"] and first["last_ms"]:
        lines[0] += (
            f" A broadcast costs one write per socket, so its latency grows with the "
            f"sockets: {top['opened'] / first['opened']:g} times the sockets took "
            f"{top['last_ms'] / first['last_ms']:.0f} times as long "
            f"({_ms(first['last_ms'])} for {first['opened']:,}, {_ms(top['last_ms'])} for "
            f"{top['opened']:,}).")
    return [*lines, ""]


def _and(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _ms(ms: float) -> str:
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.1f} ms"


def run_when(started: str, duration_s: float) -> str:
    """'3 December 2026, 07:40 UTC, 1 min 32 s' from results.json's ISO
    start time (any offset) and duration."""
    try:
        moment = datetime.datetime.fromisoformat(started)
    except ValueError:
        when = started
    else:
        if moment.tzinfo is not None:
            moment = moment.astimezone(datetime.UTC)
        zone = " UTC" if moment.tzinfo is not None else ""
        when = f"{moment.day} {moment:%B %Y, %H:%M}{zone}"
    return f"{when}, {duration_words(duration_s)}"


def duration_words(seconds: float) -> str:
    """95 -> '1 min 35 s', 42 -> '42 s', 3725 -> '1 h 2 min'."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


def _pct(share: float) -> str:
    return f"{share * 100:.0f}%"


def _count(n: int, noun: str) -> str:
    return f"{'one' if n == 1 else n} {noun}{'' if n == 1 else 's'}"


def _users(n: int) -> str:
    return f"{n} user{'s' if n != 1 else ''}"


def _seconds(ms: float) -> str:
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.0f} ms"
