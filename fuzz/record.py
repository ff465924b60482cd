"""Findings kept once per signature, each with its shortest reproducer.

A reproducer is the input's bytes (`NAME.bin`) beside a note (`NAME.txt`)
saying the target, the finding and how to replay it:

    python -m fuzz.run --replay fuzz/findings/NAME.bin
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fuzz.finding import Finding

FINDINGS = Path(__file__).resolve().parent / "findings"


@dataclass
class Kept:
    target: str
    kind: str
    signature: str
    detail: str
    data: bytes
    count: int = 1

    @property
    def stem(self) -> str:
        digest = hashlib.sha1(f"{self.target} {self.signature}".encode()).hexdigest()[:10]
        return f"{self.target}-{self.kind}-{digest}"


class Findings:
    """The findings of one process; written to `directory` as they come."""

    def __init__(self, directory: Path = FINDINGS) -> None:
        self.directory = directory
        self.kept: dict[tuple[str, str], Kept] = {}

    def add(self, target: str, finding: Finding, data: bytes) -> None:
        key = (target, finding.signature)
        kept = self.kept.get(key)
        if kept is not None:
            kept.count += 1
            if len(data) >= len(kept.data):
                return
            kept.data, kept.detail = data, finding.detail
        else:
            kept = self.kept[key] = Kept(target, finding.kind, finding.signature,
                                         finding.detail, data)
        self.write(kept)

    def merge(self, other: list[Kept]) -> None:
        for k in other:
            mine = self.kept.get((k.target, k.signature))
            if mine is None:
                self.kept[(k.target, k.signature)] = k
            else:
                mine.count += k.count
                if len(k.data) < len(mine.data):
                    mine.data, mine.detail = k.data, k.detail

    def write(self, kept: Kept) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{kept.stem}.bin"
        path.write_bytes(kept.data)
        note = (
            f"target: {kept.target}\nkind: {kept.kind}\nsignature: {kept.signature}\n"
            f"detail: {kept.detail}\nreplay: python -m fuzz.run --replay {path.name}\n"
        )
        path.with_suffix(".txt").write_text(note)
        return path


def target_of(path: Path) -> str:
    """The target named in a reproducer's note (or by its file name)."""
    note = path.with_suffix(".txt")
    if note.exists():
        for line in note.read_text().splitlines():
            if line.startswith("target: "):
                return line.removeprefix("target: ")
    return path.name.split("-")[0]
