"""Per-process copies of the large strings a read needs, revalidated on every read.

A recommendation used to move ~400 KB from Redis: the trending and degree vectors (8 bytes per
item each) and the co-occurrence rows of the user's recent items. Both change in ways that can
be checked cheaply, so each process keeps the bytes it last read and fetches only what changed:

* vectors: COMMIT bumps `meta.vec_ver` whenever it writes one of them; READ returns the
  trending and degree vectors only when the version differs from the one this process holds,
  and the others (all-time totals and event counts, read by item-kNN's minimum support) are
  fetched at most once per version.
* rows are append-only between compactions, and a compaction bumps the row's generation
  (`cooc:gen`): with the generation unchanged, the bytes after the cached length are all that
  is new. One ROWS script call per request returns only the rows that changed (their tails, or
  the whole row after a compaction); rows are kept decoded, so an unchanged row costs no work.

* whole views: while the process's invalidation channel (`pushes`) has received nothing since
  a view was read, nothing it holds has changed, so the owner's next request reuses it and asks
  Redis nothing (`snapshot_at`, `keep_snapshot`; cleared at the next push). Rows checked at
  the current generation are likewise taken as held, with no script asking about them
  (`current_row`): a new owner's request of a quiet state is one READ, its rows all held.

Everything is dropped when the namespace is reset or reloaded (epoch or state id change), and
the rows when they outgrow `MAX_ROW_BYTES`. Cached arrays are read-only (a caller that tried to
change one in place would fail loudly instead of corrupting the cache).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from pulserec.online.redis.codec import PAIR, decode_pairs, decode_vector

#: Bytes of cached co-occurrence rows per process before the cache starts over (MovieLens: ~12 KB
#: a row, so ~5,000 rows).
MAX_ROW_BYTES = 64 * 2**20


class CachedRow(NamedTuple):
    """The first `nbytes` bytes of a row at generation `gen`, decoded (read-only arrays)."""

    gen: int
    nbytes: int
    items: np.ndarray
    weights: np.ndarray

    def extended(self, gen: int, tail: bytes) -> CachedRow:
        """This row with `tail` (the bytes appended after it) added."""
        if not tail:
            return self
        items, weights = decode_pairs(tail)
        return _frozen(gen, self.nbytes + len(tail), np.concatenate([self.items, items]),
                       np.concatenate([self.weights, weights]))


def _frozen(gen: int, nbytes: int, items: np.ndarray, weights: np.ndarray) -> CachedRow:
    items.flags.writeable = False
    weights.flags.writeable = False
    return CachedRow(gen, nbytes, items, weights)


EMPTY_ROW = _frozen(0, 0, *decode_pairs(b""))


def decoded_row(gen: int, blob: bytes) -> CachedRow:
    return _frozen(gen, len(blob), *decode_pairs(blob))


def frozen_row(gen: int, items: np.ndarray, weights: np.ndarray) -> CachedRow:
    """A row held as arrays (int32 items, float64 weights, owned by the row), as Redis stores it."""
    return _frozen(gen, len(items) * PAIR.itemsize, items, weights)


#: Owners whose query rows a process remembers (READ checks them in the same call: a request
#: of a returning owner needs no ROWS call); ~20 ints each.
MAX_EXPECTED = 100_000
#: Views kept for reuse until the next push, bounded by their history touches plus seen items
#: (~80 bytes each: ~40 MB; MovieLens' 610 users hold ~110k).
MAX_VIEW_ENTRIES = 500_000


class ReadCache:
    def __init__(self) -> None:
        self.clear()

    def expected_rows(self, owner_key: str | None) -> list[int]:
        """The recent rows the owner's last read here needed (none for no owner or a new one)."""
        held = self.expected.get(owner_key) if owner_key is not None else None
        return held[0] if held is not None else []

    def served_at(self, owner_key: str | None) -> tuple | None:
        """The revision of the owner's last read here (None: none)."""
        held = self.expected.get(owner_key) if owner_key is not None else None
        return held[1] if held is not None else None

    def expect_rows(self, owner_key: str, items: list[int], revision: tuple) -> None:
        expected = self.expected
        expected[owner_key] = (items, revision)
        expected.move_to_end(owner_key)
        if len(expected) > MAX_EXPECTED:
            expected.popitem(last=False)

    def snapshot_at(self, owner_key: str | None, generation: int) -> object | None:
        """The view of `owner_key` read at push `generation`, if one was kept at it."""
        if generation != self.view_generation:
            return None
        return self.views.get(owner_key)

    def keep_snapshot(self, owner_key: str | None, generation: int, view: object, entries: int) -> None:
        """Keep a view read when the channel was at `generation` (read after that generation was
        observed: whatever changes after it moves the generation)."""
        if generation != self.view_generation or self.view_entries + entries > MAX_VIEW_ENTRIES:
            self.views, self.view_entries, self.view_generation = {}, 0, generation
        self.views[owner_key] = view
        self.view_entries += entries

    def decoded_vectors(self, n_items: int) -> tuple[np.ndarray, np.ndarray]:
        """The trending and degree vectors held, decoded to `n_items` (read-only, shared by every
        view of this vector version: a kept view must not hold its own ~16 bytes an item)."""
        key = (self.vec_ver, n_items)
        if self.decoded[0] != key:
            arrays = tuple(decode_vector(blob, n_items) for blob in self.vectors)
            for array in arrays:
                array.flags.writeable = False
            self.decoded = (key, arrays)
        return self.decoded[1]  # type: ignore[return-value]

    def current_row(self, item: int, generation: int | None) -> CachedRow | None:
        """The held row of `item` if a script checked it at push `generation` (then nothing
        has changed it since), else None."""
        if generation is None or self.row_checked.get(item) != generation:
            return None
        return self.rows.get(item)

    def checked_rows(self, items, generation: int | None) -> None:
        """A script call made at push `generation` brought these held rows up to date."""
        if generation is not None:
            self.row_checked.update(dict.fromkeys(items, generation))

    def clear(self) -> None:
        self.row_checked: dict[int, int] = {}  # item -> the push generation its row was last checked at
        self.views: dict[str | None, object] = {}
        self.view_entries = 0
        self.view_generation = -1
        self.decoded: tuple[tuple, tuple] = ((), ())
        self.vec_ver = ""  # '' = none held
        self.vectors: tuple[bytes | None, bytes | None] = (None, None)
        self.other_vectors: dict[str, tuple[str, bytes | None]] = {}  # name -> (vec_ver read at, bytes)
        self.rows: dict[int, CachedRow] = {}
        self.row_bytes = 0
        #: owner key -> (the recent rows its last query read, the revision it was read at)
        self.expected: OrderedDict[str, tuple[list[int], tuple]] = OrderedDict()
        #: The revision of the last read here (online/redis/snapshot.py: wanted_rows' `quiet`).
        self.last_revision: tuple = ()

    def keep_row(self, item: int, row: CachedRow) -> None:
        old = self.rows.get(item)
        self.row_bytes += row.nbytes - (old.nbytes if old else 0)
        self.rows[item] = row
        if self.row_bytes > MAX_ROW_BYTES:
            self.rows, self.row_bytes = {item: row}, row.nbytes
