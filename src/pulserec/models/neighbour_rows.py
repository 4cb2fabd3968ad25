"""Item-kNN's neighbour rows as it scores them, kept while the co-occurrence is unchanged.

A row's scored form (each raw weight over the square root of both items' degrees, neighbours
with too little support dropped) depends on degrees and owner counts of the whole
co-occurrence, so it is exact for one `revision` only (any write, compaction or load anywhere
moves it). A user's first request reads the rows of their whole history (a 1,046-event
MovieLens user: 1,046 rows, 194k entries; normalising and checking them was ~3 ms of that
request), and most of those rows were already read by other users' requests at the same
revision. Kept rows are read back by offset arithmetic in a few passes over the entries, no
Python per row; the entries come out exactly as a fresh read gives them (same order, same
values), so scores do not depend on whether a row was kept.

Bounded: at most `max_bytes` of entries (12 bytes each). The buffers are allocated once at
their full size (untouched pages cost no memory); when a read would overflow them, every kept
row is dropped and the rows are kept again from the next read on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable

import numpy as np

#: Bytes per kept entry: int32 neighbour + float64 similarity.
ENTRY_BYTES = 12

Entries = tuple[np.ndarray, np.ndarray, np.ndarray]  # (neighbour, similarity, position of the row's item)


class NeighbourRows:
    """Scored rows per item index for the current revision; thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self.capacity = max(int(max_bytes) // ENTRY_BYTES, 0)
        self._lock = threading.Lock()
        self._revision: Hashable = None
        self._start = np.empty(0, dtype=np.int64)  # offset of each item's row, -1: not kept
        self._length = np.empty(0, dtype=np.int64)
        self._idx = np.empty(0, dtype=np.int32)
        self._sims = np.empty(0, dtype=np.float64)
        self._used = 0
        self.rows_read = 0  # rows read through `read` (not kept at the time), for figures and tests

    @property
    def nbytes(self) -> int:
        return self._used * ENTRY_BYTES

    def gather(self, items: np.ndarray, revision: Hashable, read: Callable[[np.ndarray], Entries]) -> Entries:
        """The scored entries of the rows of `items` (in their order; `read(rows)` gives those of
        rows not kept, ascending distinct item indices), keeping what it read for `revision`."""
        items = np.asarray(items, dtype=np.int64)
        if len(items) == 0 or self.capacity == 0:
            return read(items)
        with self._lock:
            if revision != self._revision:
                self._reset(revision)
            self._cover(int(items.max()) + 1)
            starts = self._start[items]
            if (starts < 0).any():
                fresh = np.unique(items[starts < 0])
                entries = read(fresh)
                self.rows_read += len(fresh)
                if self._used + len(entries[0]) > self.capacity:
                    self._reset(revision)  # full: start again with the next read
                    return read(items)
                self._keep(fresh, entries)
                starts = self._start[items]
            return self._read(starts, self._length[items])

    def warm(self, items: np.ndarray, revision: Hashable, read: Callable[[np.ndarray], Entries],
             chunk: int, seconds: float) -> int:
        """Keep the rows of `items` (distinct; the most read first), `chunk` rows per `read`,
        until the bound is reached or `seconds` have passed; returns how many rows were kept."""
        kept, deadline = 0, time.monotonic() + seconds
        with self._lock:
            if revision != self._revision:
                self._reset(revision)
            for begin in range(0, len(items), chunk):
                rows = np.sort(np.asarray(items[begin:begin + chunk], dtype=np.int64))
                self._cover(int(rows.max()) + 1)
                rows = rows[self._start[rows] < 0]
                if len(rows) == 0:
                    continue
                entries = read(rows)
                if self._used + len(entries[0]) > self.capacity:
                    break
                self._keep(rows, entries)
                kept += len(rows)
                if time.monotonic() > deadline:
                    break
        return kept

    def _reset(self, revision: Hashable) -> None:
        self._revision = revision
        self._start[:] = -1
        self._used = 0

    def _cover(self, n: int) -> None:
        if n <= len(self._start):
            return
        grown = max(n, 2 * len(self._start))
        self._start = np.concatenate([self._start, np.full(grown - len(self._start), -1, dtype=np.int64)])
        self._length = np.concatenate([self._length, np.zeros(grown - len(self._length), dtype=np.int64)])

    def _keep(self, rows: np.ndarray, entries: Entries) -> None:
        idx, sims, src = entries
        if len(self._idx) < self.capacity:  # once: the whole bound, pages touched as rows are kept
            self._idx = np.empty(self.capacity, dtype=np.int32)
            self._sims = np.empty(self.capacity, dtype=np.float64)
        lengths = np.bincount(src, minlength=len(rows))
        end = self._used + len(idx)
        self._idx[self._used:end] = idx
        self._sims[self._used:end] = sims
        self._start[rows] = self._used + np.cumsum(lengths) - lengths
        self._length[rows] = lengths
        self._used = end

    def _read(self, starts: np.ndarray, lengths: np.ndarray) -> Entries:
        """Entries of rows at `starts` (`lengths` each), in row order: positions by one repeat
        of each row's offset, added to a running count."""
        total = int(lengths.sum())
        src = np.repeat(np.arange(len(starts), dtype=np.int32), lengths)
        if total == 0:
            return np.empty(0, dtype=np.int32), np.empty(0), src
        before = np.cumsum(lengths) - lengths
        positions = np.arange(total, dtype=np.int64)
        positions += (starts - before)[src]
        return self._idx[positions], self._sims[positions], src
