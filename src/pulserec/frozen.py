"""Copy-on-write images of arrays that writers go on changing in place (background snapshots).

A background snapshot must see the state as it was at one log position while writers carry
on. Copying the mutable arrays under the lock (the profiles' columns: ~370 MB at 10M events)
would pause writers ~100 ms, and a fork pauses them for its page tables (34-44 ms at 10M).
Instead the arrays are registered here under the lock (O(arrays)), and each writer calls
`before_write(array, rows)` before it changes rows in place: the first change to a chunk of
rows the snapshot has not read yet saves that chunk's before-image. The snapshot reads every
chunk once (`chunks`), the before-image if there is one, else the live rows, and marks it read,
so a chunk is copied at most once and only if a writer touched it first: memory grows with
what changed during the snapshot, not with the state.

Arrays replaced rather than changed (grown by concatenation, rebuilt by a merge) need nothing:
the registered object is then never written again. Writers are serialised by their own lock
(the engine's); `_lock` orders a writer's save against the reader's read of the same chunk."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

#: Bytes in one chunk: a writer's first touch of a chunk copies this much (~50-100 us).
CHUNK_BYTES = 1 << 20


@dataclass
class _Tracked:
    array: np.ndarray
    rows: int  # rows per chunk (along axis 0)
    read: np.ndarray  # bool per chunk: the snapshot has it
    saved: dict[int, np.ndarray] = field(default_factory=dict)


class FrozenArrays:
    """The arrays one background snapshot reads, each as it was when it was registered."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tracked: dict[int, _Tracked] = {}

    def track(self, array: np.ndarray) -> np.ndarray:
        """Register an array the writers change in place (call with writers held still)."""
        if array.ndim == 0 or not array.flags.c_contiguous:
            raise ValueError("only C-contiguous arrays of one or more dimensions can be frozen")
        rows = max(CHUNK_BYTES // max(array.nbytes // max(len(array), 1), 1), 1)
        n_chunks = -(-len(array) // rows)
        self._tracked[id(array)] = _Tracked(array, rows, np.zeros(n_chunks, dtype=bool))
        return array

    def before_write(self, array: np.ndarray, rows: int | slice | np.ndarray) -> None:
        """A writer is about to change `rows` of `array` in place (a row, a slice, or indices)."""
        tracked = self._tracked.get(id(array))
        if tracked is None or tracked.array is not array:
            return
        per = tracked.rows
        if isinstance(rows, slice):
            start, stop = rows.start or 0, len(array) if rows.stop is None else rows.stop
            if stop <= start:
                return
            chunks = range(start // per, (stop - 1) // per + 1)
        elif isinstance(rows, (int, np.integer)):
            chunks = (int(rows) // per,)
        else:
            rows = np.asarray(rows)
            if not rows.size:
                return
            chunks = np.unique(rows // per).tolist()
        with self._lock:
            read, saved = tracked.read, tracked.saved
            for chunk in chunks:
                if chunk < len(read) and not read[chunk] and chunk not in saved:
                    saved[chunk] = array[chunk * per : (chunk + 1) * per].copy()

    def chunks(self, array: np.ndarray, rows: int | None = None) -> Iterator[np.ndarray]:
        """The registered array as it was, chunk by chunk, up to the chunk holding row `rows`
        (default: all): copies, each chunk read once and one held at a time. The array is then
        forgotten (writers stop saving it). An array not registered comes whole."""
        tracked = self._tracked.get(id(array))
        if tracked is None or tracked.array is not array:
            yield array if rows is None else array[:rows]
            return
        per = tracked.rows
        last = len(tracked.read) if rows is None else min(len(tracked.read), -(-rows // per))
        try:
            for chunk in range(last):
                with self._lock:
                    image = tracked.saved.pop(chunk, None)
                    if image is None:
                        image = array[chunk * per : (chunk + 1) * per].copy()
                    tracked.read[chunk] = True
                yield image
        finally:
            with self._lock:
                self._tracked.pop(id(array), None)

    def image(self, array: np.ndarray, rows: int | None = None) -> np.ndarray:
        """The registered array as it was (its first `rows` rows), as one copy."""
        parts = list(self.chunks(array, rows))
        if not parts:
            return array[:0].copy()
        return (parts[0] if len(parts) == 1 else np.concatenate(parts))[:rows]

    def release(self) -> None:
        """Forget everything (the snapshot is done or abandoned): writers stop saving."""
        with self._lock:
            self._tracked.clear()

    @property
    def saved_bytes(self) -> int:
        with self._lock:
            return sum(image.nbytes for t in self._tracked.values() for image in t.saved.values())
