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

Everything is dropped when the namespace is reset or reloaded (epoch or state id change), and
the rows when they outgrow `MAX_ROW_BYTES`. Cached arrays are read-only (a caller that tried to
change one in place would fail loudly instead of corrupting the cache).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from pulserec.online.redis.codec import PAIR, decode_pairs

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

    def clear(self) -> None:
        self.vec_ver = ""  # '' = none held
        self.vectors: tuple[bytes | None, bytes | None] = (None, None)
        self.other_vectors: dict[str, tuple[str, bytes | None]] = {}  # name -> (vec_ver read at, bytes)
        self.rows: dict[int, CachedRow] = {}
        self.row_bytes = 0
        #: owner key -> (the recent rows its last query read, the revision it was read at)
        self.expected: OrderedDict[str, tuple[list[int], tuple]] = OrderedDict()

    def keep_row(self, item: int, row: CachedRow) -> None:
        old = self.rows.get(item)
        self.row_bytes += row.nbytes - (old.nbytes if old else 0)
        self.rows[item] = row
        if self.row_bytes > MAX_ROW_BYTES:
            self.rows, self.row_bytes = {item: row}, row.nbytes
