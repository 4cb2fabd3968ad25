"""Copy-on-write images of arrays that writers go on changing in place (background snapshots).

A background snapshot must see the state as it was at one log position while writers carry
on. Copying the mutable arrays under the lock (the profiles' columns: ~370 MB at 10M events)
would pause writers ~100 ms, and a fork pauses them for its page tables (34-44 ms at 10M).
Instead the arrays are registered here under the lock (O(arrays)), and each writer calls
`before_write(array, rows)` before it changes rows in place: the first change to a row the
snapshot has not read yet saves that row's before-image (vectorised per call). The snapshot
reads the array in order (`chunks`), copying the live rows and putting the saved images back,
so memory grows with the rows changed during the snapshot, not with the state.

Arrays replaced rather than changed (grown by concatenation, rebuilt by a merge) need nothing:
the registered object is then never written again. Writers are serialised by their own lock
(the engine's); `_lock` orders a writer's save against the reader's copy of the same chunk
(held for the copy and the hand-over of the saved rows only)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

#: Bytes the snapshot reads (copies) per step: one short hold of `_lock`.
CHUNK_BYTES = 1 << 20


@dataclass
class _Tracked:
    array: np.ndarray
    cursor: int = 0  # rows before it are read: writers no longer save them
    #: A bit per row: its before-image is kept. Bits, not a bool per row: the mask is zeroed
    #: pages the first writes fault in at random rows (a 6.8M-entry keyed level: 1,660 pages
    #: over a settle's 1,024 rows, 1-2 ms inside one event; as bits 208).
    saved: np.ndarray | None = None
    pending: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (rows, images) saved
    pool: tuple[np.ndarray, np.ndarray] | None = None  # the saved rows past the cursor, sorted


class FrozenArrays:
    """The arrays one background snapshot reads, each as it was when it was registered."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tracked: dict[int, _Tracked] = {}

    def track(self, array: np.ndarray) -> np.ndarray:
        """Register an array the writers change in place (call with writers held still)."""
        if array.ndim == 0 or not array.flags.c_contiguous:
            raise ValueError("only C-contiguous arrays of one or more dimensions can be frozen")
        self._tracked[id(array)] = _Tracked(array)
        return array

    def before_write(self, array: np.ndarray, rows: int | slice | np.ndarray) -> None:
        """A writer is about to change `rows` of `array` in place (a row, a slice, or indices):
        the rows the snapshot has not read yet keep their first image (only those rows: a
        keyed table's batch touches rows all over it, so whole chunks would copy most of it)."""
        tracked = self._tracked.get(id(array))
        if tracked is None or tracked.array is not array:
            return
        with self._lock:
            cursor = tracked.cursor
            if isinstance(rows, slice):
                start, stop = max(rows.start or 0, cursor), len(array) if rows.stop is None else min(rows.stop, len(array))
                index = np.arange(start, stop) if stop > start else None
            elif isinstance(rows, (int, np.integer)):
                index = np.array([rows], dtype=np.int64) if rows >= cursor else None
            else:
                index = np.unique(np.asarray(rows, dtype=np.int64))
                index = index[index >= cursor]
            if index is None or not len(index):
                return
            if tracked.saved is None:
                tracked.saved = np.zeros((len(array) + 7) // 8, dtype=np.uint8)
            byte, bit = index >> 3, (index & 7).astype(np.uint8)
            index = index[(tracked.saved[byte] >> bit) & 1 == 0]
            if len(index):
                np.bitwise_or.at(tracked.saved, index >> 3, np.left_shift(1, index & 7).astype(np.uint8))
                tracked.pending.append((index, array[index]))  # fancy indexing copies

    def chunks(self, array: np.ndarray, rows: int | None = None) -> Iterator[np.ndarray]:
        """The registered array as it was, `CHUNK_BYTES` at a time, its first `rows` rows
        (default: all): copies of the live rows with the saved images put back. The array is
        then forgotten (writers stop saving it). An array not registered comes whole."""
        tracked = self._tracked.get(id(array))
        if tracked is None or tracked.array is not array:
            yield array if rows is None else array[:rows]
            return
        n = len(array) if rows is None else min(rows, len(array))
        per = max(CHUNK_BYTES // max(array.nbytes // max(len(array), 1), 1), 1)
        try:
            for start in range(0, n, per):
                stop = min(start + per, n)
                with self._lock:  # only the copy and the hand-over: a writer waits for this
                    out = array[start:stop].copy()
                    tracked.cursor = stop
                    saved, tracked.pending = tracked.pending, []
                # Every row of this chunk saved so far is in the pool or `saved` (a writer saves
                # rows past the cursor only from now on): the sort is done outside the lock.
                saved_rows, images = self._pool(tracked, saved)
                lo, hi = np.searchsorted(saved_rows, [start, stop])
                if hi > lo:
                    out[saved_rows[lo:hi] - start] = images[lo:hi]
                    tracked.pool = (saved_rows[hi:], images[hi:])
                yield out
        finally:
            with self._lock:
                self._tracked.pop(id(array), None)

    @staticmethod
    def _pool(tracked: _Tracked, saved: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """The saved rows not read yet, sorted: the pool with what writers `saved` since (the
        reader's own; sorting it under the lock was O(rows saved) per chunk, and a writer's
        before-image waited for it)."""
        parts = ([tracked.pool] if tracked.pool is not None else []) + saved
        if not parts:
            empty = np.empty(0, dtype=np.int64), tracked.array[:0]
            tracked.pool = empty
            return empty
        if len(parts) > 1:
            saved_rows = np.concatenate([r for r, _ in parts])
            images = np.concatenate([i for _, i in parts])
            order = np.argsort(saved_rows, kind="stable")
            tracked.pool = (saved_rows[order], images[order])
        else:
            tracked.pool = parts[0]
        return tracked.pool

    def image(self, array: np.ndarray, rows: int | None = None) -> np.ndarray:
        """The registered array as it was (its first `rows` rows), as one copy."""
        parts = list(self.chunks(array, rows))
        if not parts:
            return array[:0].copy()
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def release(self) -> None:
        """Forget everything (the snapshot is done or abandoned): writers stop saving."""
        with self._lock:
            self._tracked.clear()

    @property
    def saved_bytes(self) -> int:
        """Bytes of before-images held now."""
        with self._lock:
            return sum(images.nbytes for t in self._tracked.values()
                       for _, images in ([t.pool] if t.pool is not None else []) + t.pending)
