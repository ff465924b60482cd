"""The long fuzz run (`make fuzz`): every target, over all cores.

    python -m fuzz.run --inputs 10000000 --seed 1
    python -m fuzz.run --replay fuzz/findings/NAME.bin

The inputs are shared out among worker processes. Each input is made from
its own seeded Random (seed, worker, index), so any input can be made again;
its target is drawn by the targets' weights. Part of each worker's share
comes from hypothesis instead (a drawn input and mutants of it), and when
atheris is installed a coverage-guided phase follows (fuzz/atheris_main.py).
Findings are written as reproducers under fuzz/findings/ as they come, and
the summary at the end: inputs, inputs/s, findings, known differences from
h11. The exit status is 1 if there was any finding.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

from fuzz import atheris_phase
from fuzz.finding import Finding
from fuzz.record import FINDINGS, Findings, target_of
from fuzz.targets import DIFFERENCES, TARGETS, Target

#: An input that runs longer than this is a hang (checked by SIGALRM).
HANG = 5.0
REPORT_EVERY = 2000


class Hang(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang()


def feed(target: Target, data: bytes, findings: Findings) -> None:
    """One input into one target, with a time limit; findings kept."""
    start = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, HANG)
    try:
        target.check(data)
    except Finding as finding:
        findings.add(target.name, finding, data)
    except Hang:
        findings.add(target.name, Finding("hang", f"over {HANG:.0f} s"), data)
        return
    except Exception as exc:  # the oracles turn exceptions into findings: not expected
        findings.add(target.name, Finding("harness", f"{type(exc).__name__}: {exc}"), data)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if time.monotonic() - start > HANG:
        # The alarm's exception is lost when it goes off inside a garbage
        # collector's callback (hypothesis has one): the clock still tells.
        findings.add(target.name, Finding("hang", f"over {HANG:.0f} s (by the clock)"), data)


def worker(number: int, args: argparse.Namespace, share: int, queue: Any) -> None:
    import random

    from fuzz.source import RandomSource

    signal.signal(signal.SIGALRM, _alarm)
    findings = Findings(Path(args.findings))
    targets = [TARGETS[name] for name in args.targets]
    weights = [t.weight for t in targets]
    counts: Counter[str] = Counter()
    done = 0
    hypothesis_share = min(share, args.hypothesis)
    if hypothesis_share:
        from fuzz.hypothesis_phase import run_hypothesis

        def fed(target: Target, data: bytes) -> None:
            nonlocal done
            feed(target, data, findings)
            counts[f"hypothesis {target.name}"] += 1
            done += 1
            if done % REPORT_EVERY == 0:
                queue.put(("progress", number, done))

        run_hypothesis(targets, hypothesis_share, args.seed * 1000 + number, fed)
    base = (args.seed * 256 + number) << 32
    for index in range(share - done):
        rng = random.Random(base | index)
        target = rng.choices(targets, weights)[0]
        feed(target, target.make(RandomSource(rng)), findings)
        counts[target.name] += 1
        if (index + 1) % REPORT_EVERY == 0:
            queue.put(("progress", number, done + index + 1))
    queue.put(("done", number, share, dict(counts), list(findings.kept.values()),
               dict(DIFFERENCES)))


def run(args: argparse.Namespace) -> int:
    atheris_runs = min(atheris_phase.budget(args), args.inputs // 2)
    inputs = args.inputs - atheris_runs
    shares = [inputs // args.processes + (i < inputs % args.processes)
              for i in range(args.processes)]
    print(f"fuzz: {inputs:,} inputs over {args.processes} processes, seed {args.seed}, "
          f"targets {', '.join(args.targets)}; then {atheris_runs:,} atheris runs", flush=True)
    start = time.monotonic()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    procs = [context.Process(target=worker, args=(i, args, shares[i], queue))
             for i in range(args.processes)]
    for p in procs:
        p.start()
    summary = _collect(queue, procs, start, inputs)
    for p in procs:
        p.join()
    summary["elapsed"] = time.monotonic() - start
    if atheris_runs:
        atheris_phase.run(args, atheris_runs, summary)
    return _report(args, summary, time.monotonic() - start)


def _collect(queue: Any, procs: list[Any], start: float, total: int) -> dict[str, Any]:
    progress = [0] * len(procs)
    counts: Counter[str] = Counter()
    differences: Counter[str] = Counter()
    findings = Findings()
    finished = 0
    last = 0.0
    while finished < len(procs):
        message = queue.get()
        if message[0] == "progress":
            progress[message[1]] = message[2]
        else:
            _, number, done, worker_counts, kept, diffs = message
            progress[number] = done
            counts.update(worker_counts)
            differences.update(diffs)
            findings.merge(kept)
            finished += 1
        now = time.monotonic()
        if now - last >= 10 or finished == len(procs):
            last = now
            done = sum(progress)
            rate = done / max(now - start, 1e-9)
            print(f"  {done:>12,} / {total:,} inputs  {rate:8,.0f}/s  "
                  f"{now - start:7.0f} s  findings: {len(findings.kept)}", flush=True)
    return {"counts": counts, "differences": differences, "findings": findings}


def _report(args: argparse.Namespace, summary: dict[str, Any], elapsed: float) -> int:
    counts: Counter[str] = summary["counts"]
    findings: Findings = summary["findings"]
    total = sum(counts.values())
    lines = [
        f"inputs: {total:,} in {elapsed:,.0f} s ({total / elapsed:,.0f}/s overall)",
        *(f"  {name}: {n:,}" for name, n in sorted(counts.items())),
        f"findings: {len(findings.kept)}",
        *(f"  [{k.count}x] {k.target}: {k.signature}  ->  {k.stem}.bin"
          for k in sorted(findings.kept.values(), key=lambda k: -k.count)),
        "known differences from h11 (fuzz/known.py, docs/http.md):",
        *(f"  {name}: {n:,}" for name, n in summary["differences"].most_common()),
    ]
    print("\n".join(lines))
    out = Path(args.findings)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "seed": args.seed, "processes": args.processes, "elapsed": elapsed,
        "inputs": total, "counts": dict(counts),
        "random_phase_seconds": summary.get("elapsed"),
        "atheris": summary.get("atheris", {}),
        "differences": dict(summary["differences"]),
        "findings": [{"target": k.target, "signature": k.signature, "count": k.count,
                      "reproducer": f"{k.stem}.bin"} for k in findings.kept.values()],
    }
    (out / f"summary-seed{args.seed}.json").write_text(json.dumps(record, indent=1))
    return 1 if findings.kept else 0


def replay(path: Path) -> int:
    target = TARGETS[target_of(path)]
    try:
        target.check(path.read_bytes())
    except Finding as finding:
        print(f"{target.name}: {finding}")
        return 1
    print(f"{target.name}: no finding")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.split("\n")[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="in all, atheris's included")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--targets", type=lambda s: s.split(","), default=list(TARGETS))
    parser.add_argument("--hypothesis", type=int, default=0,
                        help="inputs per process from hypothesis (drawn inputs and mutants)")
    parser.add_argument("--atheris", type=int, default=0,
                        help="atheris runs in all, at most half the inputs (0: none; "
                             "skipped if atheris is missing)")
    parser.add_argument("--findings", default=str(FINDINGS))
    parser.add_argument("--replay", type=Path, help="run one reproducer and say what it finds")
    args = parser.parse_args(argv)
    if args.replay:
        return replay(args.replay)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
