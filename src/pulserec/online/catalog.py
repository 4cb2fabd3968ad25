"""In-memory item metadata aligned with item indices (titles, categories, tags, price, status)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pulserec.ids import IdIndex
from pulserec.records import ItemRecord


class Catalog:
    """Items known to the engine, from the catalogue or first seen in an event."""

    def __init__(self) -> None:
        self.item_ids = IdIndex()
        self.categories = IdIndex()
        self._records: list[ItemRecord] = []
        self.category_idx = np.empty(0, dtype=np.int32)
        self.price = np.empty(0, dtype=np.float64)
        self.active = np.empty(0, dtype=bool)
        self.listed = np.empty(0, dtype=bool)
        self.created_ts = np.empty(0, dtype=np.float64)

    def __len__(self) -> int:
        return len(self.item_ids)

    def _grow(self, n: int) -> None:
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
        self._grow(idx + 1)
        self._records.append(ItemRecord(item_id=item_id, created_ts=ts, listed=False))
        self.active[idx] = True
        self.created_ts[idx] = np.nan if ts is None else ts
        return idx

    def upsert(self, record: ItemRecord) -> int:
        idx = self.intern(record.item_id, record.created_ts)
        if record.created_ts is None:
            record.created_ts = self._records[idx].created_ts
        self._records[idx] = record
        self.category_idx[idx] = -1 if record.category is None else self.categories.add(record.category)
        self.price[idx] = np.nan if record.price is None else record.price
        self.active[idx] = record.active
        self.listed[idx] = record.listed
        self.created_ts[idx] = np.nan if record.created_ts is None else record.created_ts
        return idx

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


def _grown(array: np.ndarray, capacity: int, fill: Any) -> np.ndarray:
    out = np.full(capacity, fill, dtype=array.dtype)
    out[: len(array)] = array
    return out
