"""Small in-memory windows over live traffic, for the dashboard: events/s, latencies, coverage.

Prometheus keeps the cumulative series; these keep just enough recent detail to draw a live
chart without a time-series database. All are bounded and thread-safe."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import Any


class EventRate:
    """Per-second counts of ingested events by type, for the last `seconds` seconds (a ring)."""

    def __init__(self, seconds: int = 300) -> None:
        if seconds < 1:
            raise ValueError("seconds must be at least 1")
        self.seconds = seconds
        self._second = [-1] * seconds
        self._counts: list[Counter[str]] = [Counter() for _ in range(seconds)]
        self._lock = threading.Lock()

    def add(self, counts: Mapping[str, int], now: float | None = None) -> None:
        second = int(time.time() if now is None else now)
        slot = second % self.seconds
        with self._lock:
            if self._second[slot] != second:
                self._second[slot] = second
                self._counts[slot] = Counter()
            self._counts[slot].update({k: int(v) for k, v in counts.items() if v})

    def series(self, window: int = 60, now: float | None = None) -> list[dict[str, Any]]:
        """The last `window` whole seconds (oldest first): {"t": second, "total": n, "by_type": {...}}.

        The current, still-filling second is left out so the newest bar does not flicker."""
        window = max(1, min(window, self.seconds - 1))
        last = int(time.time() if now is None else now) - 1
        out = []
        with self._lock:
            for second in range(last - window + 1, last + 1):
                slot = second % self.seconds
                counts = dict(self._counts[slot]) if self._second[slot] == second else {}
                out.append({"t": second, "total": sum(counts.values()), "by_type": counts})
        return out


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100, nearest rank) of `values`, or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class RecentAnswers:
    """The last `size` recommendation answers: latency by strategy, and which items were shown."""

    def __init__(self, size: int = 2000) -> None:
        self._latency: deque[tuple[str, float]] = deque(maxlen=size)
        self._shown: deque[tuple[str, ...]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def observe_latency(self, strategy: str, seconds: float) -> None:
        with self._lock:
            self._latency.append((strategy, seconds))

    def observe_items(self, item_ids: Iterable[str]) -> None:
        with self._lock:
            self._shown.append(tuple(item_ids))

    def latency_ms(self, quantiles: tuple[int, ...] = (50, 90, 99)) -> dict[str, Any]:
        """{"count": n, "overall": {"p50": ms, ...}, "by_strategy": {name: {...}}}."""
        with self._lock:
            samples = list(self._latency)
        groups: dict[str, list[float]] = {}
        for strategy, seconds in samples:
            groups.setdefault(strategy or "default", []).append(seconds * 1000)
        summary = lambda values: {f"p{q}": _round(percentile(values, q)) for q in quantiles} | {"count": len(values)}  # noqa: E731
        return {
            "count": len(samples),
            "overall": summary([s * 1000 for _, s in samples]),
            "by_strategy": {name: summary(values) for name, values in sorted(groups.items())},
        }

    def coverage(self, catalogue_size: int) -> dict[str, Any]:
        """How much of the catalogue the recent answers showed (distinct items / catalogue size)."""
        with self._lock:
            answers = list(self._shown)
        distinct = len({item for answer in answers for item in answer})
        return {
            "answers": len(answers),
            "distinct_items": distinct,
            "catalogue_items": catalogue_size,
            "share": round(distinct / catalogue_size, 4) if catalogue_size else None,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
