"""Exponential time decay helpers.

`ForwardDecay` stores each contribution as `w * exp(rate * (t - landmark))`, so adding is O(1),
old contributions never need touching, and ranking by stored value equals ranking by decayed
value. The landmark moves forward (rescaling the stored array once) to keep exponents small.
"""

from __future__ import annotations

import math

import numpy as np

LN2 = math.log(2.0)
_MAX_EXPONENT = 30.0


class ForwardDecay:
    """Decayed weights over a dense float64 array that grows with the item index."""

    __slots__ = ("rate", "landmark", "values", "now")

    def __init__(self, halflife: float) -> None:
        self.rate = LN2 / halflife
        self.landmark: float | None = None
        self.values = np.zeros(0, dtype=np.float64)
        self.now = -math.inf

    def ensure(self, n: int) -> None:
        if n > len(self.values):
            grown = np.zeros(max(n, 2 * len(self.values), 1024), dtype=np.float64)
            grown[: len(self.values)] = self.values
            self.values = grown

    def _advance(self, ts: float) -> None:
        if self.landmark is None:
            self.landmark = ts
        elif (ts - self.landmark) * self.rate > _MAX_EXPONENT:
            self.values *= math.exp(-(ts - self.landmark) * self.rate)
            self.landmark = ts
        if ts > self.now:
            self.now = ts

    def add(self, idx: int, weight: float, ts: float) -> None:
        self._advance(ts)
        self.ensure(idx + 1)
        self.values[idx] += weight * math.exp((ts - self.landmark) * self.rate)  # type: ignore[operator]

    def add_many(self, idx: np.ndarray, weights: np.ndarray, ts: np.ndarray, sign: float = 1.0) -> None:
        if len(idx) == 0:
            return
        self._advance(float(np.max(ts)))
        self.ensure(int(np.max(idx)) + 1)
        factors = np.exp((np.asarray(ts, dtype=np.float64) - self.landmark) * self.rate)
        self.values += sign * np.bincount(idx, weights=weights * factors, minlength=len(self.values))
        if sign < 0:
            np.maximum(self.values, 0.0, out=self.values)

    def decayed(self, n: int, at: float | None = None) -> np.ndarray:
        """Values as of time `at` (default: the latest event time seen) for indices < n."""
        self.ensure(n)
        if self.landmark is None:
            return np.zeros(n, dtype=np.float64)
        at = self.now if at is None else at
        return self.values[:n] * math.exp(-(at - self.landmark) * self.rate)


def decay_factor(age: float, halflife: float) -> float:
    return math.exp(-LN2 * max(age, 0.0) / halflife)
