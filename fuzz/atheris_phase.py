"""The atheris phase of the long run: fuzz/atheris_main.py, one process per
target at a time (up to --processes), its runs shared by the targets'
weights. libFuzzer's last line ("Done N runs in S second(s)") gives the
count; the findings come back in a small JSON file."""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from fuzz.corpus import seeds
from fuzz.record import Kept
from fuzz.targets import TARGETS

_DONE = re.compile(r"Done (\d+) runs in (\d+) second")


def budget(args: argparse.Namespace) -> int:
    """The atheris runs to make: none if atheris is not installed."""
    if args.atheris and importlib.util.find_spec("atheris") is None:
        print("fuzz: atheris is not installed (pip install atheris): its phase is skipped")
        return 0
    return int(args.atheris)


def run(args: argparse.Namespace, runs: int, summary: dict[str, Any]) -> None:
    targets = [TARGETS[name] for name in args.targets]
    weight = sum(t.weight for t in targets)
    jobs = [(t.name, runs * t.weight // weight) for t in targets]
    # What the rounding down left goes to the first target: the runs add
    # up to exactly `runs`, and the run's total to exactly --inputs.
    if jobs:
        jobs[0] = (jobs[0][0], jobs[0][1] + runs - sum(count for _, count in jobs))
    findings_dir = Path(args.findings)
    start = time.monotonic()
    running: list[tuple[str, subprocess.Popen[str], Path]] = []
    results: dict[str, Any] = {}
    while jobs or running:
        while jobs and len(running) < args.processes:
            name, count = jobs.pop(0)
            running.append(_start(name, count, args.seed, findings_dir))
        name, proc, out = running.pop(0)
        _, stderr = proc.communicate()
        results[name] = _result(name, stderr, out, summary)
        print(f"  atheris {name}: {results[name]['inputs']:,} runs in "
              f"{results[name]['seconds']} s", flush=True)
    summary["atheris"] = {"seconds": time.monotonic() - start, "targets": results}


def _start(
    name: str, count: int, seed: int, findings_dir: Path
) -> tuple[str, subprocess.Popen[str], Path]:
    corpus = findings_dir / "atheris-corpus" / name
    shutil.rmtree(corpus, ignore_errors=True)
    corpus.mkdir(parents=True)
    if name.startswith("parser"):
        for i, data in enumerate(seeds()):
            (corpus / f"seed{i:03d}").write_bytes(data)
    out = findings_dir / f"atheris-{name}.json"
    command = [
        sys.executable, "-m", "fuzz.atheris_main", "--target", name, "--summary", str(out),
        "--findings", str(findings_dir), "--", f"-runs={count}", f"-seed={seed}",
        "-max_len=4096" if name.startswith("parser") else "-max_len=256",
        "-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1", str(corpus),
    ]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return name, proc, out


def _result(name: str, stderr: str, out: Path, summary: dict[str, Any]) -> dict[str, Any]:
    done = _DONE.search(stderr)
    inputs, seconds = (int(done[1]), int(done[2])) if done else (0, 0)
    record = json.loads(out.read_text()) if out.exists() else {}
    summary["counts"][f"atheris {name}"] += inputs
    summary["differences"].update(Counter(record.get("differences", {})))
    summary["findings"].merge([
        Kept(k["target"], k["kind"], k["signature"], k["detail"], bytes.fromhex(k["data"]),
             k["count"])
        for k in record.get("findings", [])
    ])
    if not done:
        tail = "\n".join(stderr.splitlines()[-20:])
        print(f"  atheris {name} ended without its final line:\n{tail}", flush=True)
    return {"inputs": inputs, "seconds": seconds}
