"""Two-proportion z-test for CTR / conversion differences between variants."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ZTest:
    z: float
    p_value: float
    lift: float | None  # relative change of the rate vs control

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha


def two_proportion_z(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> ZTest | None:
    """Pooled two-sided z-test of rate b vs rate a (a = control). None when a side has no trials."""
    if trials_a <= 0 or trials_b <= 0:
        return None
    p_a, p_b = successes_a / trials_a, successes_b / trials_b
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    variance = pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b)
    if variance <= 0:
        return ZTest(0.0, 1.0, None if p_a == 0 else (p_b - p_a) / p_a)
    z = (p_b - p_a) / math.sqrt(variance)
    return ZTest(z, math.erfc(abs(z) / math.sqrt(2)), None if p_a == 0 else (p_b - p_a) / p_a)
