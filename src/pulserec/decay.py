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

    def advance(self, ts: float) -> None:
        """Move the clock to `ts` (if later), rescaling once when the landmark moves."""
        landmark = moved_landmark(self.landmark, ts, self.rate)
        if self.landmark is not None and landmark != self.landmark:
            self.values *= rescale_factor(self.landmark, landmark, self.rate)
        self.landmark = landmark
        if ts > self.now:
            self.now = ts

    def add(self, idx: int, weight: float, ts: float) -> None:
        self.advance(ts)
        self.ensure(idx + 1)
        self.values[idx] += weight * math.exp((ts - self.landmark) * self.rate)  # type: ignore[operator]

    def add_many(self, idx: np.ndarray, weights: np.ndarray, ts: np.ndarray, sign: float = 1.0) -> None:
        if len(idx) == 0:
            return
        self.advance(float(np.max(ts)))
        self.ensure(int(np.max(idx)) + 1)
        contributions = forward_weights(weights, ts, self.landmark, self.rate)  # type: ignore[arg-type]
        self.values += sign * np.bincount(idx, weights=contributions, minlength=len(self.values))
        if sign < 0:
            np.maximum(self.values, 0.0, out=self.values)

    def decayed(self, n: int, at: float | None = None) -> np.ndarray:
        """Values as of time `at` (default: the latest event time seen) for indices < n."""
        self.ensure(n)
        if self.landmark is None:
            return np.zeros(n, dtype=np.float64)
        at = self.now if at is None else at
        return self.values[:n] * math.exp(-(at - self.landmark) * self.rate)


def moved_landmark(landmark: float | None, ts: float, rate: float) -> float:
    """The landmark to use once time `ts` has been seen: `ts` itself when there is none yet or
    when exponents relative to the current one would grow past `_MAX_EXPONENT`."""
    if landmark is None or (ts - landmark) * rate > _MAX_EXPONENT:
        return ts
    return landmark


def rescale_factor(old_landmark: float, new_landmark: float, rate: float) -> float:
    """Multiply stored values by this when the landmark moves from `old` to `new`."""
    return math.exp(-(new_landmark - old_landmark) * rate)


def forward_weights(weights: np.ndarray, ts: np.ndarray, landmark: float, rate: float) -> np.ndarray:
    """Stored contribution `w * exp(rate * (t - landmark))` of each (weight, time)."""
    return np.asarray(weights, dtype=np.float64) * np.exp((np.asarray(ts, dtype=np.float64) - landmark) * rate)


def read_clock(newest_event: float, wall: float, live_window: float) -> float:
    """The time at which decayed scores (trending, interests, dormancy) are read.

    Live traffic, whose newest event is at most `live_window` older than the wall clock: the
    wall clock, so scores keep fading while no events arrive. An imported or replayed history
    that ended earlier: its newest event time, the data's own "now" (read at the wall clock, a
    history that ended years ago is all zeros). The first live event after such an import moves
    the clock to the wall clock, and the history then counts at its real age."""
    if not math.isfinite(newest_event) or newest_event >= wall - live_window:
        return max(wall, newest_event) if math.isfinite(newest_event) else wall
    return newest_event
