"""What a target raises when an oracle fails."""

from __future__ import annotations

import re

_NUMBERS = re.compile(r"\d+")
_QUOTED = re.compile(r"b?'[^']*'|b?\"[^\"]*\"")


class Finding(Exception):
    """An oracle failed for one input.

    `kind` names the oracle ("exception", "split", "slow", "consistency",
    "differential", "response"...), `detail` says what was seen. Findings
    with the same `signature` are one defect, reported once (with the
    shortest input that showed it).
    """

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail

    @property
    def signature(self) -> str:
        # Numbers and quoted input bytes vary from input to input of the
        # same defect: they are left out of the signature.
        text = _NUMBERS.sub("N", _QUOTED.sub("Q", self.detail))
        return f"{self.kind}: {text[:160]}"
