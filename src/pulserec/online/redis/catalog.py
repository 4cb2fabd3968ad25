"""The catalogue in Redis, mirrored in-process for filtering.

Records live in Redis (items:rec, items:created) and every change appends the item's index to
catalog:log, whose length is the catalogue version. Each read snapshot returns the log entries
after the version this process holds, with their records, so the local `Catalog` mirror (the
same class the in-memory state uses, hence the same filter masks) is current as of that read:
every process filters on the same catalogue without reading it all per request."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pulserec.online.catalog import Catalog
from pulserec.records import ItemRecord
from pulserec.online.redis.codec import decode_record, encode_float, encode_record

if TYPE_CHECKING:
    from pulserec.ids import IdIndex
    from pulserec.online.redis.state import RedisState


class RedisCatalog:
    """The `Catalog` interface: writes go to Redis, reads to a mirror synced per snapshot."""

    def __init__(self, state: RedisState) -> None:
        self.state = state
        self.mirror = Catalog()
        self.version = 0

    def clear_cache(self) -> None:
        self.mirror = Catalog()
        self.version = 0

    @property
    def mirrored(self) -> int:
        """How many item ids the mirror holds (they are interned in Redis index order)."""
        return len(self.mirror)

    def absorb(self, new_ids: list[bytes], changed: list[bytes], records: list[bytes], created: list[bytes], version: int) -> None:
        """Apply catalogue changes returned by a READ: new ids in index order, then records."""
        for item_id in new_ids:
            self.mirror.intern(item_id.decode())
        latest = {int(idx): (rec, ts) for idx, rec, ts in zip(changed, records, created)}
        for rec, ts in latest.values():
            if rec:
                self.mirror.upsert(decode_record(rec, ts or None))
        self.version = version

    def synced(self) -> Catalog:
        """The mirror, current as of this request's snapshot (or of one READ made now)."""
        if self.state.current_view() is None:
            self.state.snapshot(None, with_vectors=False)
        return self.mirror


    # -- writes ------------------------------------------------------------------------------
    def upsert_many(self, records: list[ItemRecord]) -> None:
        for start in range(0, len(records), 1000):
            chunk = records[start : start + 1000]
            self.state.scripts.upsert_items(args=[
                self.state.keys.prefix, len(chunk), *[r.item_id for r in chunk],
                *[encode_record(r) for r in chunk], *[encode_float(r.created_ts) for r in chunk],
            ])

    def upsert(self, record: ItemRecord) -> int:
        self.upsert_many([record])
        self.state.snapshot(None, with_vectors=False)
        return self.mirror.item_ids.get(record.item_id)  # type: ignore[return-value]

    def intern_many(self, item_ids: list[str], created: list[float | None]) -> np.ndarray:
        """Indices of items, registering new ones (with no metadata, created at first sight)."""
        if not item_ids:
            return np.empty(0, dtype=np.int64)
        records = [encode_record(ItemRecord(item_id=i, listed=False)) for i in item_ids]
        indices = self.state.scripts.intern_many(args=[
            self.state.keys.prefix, "items", len(item_ids), *item_ids, *records, *[encode_float(t) for t in created],
        ])
        return np.asarray(indices, dtype=np.int64)

    # -- reads (the Catalog interface) -------------------------------------------------------
    def __len__(self) -> int:
        return len(self.synced())

    @property
    def item_ids(self) -> IdIndex:
        return self.synced().item_ids

    def record(self, idx: int) -> ItemRecord:
        return self.synced().record(idx)

    def get(self, item_id: str) -> ItemRecord | None:
        return self.synced().get(item_id)

    def category_of(self, idx: int) -> str | None:
        return self.synced().category_of(idx)

    def title_of(self, idx: int) -> str:
        return self.synced().title_of(idx)

    def category_mask(self, category: str) -> np.ndarray:
        return self.synced().category_mask(category)

    def active_mask(self) -> np.ndarray:
        return self.synced().active_mask()

    def servable_mask(self, serve_unknown: bool = False) -> np.ndarray:
        return self.synced().servable_mask(serve_unknown)

    def price_array(self) -> np.ndarray:
        return self.synced().price_array()

    def records(self) -> list[ItemRecord]:
        return self.synced().records()

    @property
    def revision(self) -> int:
        return self.synced().revision

    @property
    def categories(self) -> IdIndex:
        return self.synced().categories

    def changed_since(self, revision: int) -> np.ndarray | None:
        return self.synced().changed_since(revision)

    def created_array(self) -> np.ndarray:
        return self.synced().created_array()

    def category_codes(self) -> np.ndarray:
        return self.synced().category_codes()
