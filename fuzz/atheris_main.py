"""Coverage-guided fuzzing of one target with atheris (libFuzzer).

    python -m fuzz.atheris_main --target parser -- -runs=100000 corpus_dir

twincorn.http and h11 are instrumented, so libFuzzer keeps the inputs that
reach new branches of either. The target's findings are kept (as
reproducers, as in the long run) rather than raised, so that one finding
does not end the run; a summary (inputs so far, findings, known differences)
is rewritten to --summary every few hundred inputs and at each new finding,
since libFuzzer ends the process without running Python's exit handlers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["twincorn.http", "h11"]):
    from fuzz.finding import Finding
    from fuzz.record import FINDINGS, Findings
    from fuzz.targets import DIFFERENCES, TARGETS

WRITE_EVERY = 500


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m fuzz.atheris_main")
    parser.add_argument("--target", required=True, choices=sorted(TARGETS))
    parser.add_argument("--summary", type=Path, required=True)
    parser.add_argument("--findings", type=Path, default=FINDINGS)
    args, libfuzzer_args = parser.parse_known_args()
    target = TARGETS[args.target]
    findings = Findings(args.findings)
    count = 0

    def write() -> None:
        kept = [{"target": k.target, "kind": k.kind, "signature": k.signature,
                 "detail": k.detail, "data": k.data.hex(), "count": k.count}
                for k in findings.kept.values()]
        record = {"inputs": count, "findings": kept, "differences": dict(DIFFERENCES)}
        args.summary.write_text(json.dumps(record))

    def one_input(data: bytes) -> None:
        nonlocal count
        count += 1
        before = len(findings.kept)
        try:
            target.check(data)
        except Finding as finding:
            findings.add(target.name, finding, data)
        if count % WRITE_EVERY == 0 or len(findings.kept) != before:
            write()

    write()
    atheris.Setup([sys.argv[0], *[a for a in libfuzzer_args if a != "--"]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
