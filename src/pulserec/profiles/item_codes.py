"""Each item's category and tag codes in the profile tables' name indices, as arrays.

A bulk fold gathers them per row (`category[items]`, `tags[tag_start[items] + k]`) instead of
a Python call per distinct item of every chunk (a 1M-event shop's import looked up ~190k
(chunk, item) pairs, ~6% of its state apply). An item's codes are interned the first time it is
folded and again when its catalogue record is replaced (records are compared by identity: the
catalogue replaces a record on upsert, never changes one in place)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pulserec.ids import IdIndex
from pulserec.records import ItemRecord

#: Tag codes the buffer starts with (it doubles as needed).
START = 1024


class ItemCodes:
    def __init__(self) -> None:
        self._made_from: list[ItemRecord | None] = []  # the record each item's codes came from
        self.category = np.zeros(0, dtype=np.int64)  # -1: no category
        self.tag_start = np.zeros(0, dtype=np.int64)
        self.tag_count = np.zeros(0, dtype=np.int64)
        self.tags = np.zeros(START, dtype=np.int64)  # the items' tag codes, back to back
        self._used = 0

    def refresh(self, items: np.ndarray, records: Sequence[ItemRecord], categories: IdIndex, tags: IdIndex) -> None:
        """Codes for `items` (sorted, distinct) from their current records: names are interned
        in the order of `items`, category before tags, as per-item interning did."""
        if not len(items):
            return
        self._grow(int(items[-1]) + 1)
        made = self._made_from
        listed = items.tolist()
        for item, record in zip(listed, [records[i] for i in listed]):
            if made[item] is not record:
                self._set(item, record, categories, tags)

    def _set(self, item: int, record: ItemRecord, categories: IdIndex, tags: IdIndex) -> None:
        self._made_from[item] = record
        self.category[item] = categories.add(record.category) if record.category else -1
        codes = [tags.add(t) for t in record.tags]
        if self._used + len(codes) > len(self.tags):
            self._repack(len(codes))
        self.tag_start[item], self.tag_count[item] = self._used, len(codes)
        self.tags[self._used : self._used + len(codes)] = codes
        self._used += len(codes)

    def _repack(self, more: int) -> None:
        """Room for `more` codes: the live codes moved to a fresh buffer (a replaced record
        leaves its old codes behind), grown by doubling."""
        counts = self.tag_count
        live = int(counts.sum())
        offsets = np.arange(live) - np.repeat(np.cumsum(counts) - counts, counts)
        packed = self.tags[np.repeat(self.tag_start, counts) + offsets]
        self.tags = np.zeros(max(2 * (live + more), START), dtype=np.int64)
        self.tags[:live] = packed
        self.tag_start = np.cumsum(counts) - counts
        self._used = live

    def _grow(self, n: int) -> None:
        have = len(self._made_from)
        if n <= have:
            return
        size = max(n, 2 * have, 1024)
        self._made_from.extend([None] * (size - have))
        self.category = np.r_[self.category, np.full(size - have, -1, dtype=np.int64)]
        self.tag_start = np.r_[self.tag_start, np.zeros(size - have, dtype=np.int64)]
        self.tag_count = np.r_[self.tag_count, np.zeros(size - have, dtype=np.int64)]
