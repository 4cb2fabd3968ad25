"""All-time popularity and time-decayed trending, by item."""

from __future__ import annotations

import numpy as np

from pulserec.decay import ForwardDecay


class Popularity:
    """Weighted event counts per item: all-time totals and a trending score with a half-life."""

    def __init__(self, trending_halflife: float) -> None:
        self.trending = ForwardDecay(trending_halflife)
        self.total = np.zeros(0, dtype=np.float64)
        self.events = np.zeros(0, dtype=np.int64)

    def _ensure(self, n: int) -> None:
        if n > len(self.total):
            cap = max(n, 2 * len(self.total), 1024)
            self.total = np.concatenate([self.total, np.zeros(cap - len(self.total))])
            self.events = np.concatenate([self.events, np.zeros(cap - len(self.events), dtype=np.int64)])

    def add(self, item: int, weight: float, ts: float) -> None:
        self._ensure(item + 1)
        self.total[item] += weight
        self.events[item] += 1
        self.trending.add(item, weight, ts)

    def add_many(self, items: np.ndarray, weights: np.ndarray, ts: np.ndarray, sign: float = 1.0) -> None:
        if len(items) == 0:
            return
        self._ensure(int(items.max()) + 1)
        n = len(self.total)
        self.total += sign * np.bincount(items, weights=weights, minlength=n)
        self.events += int(sign) * np.bincount(items, minlength=n)
        self.trending.add_many(items, weights, ts, sign)
        if sign < 0:
            np.maximum(self.total, 0.0, out=self.total)
            np.maximum(self.events, 0, out=self.events)

    def advance(self, ts: float) -> None:
        """The clock moves with an event that touches no item (a search, a page view)."""
        self.trending.advance(ts)

    def all_time(self, n: int) -> np.ndarray:
        self._ensure(n)
        return self.total[:n]

    def trending_scores(self, n: int, at: float | None = None) -> np.ndarray:
        """Trending weights read at time `at` (default: the newest event; see read_clock)."""
        return self.trending.decayed(n, at)

    @property
    def now(self) -> float:
        return self.trending.now
