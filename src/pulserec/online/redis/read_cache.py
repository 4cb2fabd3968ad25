"""Per-process copies of the large strings a read needs, revalidated on every read.

A recommendation used to move ~400 KB from Redis: the trending and degree vectors (8 bytes per
item each) and the co-occurrence rows of the user's recent items. Both change in ways that can
be checked cheaply, so each process keeps the bytes it last read and fetches only what changed:

* vectors: COMMIT bumps `meta.vec_ver` whenever it writes one of them; READ returns them only
  when the version differs from the one this process holds.
* rows are append-only between compactions, and a compaction bumps the row's generation
  (`cooc:gen`): with the generation unchanged, the bytes after the cached length are all that
  is new (one GETRANGE, in the same MULTI as the generations).

Everything is dropped when the namespace is reset or reloaded (epoch or state id change), and
the rows when they outgrow `MAX_ROW_BYTES`. Callers get bytes and decode them afresh, so nothing
cached is ever mutated.
"""

from __future__ import annotations

#: Bytes of cached co-occurrence rows per process before the cache starts over (MovieLens: ~12 KB
#: a row, so ~5,000 rows).
MAX_ROW_BYTES = 64 * 2**20


class ReadCache:
    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.vec_ver = ""  # '' = none held
        self.vectors: tuple[bytes | None, bytes | None] = (None, None)
        self.rows: dict[int, tuple[int, bytes]] = {}  # item -> (generation, bytes)
        self.row_bytes = 0

    def keep_row(self, item: int, gen: int, blob: bytes) -> None:
        old = self.rows.get(item)
        self.row_bytes += len(blob) - (len(old[1]) if old else 0)
        self.rows[item] = (gen, blob)
        if self.row_bytes > MAX_ROW_BYTES:
            self.rows, self.row_bytes = {item: (gen, blob)}, len(blob)
