"""hypothesis in the long run: drawn inputs, each followed by mutants of it.

Drawing through hypothesis is about a hundred times slower than through a
seeded Random, so each drawn input is also mutated `MUTANTS` times (fast),
and every one of them is fed. Findings are kept, not raised: hypothesis is
used here to explore, not to shrink (tests/test_fuzz.py shrinks).
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from fuzz.mutate import mutate
from fuzz.source import RandomSource
from fuzz.strategies import from_source
from fuzz.targets import Target

MUTANTS = 9


def run_hypothesis(
    targets: list[Target], inputs: int, seed: int, fed: Callable[[Target, bytes], None]
) -> None:
    """About `inputs` inputs (drawn ones and their mutants) through `fed`."""
    strategies = {t.name: from_source(t.make) for t in targets}
    weighted = [t for t in targets for _ in range(t.weight)]

    @hypothesis_seed(seed)
    @settings(max_examples=max(inputs // (MUTANTS + 1), 1), database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.data())
    def explore(data: st.DataObject) -> None:
        target = data.draw(st.sampled_from(weighted))
        base = data.draw(strategies[target.name])
        first = data.draw(st.integers(0, 2**32 - 1))
        fed(target, base)
        for k in range(MUTANTS):
            fed(target, mutate(RandomSource(first + k), base))

    explore()
