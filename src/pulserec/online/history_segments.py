"""Histories as a few sorted NumPy segments (an LSM) instead of a deque and a set per owner.

A segment holds touches sorted by owner (arrival order within an owner), at most `max_len`
per owner, in 17 bytes a touch (owner, item: int32; ts: float64; kind: int8) where a `Touch`
in a deque cost ~120; and the (owner, item) pairs ever touched, unique, in 8 bytes a pair
instead of ~60 in a set. Newer segments hold later touches. A bulk log becomes one segment;
per-event touches wait in small per-owner lists until `FLUSH_AT` of them make a segment.
Segments merge size-tiered (a segment at least half the size of the one before it merges into
it), so each touch is rewritten O(log n) times and a read looks at O(log n) segments."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Per-event touches buffered before they become a segment. The flush is inside one event
#: (a Python pass over the touches, then a sort): 4096 cost a writer 3-9 ms of CPU on the
#: loaded box, 1024 a quarter of it, for about two more small segments a read looks at.
FLUSH_AT = 1024


@dataclass
class Segment:
    owner: np.ndarray  # int32, sorted
    item: np.ndarray  # int32
    ts: np.ndarray  # float64
    kind: np.ndarray  # int8 index into the histories' kinds
    seen_owner: np.ndarray  # int32, sorted
    seen_item: np.ndarray  # int32, sorted within an owner, unique pairs

    def __len__(self) -> int:
        return len(self.owner) + len(self.seen_owner)

    def rows(self, owner: int) -> slice:
        return _run(self.owner, owner)

    def seen_rows(self, owner: int) -> slice:
        return _run(self.seen_owner, owner)

    def has_seen(self, owner: int, item: int) -> bool:
        rows = _run(self.seen_owner, owner)
        if rows.start == rows.stop:
            return False
        items = self.seen_item[rows]
        at = int(items.searchsorted(np.int32(item)))
        return at < len(items) and int(items[at]) == item

    def seen_keys_of(self, owners: np.ndarray) -> np.ndarray:
        """The seen pairs of `owners` (sorted, distinct) as sorted keys `owner << 32 | item`:
        O(their pairs), not O(the segment's) (a bulk log's new pairs are looked up in each
        segment; keys of a whole 10M-event segment per chunk would be ~7M of them)."""
        keys = owners.astype(self.seen_owner.dtype, copy=False)  # else the segment is cast (see _run)
        starts = np.searchsorted(self.seen_owner, keys, "left")
        rows = ranges(starts, np.searchsorted(self.seen_owner, keys, "right") - starts)
        return (self.seen_owner[rows].astype(np.int64) << 32) | self.seen_item[rows].astype(np.int64)

    def without(self, owner: int) -> Segment:
        keep, seen = self.owner != owner, self.seen_owner != owner
        return Segment(self.owner[keep], self.item[keep], self.ts[keep], self.kind[keep], self.seen_owner[seen],
                       self.seen_item[seen])


def _run(keys: np.ndarray, key: int) -> slice:
    """Rows of `key` in the sorted int32 `keys`. The probe has the keys' own dtype: a Python int
    or an int64 probe makes NumPy cast the whole array first (O(n): ~70 us a lookup on MovieLens'
    100k seen pairs instead of ~2 us)."""
    return slice(*keys.searchsorted(np.array([key, key + 1], dtype=keys.dtype)).tolist())


def segment_of(owner: np.ndarray, item: np.ndarray, ts: np.ndarray, kind: np.ndarray, max_len: int,
               seen: tuple[np.ndarray, np.ndarray] | None = None, pairs: np.ndarray | None = None) -> Segment:
    """A segment from rows in arrival order (older segments' rows first), each owner's last
    `max_len` kept; `seen` pairs default to the rows' own. `pairs`: the seen pairs as sorted
    unique keys `owner << 32 | item`, when the caller has them already."""
    order = np.argsort(owner, kind="stable")
    owner, item, ts, kind = owner[order], item[order], ts[order], kind[order]
    keep = _last_per_group(owner, max_len)
    if pairs is None:
        seen_owner, seen_item = seen if seen is not None else (owner, item)
        pairs = np.unique((seen_owner.astype(np.int64) << 32) | seen_item.astype(np.int64))
    return Segment(owner[keep].astype(np.int32), item[keep].astype(np.int32), ts[keep].astype(np.float64),
                   kind[keep].astype(np.int8), (pairs >> 32).astype(np.int32), (pairs & 0xFFFFFFFF).astype(np.int32))


def merged(older: Segment, newer: Segment, max_len: int) -> Segment:
    """`segment_of` the two segments' rows (older first), without sorting them again: both are
    sorted already, so each row's place in the merge is its own index plus how many rows of the
    other segment go before it (a stable merge, older rows first within an owner), and the seen
    pairs merge the same way, duplicates dropped. On a 1M-event shop import the re-sort (a stable
    argsort of the rows and an np.unique of the pairs) was 14% of the state apply (issue 17.3)."""
    before_older = _searchsorted(newer.owner, older.owner, "left")  # newer rows of a smaller owner
    before_newer = _searchsorted(older.owner, newer.owner, "right")  # older rows of an owner <= it
    at_older = np.arange(len(older.owner)) + before_older
    at_newer = np.arange(len(newer.owner)) + before_newer
    owner, item, ts, kind = (_interleaved(a, b, at_older, at_newer) for a, b in (
        (older.owner, newer.owner), (older.item, newer.item), (older.ts, newer.ts), (older.kind, newer.kind)))
    keep = _last_per_group(owner, max_len)
    pairs = _union_sorted(_pair_keys(older), _pair_keys(newer))
    return Segment(owner[keep], item[keep], ts[keep], kind[keep], (pairs >> 32).astype(np.int32),
                   (pairs & 0xFFFFFFFF).astype(np.int32))


#: Rows one NumPy call of a merge takes (searches, scatters): between two calls another thread
#: may take the GIL. A merge of the 10M shop's ~12M-row segments on a helper thread held it 30+
#: ms a call while the writer waited (faulthandler dumps of the writer's stalls, issue 17.1).
SLICE = 1 << 20


def _searchsorted(a: np.ndarray, v: np.ndarray, side: str) -> np.ndarray:
    """`np.searchsorted(a, v, side)`, `SLICE` probes a call."""
    if len(v) <= SLICE:
        return np.searchsorted(a, v, side)
    out = np.empty(len(v), dtype=np.intp)
    for start in range(0, len(v), SLICE):
        out[start : start + SLICE] = np.searchsorted(a, v[start : start + SLICE], side)
    return out


def _interleaved(a: np.ndarray, b: np.ndarray, at_a: np.ndarray, at_b: np.ndarray) -> np.ndarray:
    out = np.empty(len(a) + len(b), dtype=np.result_type(a, b))
    for values, at in ((a, at_a), (b, at_b)):
        for start in range(0, len(values), SLICE):  # a scatter a call of `SLICE` rows
            out[at[start : start + SLICE]] = values[start : start + SLICE]
    return out


def _pair_keys(segment: Segment) -> np.ndarray:
    """The segment's seen pairs as sorted unique int64 keys (owner << 32 | item)."""
    return (segment.seen_owner.astype(np.int64) << 32) | segment.seen_item.astype(np.int64)


def _union_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The sorted union of two sorted arrays of unique keys."""
    out = _interleaved(a, b, np.arange(len(a)) + _searchsorted(b, a, "left"),
                       np.arange(len(b)) + _searchsorted(a, b, "right"))
    if len(out) < 2:
        return out
    return out[np.r_[True, out[1:] != out[:-1]]]


def _last_per_group(sorted_keys: np.ndarray, k: int) -> np.ndarray:
    """Mask of each run's last `k` rows in an array sorted by key."""
    n = len(sorted_keys)
    if n == 0:
        return np.zeros(0, dtype=bool)
    ends = np.r_[np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1, n]
    run_end = np.repeat(ends, np.diff(np.r_[0, ends]))
    return run_end - np.arange(n) <= k


def tails(segments: list[Segment], owners: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(owner, item, ts, kind) of the last `k` touches of each of `owners` (sorted, unique)
    across the segments, grouped by owner in time order."""
    parts = []
    for segment in segments:
        keys = owners.astype(segment.owner.dtype, copy=False)  # else the segment is cast (see _run)
        starts = np.searchsorted(segment.owner, keys, "left")
        ends = np.searchsorted(segment.owner, keys, "right")
        starts = np.maximum(starts, ends - k)
        lengths = ends - starts
        if not lengths.any():
            continue
        rows = ranges(starts, lengths)
        parts.append((segment.owner[rows], segment.item[rows], segment.ts[rows], segment.kind[rows]))
    if not parts:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0), np.empty(0, dtype=np.int8)
    owner, item, ts, kind = (np.concatenate(column) for column in zip(*parts))
    order = np.argsort(owner, kind="stable")  # segments oldest first: stable keeps time order
    owner, item, ts, kind = owner[order], item[order], ts[order], kind[order]
    keep = _last_per_group(owner, k)
    return owner[keep].astype(np.int64), item[keep].astype(np.int64), ts[keep], kind[keep]


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The row numbers of consecutive runs `starts[i] .. starts[i] + lengths[i] - 1`, concatenated."""
    if not len(lengths):
        return np.zeros(0, dtype=np.int64)
    return np.repeat(starts - np.r_[0, np.cumsum(lengths)[:-1]], lengths) + np.arange(int(lengths.sum()))
