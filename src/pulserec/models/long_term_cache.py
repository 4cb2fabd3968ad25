"""Item-kNN's long-term part per user, kept between requests while the co-occurrence is unchanged.

The served query carries the user's whole history (models/query.py, `long_term_weight`): every
item of it adds the same weight, so item-kNN's score is

    score(j) = sum over recent items r of (w_r - lt) * cos(r, j)  +  lt * A(j),
    A(j)     = sum over every query item h of cos(h, j)

A(j) is most of a request's work (a 1,046-event user reads ~194k neighbour entries, ~7 ms in
memory) and depends only on the query's items and the co-occurrence, not on the weights. It is
kept per user, with the strongest single entry behind each neighbour (the explanation), keyed
by the query's items (in order) and the co-occurrence rows' `revision`: any write, compaction
or load anywhere moves it, so a kept part is exactly what a new gather would give (answers do
not depend on whether the cache held it). Bounded by bytes, least recently used out first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import NamedTuple

import numpy as np

#: Bytes per neighbour kept: int32 item, float64 sum, float64 strongest entry, int32 its source.
ENTRY_BYTES = 24


class LongTermPart(NamedTuple):
    """A(j) over the distinct neighbours `items` (ascending), and for each the strongest single
    entry (`best`, unweighted similarity) and the position in the query of its history item
    (`source`; the first in query order among equals, as the uncached explanation picks)."""

    items: np.ndarray
    sums: np.ndarray
    best: np.ndarray
    source: np.ndarray

    @property
    def nbytes(self) -> int:
        return len(self.items) * ENTRY_BYTES

    def dense(self, n_items: int) -> np.ndarray:
        """A(j) over the catalogue's first `n_items` items."""
        out = np.zeros(n_items)
        inside = self.items < n_items
        out[self.items[inside]] = self.sums[inside]
        return out


def long_term_part(idx: np.ndarray, sims: np.ndarray, src: np.ndarray) -> LongTermPart:
    """Fold neighbour entries (item, similarity, position of the history item; in query order)
    into a `LongTermPart`. Over the distinct items of the entries (np.unique) when they are few
    against the largest item index, else by dense scatters over the index range: a first
    request of a user with 1,400 entries at 100k items took ~4 ms in the dense build (three
    catalogue-sized arrays), while a 194k-entry history sorts slower than it scatters. Both give
    the same part to the bit: bincount sums each item's entries in entry order either way."""
    if len(idx) == 0:
        empty = np.empty(0)
        return LongTermPart(np.empty(0, dtype=np.int32), empty, empty, np.empty(0, dtype=np.int32))
    width = int(idx.max()) + 1
    if len(idx) * SPARSE_BELOW < width:
        keys, slot = np.unique(idx, return_inverse=True)
    else:
        keys, slot = None, idx.astype(np.intp, copy=False)  # ufunc.at and take index without a cast
    size = width if keys is None else len(keys)
    sums = np.bincount(slot, weights=sims, minlength=size)
    best = np.full(size, -np.inf)
    np.maximum.at(best, slot, sims)
    strongest = np.flatnonzero(sims == best.take(slot))  # a few per neighbour
    source = np.full(size, np.iinfo(np.int32).max, dtype=np.int32)
    np.minimum.at(source, slot.take(strongest), src.take(strongest).astype(np.int32))
    present = np.flatnonzero(best > -np.inf)
    items = present if keys is None else keys[present]
    return LongTermPart(items.astype(np.int32), sums[present], best[present], source[present])


#: The sparse build (see long_term_part) when the entries are fewer than 1/SPARSE_BELOW of the
#: index range: a sort of e entries against ~4 catalogue-sized passes.
SPARSE_BELOW = 8


class _Entry(NamedTuple):
    revision: Hashable
    query_items: np.ndarray
    part: LongTermPart

    @property
    def nbytes(self) -> int:
        return self.part.nbytes + self.query_items.nbytes


class LongTermCache:
    """Per owner, the last `LongTermPart` built, valid while its query items and the rows'
    revision are the same; at most `max_bytes` in all (0 keeps nothing). Thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, owner: int, revision: Hashable, query_items: np.ndarray) -> LongTermPart | None:
        with self._lock:
            entry = self._entries.get(owner)
            if entry is None or entry.revision != revision or not np.array_equal(entry.query_items, query_items):
                self.misses += 1
                return None
            self._entries.move_to_end(owner)
            self.hits += 1
            return entry.part

    def put(self, owner: int, revision: Hashable, query_items: np.ndarray, part: LongTermPart) -> None:
        entry = _Entry(revision, query_items.copy(), part)
        if entry.nbytes > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(owner, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._entries[owner] = entry
            self._bytes += entry.nbytes
            while self._bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= dropped.nbytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
