"""Each user's (or anonymous session's) recent events and the set of items they have seen."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pandas as pd

from pulserec.background import Fold, large
from pulserec.online.history_segments import FLUSH_AT, Segment, merged, segment_of, tails


class Touch(NamedTuple):
    """One item event in a user's history (a named tuple: built ~5x faster than a frozen
    dataclass, which counts when a bulk import or restart builds every history)."""

    item: int
    weight: float
    ts: float
    type: str


#: Owners' pending touches turned into columns between two pauses of a background snapshot.
PENDING_STEP = 256


class Pending(NamedTuple):
    """Pending touches at one moment: owners, their lists, and each list's length then."""

    owners: list[int]
    groups: list[list[Touch]]
    lengths: list[int]


class Histories:
    """Each owner's last `max_len` touches and every item they touched, in NumPy segments
    (see `history_segments`): ~17 bytes a kept touch and 8 a seen item, not ~180 as objects.

    `owner_counts[item]` is how many owners have touched the item (the number of seen pairs
    that name it): item-kNN's minimum support counts people, not events, so one user viewing an
    item fifty times does not make it anybody's neighbour (issue 13.1). It is kept where the
    seen pairs change (add, add_many, forget), so it stays exact through deletions and merges."""

    def __init__(self, max_len: int) -> None:
        self.max_len = max_len
        self.segments: list[Segment] = []
        self._pending: dict[int, list[Touch]] = {}  # per-event touches not in a segment yet
        self._pending_n = 0
        self._kinds: dict[tuple[str, float], int] = {}  # (type, weight) -> kind code
        self.kind_types: list[str] = []
        self.kind_weights: list[float] = []
        self._owner_counts = np.zeros(0, dtype=np.int64)
        #: A large merge of segments[_folding], segments[_folding + 1] on a helper thread
        #: (`pulserec/background.py`): reads see both until the writer puts the merge in place.
        self._fold: Fold[Segment] | None = None
        self._folding = 0

    def kind(self, event_type: str, weight: float) -> int:
        """The code of (event type, weight), given on first sight (a snapshot load replays them in order)."""
        code = self._kinds.get((event_type, weight))
        if code is None:
            if len(self.kind_types) >= 127:
                raise ValueError("more than 127 (event type, weight) pairs in one history store")
            code = self._kinds[(event_type, weight)] = len(self.kind_types)
            self.kind_types.append(event_type)
            self.kind_weights.append(weight)
        return code

    @property
    def owner_counts(self) -> np.ndarray:
        """Owners (users, sessions) who touched each item index (zeros past the last counted)."""
        return self._owner_counts

    def _count(self, items: np.ndarray, sign: int) -> None:
        if len(items) == 0:
            return
        n = int(items.max()) + 1
        if n > len(self._owner_counts):
            grown = np.zeros(max(n, 2 * len(self._owner_counts), 1024), dtype=np.int64)
            grown[: len(self._owner_counts)] = self._owner_counts
            self._owner_counts = grown
        np.add.at(self._owner_counts, items, sign)

    def has_seen(self, owner: int, item: int) -> bool:
        """Whether `owner` touched `item` before (one binary search per segment)."""
        if any(t.item == item for t in self._pending.get(owner, ())):
            return True
        return any(segment.has_seen(owner, item) for segment in self.segments)

    def add(self, owner: int, touch: Touch) -> None:
        self.kind(touch.type, touch.weight)  # known before the touch is in a segment (`segment_of_touches`)
        if not self.has_seen(owner, touch.item):
            self._count(np.array([touch.item], dtype=np.int64), 1)
        self._pending.setdefault(owner, []).append(touch)
        self._pending_n += 1
        if self._fold is not None and self._fold.ready():
            self._swap()
        if self._pending_n >= FLUSH_AT:
            self.flush()

    def add_many(self, owners, items, weights, ts, types) -> None:
        """Bulk `add` for a log in arrival order (one segment)."""
        if len(owners) == 0:
            return
        self.flush()
        pairs = np.unique((np.asarray(owners, dtype=np.int64) << 32) | np.asarray(items, dtype=np.int64))
        self._count_new_pairs(pairs)
        codes = np.empty(len(owners), dtype=np.int8)
        type_codes, type_names = pd.factorize(pd.Series(types, dtype=object))
        for t, name in enumerate(type_names.tolist()):
            rows = type_codes == t
            for weight in np.unique(weights[rows]).tolist():
                codes[rows & (weights == weight)] = self.kind(name, weight)
        self._push(segment_of(np.asarray(owners), np.asarray(items), np.asarray(ts, dtype=np.float64), codes, self.max_len,
                              pairs=pairs))

    def _count_new_pairs(self, pairs: np.ndarray) -> None:
        """Count the (owner, item) pairs of a log (sorted unique keys `owner << 32 | item`) that
        no segment holds yet (pending is flushed)."""
        known = np.zeros(len(pairs), dtype=bool)
        owners = pairs >> 32
        owners = owners[np.r_[True, owners[1:] != owners[:-1]]] if len(owners) else owners
        for segment in self.segments:
            held = segment.seen_keys_of(owners)
            if len(held):
                at = np.minimum(held.searchsorted(pairs), len(held) - 1)
                known |= held[at] == pairs
        self._count(pairs[~known] & 0xFFFFFFFF, 1)

    def recount(self) -> None:
        """Owner counts from the segments (after they were loaded from a snapshot)."""
        self._owner_counts = np.zeros(0, dtype=np.int64)
        if self.segments:
            self._count(np.unique(np.concatenate([_seen_keys(s) for s in self.segments])) & 0xFFFFFFFF, 1)

    def flush(self) -> None:
        """Turn the per-event touches into a segment."""
        if not self._pending:
            return
        pending = self.pending()
        self._pending, self._pending_n = {}, 0
        self._push(self.segment_of_pending(pending))

    def pending(self) -> Pending:
        """The per-event touches not in a segment yet, as they are now, in C-speed copies (what a
        background snapshot takes under the lock; segments are never changed in place, and a
        pending list is only appended to, so its first `length` touches stay as they are)."""
        groups = list(self._pending.values())
        return Pending(list(self._pending), groups, list(map(len, groups)))

    def segment_of_pending(self, pending: Pending, pause: Callable[[], None] = lambda: None) -> Segment:
        """A segment of the pending touches (their kinds are known: `add` registers them);
        `pause` every `PENDING_STEP` owners (a background snapshot lets writers take the GIL)."""
        owners, items, stamps, kinds = [], [], [], []
        codes = self._kinds
        for k, (owner, group, length) in enumerate(zip(*pending)):
            for touch in group[:length]:
                owners.append(owner)
                items.append(touch.item)
                stamps.append(touch.ts)
                kinds.append(codes[(touch.type, touch.weight)])
            if k % PENDING_STEP == PENDING_STEP - 1:
                pause()
        return segment_of(np.array(owners, dtype=np.int64), np.array(items, dtype=np.int64),
                          np.array(stamps, dtype=np.float64), np.array(kinds, dtype=np.int8), self.max_len)

    def _push(self, segment: Segment) -> None:
        self.segments.append(segment)
        self._cascade()

    def _cascade(self) -> None:
        """Merge size-tiered. A large merge (the 10M shop's segments hold ~12M rows: seconds)
        runs on a thread, one at a time, the segments it merges read meanwhile; merges above
        them go on inline, and one that would take them in, or another large one, waits."""
        segments = self.segments
        floor = self._folding + 2 if self._fold is not None else 0
        while len(segments) - floor >= 2 and 2 * len(segments[-1]) >= len(segments[-2]):
            if large(len(segments[-1]) + len(segments[-2])):
                if self._fold is None:
                    self._folding = len(segments) - 2
                    self._fold = Fold("history", merged, segments[-2], segments[-1], self.max_len)
                return
            newer = segments.pop()
            segments[-1] = merged(segments[-1], newer, self.max_len)

    def _swap(self) -> None:
        """Put the running merge in place of its two segments (waiting for it), then go on
        merging; a merge that failed (memory) is done here."""
        fold, at = self._fold, self._folding
        assert fold is not None
        self._fold = None
        older, newer = self.segments[at], self.segments[at + 1]
        try:
            segment = fold.result()
        except Exception:  # noqa: BLE001 - the segments are whole: merge them here
            segment = merged(older, newer, self.max_len)
        self.segments[at : at + 2] = [segment]
        self._cascade()

    def settle(self) -> None:
        """Put running merges in place, waiting for them (before segments are replaced)."""
        while self._fold is not None:
            self._swap()

    def load_segments(self, segments: list[Segment]) -> None:
        """Segments a snapshot holds, oldest first (the last may be the pending touches')."""
        for segment in segments:
            self._push(segment)
        self.settle()
        self.recount()

    def compact(self) -> Segment | None:
        """Everything in one segment (for snapshots); None when there is nothing."""
        self.flush()
        self.settle()
        while len(self.segments) > 1:
            newer = self.segments.pop()
            self.segments[-1] = merged(self.segments[-1], newer, self.max_len)
        return self.segments[0] if self.segments else None

    def recent(self, owner: int | None) -> list[Touch]:
        """The owner's last `max_len` touches, oldest first."""
        return self.latest(owner, self.max_len)

    def latest(self, owner: int | None, k: int) -> list[Touch]:
        """The owner's last `k` (at most `max_len`) touches, oldest first. Segments are read
        newest first and only until `k` are found: the per-event path pairs an event with the
        last `cooc_window` touches and would otherwise build `max_len` named tuples each time."""
        if owner is None or k <= 0:
            return []
        k = min(k, self.max_len)
        pending = self._pending.get(owner, ())
        newest = list(pending[-k:])
        chunks: list[list[Touch]] = [newest]
        need = k - len(newest)
        types, weights = self.kind_types, self.kind_weights
        for segment in reversed(self.segments):
            if need <= 0:
                break
            rows = segment.rows(owner)
            if rows.start < rows.stop:
                rows = slice(max(rows.start, rows.stop - need), rows.stop)
                kinds = segment.kind[rows].tolist()
                chunks.append(list(map(Touch, segment.item[rows].tolist(), [weights[c] for c in kinds],
                                       segment.ts[rows].tolist(), [types[c] for c in kinds])))
                need -= rows.stop - rows.start
        return [touch for chunk in reversed(chunks) for touch in chunk]

    def recent_columns(self, owner: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`recent` as columns (items, weights, times, type names), with no `Touch` per
        event: the social model reads every tie's history per request, ~85 us a MovieLens tie as
        tuples (benchmarks/behaviours.py)."""
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        if owner is not None:
            for segment in self.segments:
                rows = segment.rows(owner)
                if rows.start < rows.stop:
                    parts.append((segment.item[rows], segment.ts[rows], segment.kind[rows]))
        pending = self._pending.get(owner) if owner is not None else None
        if not parts and not pending:
            return np.empty(0, dtype=np.int64), np.empty(0), np.empty(0), np.empty(0, dtype=object)
        kinds = np.concatenate([kind for _, _, kind in parts]) if parts else np.empty(0, dtype=np.int8)
        items = [np.concatenate([item for item, _, _ in parts]).astype(np.int64)] if parts else []
        stamps = [np.concatenate([ts for _, ts, _ in parts])] if parts else []
        weights = [np.asarray(self.kind_weights, dtype=np.float64)[kinds]] if parts else []
        types = [np.asarray(self.kind_types, dtype=object)[kinds]] if parts else []
        if pending:
            items.append(np.fromiter((t.item for t in pending), dtype=np.int64, count=len(pending)))
            weights.append(np.fromiter((t.weight for t in pending), dtype=np.float64, count=len(pending)))
            stamps.append(np.fromiter((t.ts for t in pending), dtype=np.float64, count=len(pending)))
            types.append(np.array([t.type for t in pending], dtype=object))
        columns = tuple(np.concatenate(c)[-self.max_len:] for c in (items, weights, stamps, types))
        return columns[0], columns[1], columns[2], columns[3]

    def seen_items(self, owner: int | None) -> np.ndarray:
        """`seen` as sorted distinct item indices (int64), with no Python int per item: every
        recommendation reads its owner's whole history (the query's long-term items, `seen`)."""
        parts = [segment.seen_item[segment.seen_rows(owner)] for segment in self.segments] if owner is not None else []
        parts = [part for part in parts if len(part)]
        pending = self._pending.get(owner) if owner is not None else None
        if pending:
            parts.append(np.fromiter((t.item for t in pending), dtype=np.int64, count=len(pending)))
        if not parts:
            return np.empty(0, dtype=np.int64)
        if len(parts) == 1 and not pending:  # one segment's: sorted and distinct already
            return parts[0].astype(np.int64)
        return np.unique(np.concatenate(parts).astype(np.int64))

    def seen(self, owner: int | None) -> set[int]:
        if owner is None:
            return set()
        seen: set[int] = set()
        for segment in self.segments:
            seen.update(segment.seen_item[segment.seen_rows(owner)].tolist())
        seen.update(t.item for t in self._pending.get(owner, ()))
        return seen

    def context(self, owners: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(owner, item, weight, ts) of the last `k` touches of each of `owners` (the context a
        bulk log pairs with), grouped by owner in time order."""
        self.flush()
        owner, item, ts, kind = tails(self.segments, np.unique(owners), k)
        return owner, item, np.asarray(self.kind_weights, dtype=np.float64)[kind] if len(kind) else np.empty(0), ts

    def forget(self, owner: int) -> None:
        self.settle()  # its segments are about to be replaced
        self._count(np.fromiter(self.seen(owner), dtype=np.int64), -1)
        self.segments = [s.without(owner) if s.rows(owner).stop > s.rows(owner).start or s.seen_rows(owner).stop >
                         s.seen_rows(owner).start else s for s in self.segments]
        self._pending_n -= len(self._pending.pop(owner, ()))


def _seen_keys(segment: Segment) -> np.ndarray:
    """A segment's seen pairs as sorted int64 keys `owner << 32 | item`."""
    return (segment.seen_owner.astype(np.int64) << 32) | segment.seen_item.astype(np.int64)


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
