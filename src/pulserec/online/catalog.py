"""In-memory item metadata aligned with item indices (titles, categories, tags, price, status)."""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

import numpy as np
import pandas as pd

from pulserec.ids import IdIndex
from pulserec.records import ItemRecord


#: Catalogue revisions are drawn from one counter, so a cache keyed on a revision never mistakes
#: a new catalogue (a state rebuilt, a Redis mirror reset) for the one it was computed on.
_REVISIONS = itertools.count(1)
#: Upserts remembered for `changed_since` (cached filter columns update just those rows; a cache
#: further behind than this rebuilds, which costs one pass over the records).
JOURNAL = 4096


class Catalog:
    """Items known to the engine, from the catalogue or first seen in an event."""

    def __init__(self) -> None:
        #: Changes on every upsert (metadata); interning a new id only grows the catalogue.
        self.revision = next(_REVISIONS)
        self._base_revision = self.revision
        self._forgotten = 0
        self._journal: deque[tuple[int, int]] = deque(maxlen=JOURNAL)
        self.item_ids = IdIndex()
        self.categories = IdIndex()
        self._records: list[ItemRecord] = []
        #: Records replaced since each open snapshot image was taken (`record_image`).
        self._record_images: list[dict[int, ItemRecord]] = []
        self.category_idx = np.empty(0, dtype=np.int32)
        self.price = np.empty(0, dtype=np.float64)
        self.active = np.empty(0, dtype=bool)
        self.listed = np.empty(0, dtype=bool)
        self.created_ts = np.empty(0, dtype=np.float64)

    def __len__(self) -> int:
        return len(self.item_ids)

    def grow(self, n: int) -> None:
        """Room for `n` items in the per-item arrays (grown geometrically; a snapshot load sizes it once)."""
        cap = len(self.active)
        if n <= cap:
            return
        new_cap = max(n, cap * 2, 1024)
        self.category_idx = _grown(self.category_idx, new_cap, -1)
        self.price = _grown(self.price, new_cap, np.nan)
        self.active = _grown(self.active, new_cap, False)
        self.listed = _grown(self.listed, new_cap, False)
        self.created_ts = _grown(self.created_ts, new_cap, np.nan)

    def intern(self, item_id: str, ts: float | None = None) -> int:
        """Index of an item, registering it (with no metadata, not listed) on first sight."""
        idx = self.item_ids.get(item_id)
        if idx is not None:
            return idx
        idx = self.item_ids.add(item_id)
        self.grow(idx + 1)
        self._records.append(ItemRecord(item_id=item_id, created_ts=ts, listed=False))
        self.active[idx] = True
        self.created_ts[idx] = np.nan if ts is None else ts
        return idx

    def intern_many(self, item_ids: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """`intern` of each id (with the time of its first row), each distinct id once."""
        codes, uniques = pd.factorize(item_ids)
        distinct = uniques.tolist()
        # Known ids by one pass of dict lookups (a chunk of a shop's import names
        # thousands of known items; a Python call each was ~5% of its state apply); new ones
        # are interned in order of first appearance, with the time of their first row, as before.
        found = self.item_ids.indices_of(distinct)
        new = [k for k, idx in enumerate(found) if idx is None]
        if new:
            first = np.flatnonzero(codes > np.maximum.accumulate(np.r_[-1, codes[:-1]]))  # codes count up from 0
            stamps = ts[first]
            for k in new:
                found[k] = self.intern(distinct[k], float(stamps[k]))
        return np.fromiter(found, dtype=np.int64, count=len(found))[codes]

    def upsert(self, record: ItemRecord) -> int:
        idx = self.intern(record.item_id, record.created_ts)
        if record.created_ts is None:
            record.created_ts = self._records[idx].created_ts
        for replaced in self._record_images:  # an open snapshot image keeps the record it saw
            replaced.setdefault(idx, self._records[idx])
        self._records[idx] = record
        self.category_idx[idx] = -1 if record.category is None else self.categories.add(record.category)
        self.price[idx] = np.nan if record.price is None else record.price
        self.active[idx] = record.active
        self.listed[idx] = record.listed
        self.created_ts[idx] = np.nan if record.created_ts is None else record.created_ts
        self.revision = next(_REVISIONS)
        if len(self._journal) == JOURNAL:
            self._forgotten = self._journal[0][0]  # changes up to this revision are no longer listed
        self._journal.append((self.revision, idx))
        return idx

    def changed_since(self, revision: int) -> np.ndarray | None:
        """Indices of the items upserted after `revision` of this catalogue, or None when that
        is not known (another catalogue's revision, or further back than the journal)."""
        if revision == self.revision:
            return np.empty(0, dtype=np.int64)
        if revision < self._base_revision or revision < self._forgotten:
            return None
        changed = []
        for r, i in reversed(self._journal):  # newest first: stop at the first change already seen
            if r <= revision:
                break
            changed.append(i)
        return np.unique(np.asarray(changed, dtype=np.int64))

    def created_array(self) -> np.ndarray:
        return self.created_ts[: len(self)]

    def category_codes(self) -> np.ndarray:
        """Each item's category as an index into `categories` (-1: none)."""
        return self.category_idx[: len(self)]

    def upsert_many(self, records: list[ItemRecord]) -> None:
        for record in records:
            self.upsert(record)

    def record(self, idx: int) -> ItemRecord:
        return self._records[idx]

    def get(self, item_id: str) -> ItemRecord | None:
        idx = self.item_ids.get(item_id)
        return None if idx is None else self._records[idx]

    def category_of(self, idx: int) -> str | None:
        return self._records[idx].category

    def title_of(self, idx: int) -> str:
        record = self._records[idx]
        return record.title or record.item_id

    def category_mask(self, category: str) -> np.ndarray:
        n = len(self)
        cat = self.categories.get(category)
        if cat is None:
            return np.zeros(n, dtype=bool)
        return self.category_idx[:n] == cat

    def active_mask(self) -> np.ndarray:
        return self.active[: len(self)]

    def servable_mask(self, serve_unknown: bool = False) -> np.ndarray:
        """Items that may appear in a served list: active, and in the catalogue unless
        `serve_unknown` (the catalogue policy, docs/architecture.md)."""
        n = len(self)
        return self.active[:n] if serve_unknown else self.active[:n] & self.listed[:n]

    def price_array(self) -> np.ndarray:
        return self.price[: len(self)]

    def records(self) -> list[ItemRecord]:
        return self._records

    def record_image(self) -> tuple[list[ItemRecord], dict[int, ItemRecord]]:
        """The records as of now without copying the list (a background snapshot's capture,
        writers held still; slicing 100k records took 1.3 ms under the lock at 10M events): the
        live list (append-only but for upserts) and the records upserts replace from now on, by
        index. Read a record as `replaced.get(i, live[i])` with `live[i]` read first; end with
        `close_record_image`."""
        replaced: dict[int, ItemRecord] = {}
        self._record_images.append(replaced)
        return self._records, replaced

    def close_record_image(self, replaced: dict[int, ItemRecord]) -> None:
        self._record_images = [d for d in self._record_images if d is not replaced]


def _grown(array: np.ndarray, capacity: int, fill: Any) -> np.ndarray:
    out = np.full(capacity, fill, dtype=array.dtype)
    out[: len(array)] = array
    return out
