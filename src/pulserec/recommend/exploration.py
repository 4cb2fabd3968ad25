"""Exploration: items with little exposure get slots through Thompson sampling.

Exposure is counted from the app's store: an impression (`POST /impressions`) shows each of its
items once; a click is an engagement event carrying that impression's `recommendation_id` on
one of its items (each (recommendation, item) once; an event whose impression is not stored
yet is not counted). `Exposure` reads what was added since it last looked (by rowid and seq,
at most every `REFRESH_S`), so several workers over one store count the same, and it rebuilds
from scratch after a user is forgotten (the counts are derived from their impressions).

A request with `exploration = e` gives `round(e * n)` slots (half up) to candidates that pass
its filters and have fewer than `exploration_max_impressions` impressions: each draws
theta ~ Beta(1 + clicks, 1 + impressions - clicks) and the highest draws win, so a never-shown
item has a uniform prior and an item shown often without clicks fades out. At most `POOL`
candidates are drawn for (a uniform sample of them beyond that). Explored items take slots
spread over the slate like promotions, the reason says so, and their impressions and clicks are
reported under `exploration` in GET /feedback."""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict

import numpy as np

from pulserec.online.base import ItemCatalog
from pulserec.recommend.promotions import positions, slots
from pulserec.store.feedback import FeedbackStore

#: Seconds between reads of new impressions and clicks from the store.
REFRESH_S = 1.0
#: Candidates drawn for per request (a uniform sample beyond this: bounded work at 1M items).
POOL = 2_000
#: (recommendation, item) pairs remembered so that a second click on one counts once.
CLICKED_MEMORY = 200_000


class Exposure:
    """Impressions and clicks per item id, read incrementally from the feedback store."""

    def __init__(self, feedback: FeedbackStore) -> None:
        self.feedback = feedback
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.impressions: dict[str, int] = {}
        self.clicks: dict[str, int] = {}
        self._rowid = 0
        self._seq = 0
        self._shown: OrderedDict[str, frozenset[str]] = OrderedDict()  # rec_id -> items shown
        self._clicked: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._forgotten = self.feedback.forgotten
        self._read_at = 0.0
        self._changed: set[str] = set()  # item ids whose counts changed since `arrays` last ran
        self._aligned: tuple[int, np.ndarray, np.ndarray] | None = None  # (id of the catalogue, shown, clicked)

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if not force and now - self._read_at < REFRESH_S:
                return
            if self.feedback.forgotten != self._forgotten:
                self._reset()
            self._read_at = now
            for rowid, rec_id, items in self.feedback.impressions_after(self._rowid):
                shown = frozenset(json.loads(items))
                for item in shown:
                    self.impressions[item] = self.impressions.get(item, 0) + 1
                self._changed |= shown
                self._shown[rec_id] = shown
                self._rowid = rowid
            while len(self._shown) > CLICKED_MEMORY:
                self._shown.popitem(last=False)
            for seq, rec_id, item in self.feedback.clicks_after(self._seq):
                self._seq = seq
                if item in self._shown.get(rec_id, ()) and (rec_id, item) not in self._clicked:
                    self._clicked[(rec_id, item)] = None
                    self.clicks[item] = self.clicks.get(item, 0) + 1
                    self._changed.add(item)
            while len(self._clicked) > CLICKED_MEMORY:
                self._clicked.popitem(last=False)

    def arrays(self, catalog: ItemCatalog) -> tuple[np.ndarray, np.ndarray]:
        """(impressions, clicks) aligned with the catalogue's item indices: kept between requests
        and updated for the items whose counts changed (a rebuild for another catalogue)."""
        self.refresh()
        n = len(catalog)
        with self._lock:
            aligned = self._aligned
            if aligned is None or aligned[0] != id(catalog) or len(aligned[1]) > n:
                shown, clicked = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
                changed = set(self.impressions) | set(self.clicks)
            else:
                _, shown, clicked = aligned
                if len(shown) < n:
                    shown = np.concatenate([shown, np.zeros(n - len(shown), dtype=np.int64)])
                    clicked = np.concatenate([clicked, np.zeros(n - len(clicked), dtype=np.int64)])
                changed = self._changed
            index = catalog.item_ids
            unplaced = set()  # ids the catalogue does not know (yet): placed once it does
            for item in changed:
                idx = index.get(item)
                if idx is not None and idx < n:
                    shown[idx], clicked[idx] = self.impressions.get(item, 0), self.clicks.get(item, 0)
                else:
                    unplaced.add(item)
            self._changed = unplaced
            self._aligned = (id(catalog), shown, clicked)
            return shown, clicked


def explore(picks: np.ndarray, labels: list[str | None], mask: np.ndarray, n: int, share: float,
            shown: np.ndarray, clicked: np.ndarray, max_impressions: int,
            rng: np.random.Generator) -> tuple[np.ndarray, list[str | None], set[int]]:
    """`picks` (with their promotion labels) with round(share * n) organic slots given to
    sampled low-exposure candidates; returns the picks, labels and the explored items."""
    want = slots(share, n)
    if want <= 0:
        return picks, labels, set()
    candidates = mask.copy()
    candidates[picks] = False
    candidates &= shown < max_impressions
    pool = np.flatnonzero(candidates)
    if len(pool) == 0:
        return picks, labels, set()
    if len(pool) > POOL:
        pool = rng.choice(pool, POOL, replace=False)
    theta = rng.beta(1.0 + clicked[pool], 1.0 + np.maximum(shown[pool] - clicked[pool], 0))
    chosen = pool[np.argsort(-theta, kind="stable")[:want]].tolist()
    labels = labels or [None] * len(picks)
    excess = len(picks) + len(chosen) - n  # the slate stays n long: the last organic picks make room
    organic = [i for i, label in enumerate(labels) if label is None]
    drop = set(organic[len(organic) - min(excess, len(organic)):]) if excess > 0 else set()
    if excess > len(organic):
        chosen = chosen[: len(chosen) - (excess - len(organic))]
    base = [(p, label) for i, (p, label) in enumerate(zip(picks.tolist(), labels)) if i not in drop]
    size = len(base) + len(chosen)
    at = set(positions(len(chosen), size)) if chosen else set()
    if len(at) < len(chosen):  # tiny slates: the explored items go last
        at = set(range(size - len(chosen), size))
    explored, rest = iter(chosen), iter(base)
    out = [(next(explored), None) if slot in at else next(rest) for slot in range(size)]
    return np.asarray([p for p, _ in out], dtype=np.int64), [label for _, label in out], set(chosen)
