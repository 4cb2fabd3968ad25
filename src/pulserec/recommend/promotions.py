"""Promotions: items chosen by a filter expression take a share of each slate, or have their
scores multiplied by a boost, between optional start and end times.

A share promotion reserves `round(share * n)` slots (half up; several promotions take theirs in
name order, never more than the slate). Its items are the promoted ones the personal score
ranks highest (items the model gives no score are ordered by trending, after those it does),
and the slots are spread evenly over the slate (for 2 of 10: positions 3 and 8), the organic
items filling the rest in their order. A boost multiplies the personal score of the items
its filter selects before the slate is cut. Either way a promoted item's reason is
"promoted" and `promotion` names the promotion (impressions and clicks are counted per
promotion: store/feedback.py)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pulserec.recommend.top_n import top_n


@dataclass(frozen=True)
class Promotion:
    name: str
    filter: str
    share: float | None = None
    boost: float | None = None
    starts: float | None = None
    ends: float | None = None

    def running(self, at: float) -> bool:
        return (self.starts is None or self.starts <= at) and (self.ends is None or at < self.ends)


@dataclass
class Slate:
    """The picks in slate order, and per pick the promotion that placed or boosted it."""

    picks: np.ndarray
    promoted: list[str | None]


def slots(share: float, n: int) -> int:
    """How many of n slots a share takes: rounded half up (0.2 of 10 is 2, of 3 is 1, of 2 is 0)."""
    return min(n, int(math.floor(share * n + 0.5)))


def positions(k: int, size: int) -> list[int]:
    """k slots spread evenly over a slate of `size`: the middle of each k-th part."""
    return [min(size - 1, int((j + 0.5) * size / k)) for j in range(k)]


def compose(scores: np.ndarray, mask: np.ndarray, n: int, promotions: list[tuple[Promotion, np.ndarray]],
            fallback: np.ndarray | None, pick: Callable[[np.ndarray, int, np.ndarray], np.ndarray]) -> tuple[Slate, np.ndarray]:
    """The slate of n under `promotions` (each with the mask of items its filter selects);
    `pick(scores, k, mask)` cuts the organic part (it applies the diversity rules). Returns the
    slate and the (boosted) scores it was cut from."""
    boosted = scores.copy()
    boosted_by = np.full(len(scores), -1, dtype=np.int64)
    for i, (promo, selected) in enumerate(promotions):
        if promo.boost is not None:
            hit = selected & mask
            boosted[hit] *= promo.boost
            boosted_by[hit & (boosted_by < 0)] = i
    reserved: list[tuple[int, str]] = []
    taken = np.zeros(len(scores), dtype=bool)
    order = _promoted_order(boosted, fallback)
    for promo, selected in sorted((p for p in promotions if p[0].share is not None), key=lambda p: p[0].name):
        want = min(slots(promo.share or 0.0, n), n - len(reserved))
        if want <= 0:
            continue
        chosen = top_n(order, want, selected & mask & ~taken & (order > 0))
        taken[chosen] = True
        reserved += [(int(i), promo.name) for i in chosen]
    organic = pick(boosted, n - len(reserved), mask & ~taken & (boosted > 0))
    labels = [promotions[b][0].name if b >= 0 else None for b in boosted_by[organic].tolist()]
    return _interleave(organic, labels, reserved), boosted


def _promoted_order(scores: np.ndarray, fallback: np.ndarray | None) -> np.ndarray:
    """Personal score first ((1, 2]); items without one by trending ((0, 1]), then the rest (0)."""
    top = float(scores.max()) if len(scores) else 0.0
    personal = np.where(scores > 0, 1.0 + scores / top, 0.0) if top > 0 else np.zeros(len(scores))
    if fallback is None or not len(fallback) or float(fallback.max()) <= 0:
        return np.where(scores > 0, personal, 1e-12)  # every promoted item may still be shown
    trend = fallback[: len(scores)] / float(fallback.max())
    return np.where(scores > 0, personal, np.maximum(trend, 1e-12))


def _interleave(organic: np.ndarray, labels: list[str | None], reserved: list[tuple[int, str]]) -> Slate:
    size = len(organic) + len(reserved)
    if not reserved:
        return Slate(organic, labels)
    at = set(positions(len(reserved), size))
    if len(at) < len(reserved):  # positions collide only for tiny slates: fill from the front
        at = set(range(len(reserved)))
    picks: list[int] = []
    promoted: list[str | None] = []
    promos, rest = iter(reserved), iter(zip(organic.tolist(), labels))
    for slot in range(size):
        item, label = next(promos) if slot in at else next(rest)
        picks.append(item)
        promoted.append(label)
    return Slate(np.asarray(picks, dtype=np.int64), promoted)
