"""Each user's (or anonymous session's) recent events and the set of items they have seen."""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

import numpy as np


class Touch(NamedTuple):
    """One item event in a user's history (a named tuple: built ~5x faster than a frozen
    dataclass, which counts when a bulk import or restart builds every history)."""

    item: int
    weight: float
    ts: float
    type: str


class Histories:
    def __init__(self, max_len: int) -> None:
        self.max_len = max_len
        self._recent: dict[int, deque[Touch]] = {}
        self._seen: dict[int, set[int]] = {}

    def __len__(self) -> int:
        return len(self._recent)

    def add(self, owner: int, touch: Touch) -> deque[Touch]:
        recent = self._recent.get(owner)
        if recent is None:
            recent = self._recent[owner] = deque(maxlen=self.max_len)
            self._seen[owner] = set()
        recent.append(touch)
        self._seen[owner].add(touch.item)
        return recent

    def add_many(self, owners, items, weights, ts, types) -> None:
        """Bulk `add` for a log in arrival order: only each owner's last `max_len` touches are kept."""
        for owner, items_seen, tail in owner_tails(owners, items, weights, ts, types, self.max_len):
            recent = self._recent.get(owner)
            if recent is None:
                recent = self._recent[owner] = deque(maxlen=self.max_len)
                self._seen[owner] = set()
            self._seen[owner].update(items_seen.tolist())
            recent.extend(
                Touch(i, w, t, k)
                for i, w, t, k in zip(tail[0].tolist(), tail[1].tolist(), tail[2].tolist(), tail[3])
            )

    def recent(self, owner: int | None) -> deque[Touch]:
        if owner is None:
            return deque()
        return self._recent.get(owner) or deque()

    def seen(self, owner: int | None) -> set[int]:
        if owner is None:
            return set()
        return self._seen.get(owner) or set()

    def forget(self, owner: int) -> None:
        self._recent.pop(owner, None)
        self._seen.pop(owner, None)

    def absorb(self, target: int, source: int) -> None:
        """Merge `source`'s history into `target` (a session logging in), in time order."""
        touches = sorted([*self.recent(target), *self.recent(source)], key=lambda t: t.ts)
        seen = self.seen(target) | self.seen(source)
        self.forget(source)
        self._recent[target] = deque(touches, maxlen=self.max_len)
        self._seen[target] = seen


def owner_tails(owners: np.ndarray, items: np.ndarray, weights: np.ndarray, ts: np.ndarray, types: np.ndarray, max_len: int):
    """Group a log (arrival order) by owner: yields (owner, all items touched, (items, weights,
    ts, types) of the owner's last `max_len` touches)."""
    if len(owners) == 0:
        return
    order = np.argsort(owners, kind="stable")
    owners, items, weights, ts, types = owners[order], items[order], weights[order], ts[order], types[order]
    starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
    ends = np.r_[starts[1:], len(owners)]
    for start, end in zip(starts.tolist(), ends.tolist()):
        tail = slice(max(start, end - max_len), end)
        yield int(owners[start]), items[start:end], (items[tail], weights[tail], ts[tail], types[tail])
