"""The catalogue as the filter language reads it: columns over item indices, and the cache that
keeps a derived array (an attribute's values, a tag's mask, a compiled static filter) current.

A derived array is computed once per catalogue and then kept current in place: items interned
since are computed and appended, items upserted since (`ItemCatalog.changed_since`) are
recomputed; only a catalogue it cannot follow (another one, or further behind than the
journal) costs a full pass. So a new item in an event costs its own row, not a pass over 1M."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pulserec.online.base import ItemCatalog

Rows = slice | np.ndarray
#: Derived arrays kept per catalogue (one per attribute, tag or static filter): at 1M items each
#: is 1-8 MB, so the oldest is dropped beyond this many (inline expressions can name any tag).
MAX_CACHED = 128


class Cached:
    """One array aligned with the catalogue, kept current by `compute(rows)`."""

    __slots__ = ("array", "revision")

    def __init__(self) -> None:
        self.array: np.ndarray | None = None
        self.revision = 0

    def get(self, catalog: ItemCatalog, compute: Callable[[Rows], np.ndarray]) -> np.ndarray:
        n, revision, array = len(catalog), catalog.revision, self.array
        if array is not None and self.revision == revision and len(array) == n:
            return array
        changed = catalog.changed_since(self.revision) if array is not None and len(array) <= n else None
        if array is None or changed is None:
            array = np.asarray(compute(slice(0, n)))
        else:
            known = len(array)
            if known < n:
                array = np.concatenate([array, np.asarray(compute(slice(known, n)), dtype=array.dtype)])
            changed = changed[changed < known]
            if len(changed):
                array[changed] = compute(changed)
        self.array, self.revision = array, revision
        return array


def _indices(rows: Rows) -> range | np.ndarray:
    return range(*rows.indices(rows.stop)) if isinstance(rows, slice) else rows


class Columns:
    """Item fields over rows of one catalogue. Direct columns (price, created_at, category codes,
    active) are views of the catalogue's arrays; derived ones are `Cached`."""

    def __init__(self, catalog: ItemCatalog) -> None:
        self.catalog = catalog
        self._cache: dict[tuple[Any, ...], Cached] = {}
        self._attr_codes: dict[str, dict[str, int]] = {}

    def __len__(self) -> int:
        return len(self.catalog)

    def cached(self, key: tuple[Any, ...], compute: Callable[[Rows], np.ndarray]) -> np.ndarray:
        slot = self._cache.get(key)
        if slot is None:
            while len(self._cache) >= MAX_CACHED:
                self._cache.pop(next(iter(self._cache)))
            slot = self._cache[key] = Cached()
        return slot.get(self.catalog, compute)

    def forget(self, key: tuple[Any, ...]) -> None:
        self._cache.pop(key, None)

    # -- direct ----------------------------------------------------------------------------
    def number(self, name: str, rows: Rows) -> np.ndarray:
        array = self.catalog.price_array() if name == "price" else self.catalog.created_array()
        return array[rows]

    def active(self, rows: Rows) -> np.ndarray:
        return self.catalog.active_mask()[rows]

    def category_codes(self, rows: Rows) -> np.ndarray:
        return self.catalog.category_codes()[rows]

    def category_code(self, value: str) -> int:
        code = self.catalog.categories.get(value)
        return -2 if code is None else code  # -2 matches no item (-1 is "no category")

    # -- derived (cached) ------------------------------------------------------------------
    def _records(self, rows: Rows) -> list[Any]:
        records = self.catalog.records()
        return [records[i] for i in _indices(rows)]

    def attr_numbers(self, key: str, rows: Rows) -> np.ndarray:
        """An attribute as a number (booleans as 1/0); NaN where missing or text."""
        def compute(part: Rows) -> np.ndarray:
            values = (r.attrs.get(key) for r in self._records(part))
            return np.fromiter((float(v) if isinstance(v, (int, float)) else np.nan for v in values), dtype=np.float64)
        return self.cached(("attr#", key), compute)[rows]

    def attr_codes(self, key: str, rows: Rows) -> np.ndarray:
        """An attribute's text values as codes (`attr_code`); -1 where missing or not text."""
        codes = self._attr_codes.setdefault(key, {})

        def compute(part: Rows) -> np.ndarray:
            values = (r.attrs.get(key) for r in self._records(part))
            return np.fromiter((codes.setdefault(v, len(codes)) if isinstance(v, str) else -1 for v in values), dtype=np.int32)
        return self.cached(("attr$", key), compute)[rows]

    def attr_code(self, key: str, value: str) -> int:
        return self._attr_codes.get(key, {}).get(value, -2)

    def texts(self, name: str, rows: Rows) -> np.ndarray:
        """`title` (case folded) as an object array; "" where missing."""
        def compute(part: Rows) -> np.ndarray:
            return np.array([(r.title or "").casefold() for r in self._records(part)], dtype=object)
        return self.cached(("text", name), compute)[rows]

    def tag_mask(self, tag: str, rows: Rows) -> np.ndarray:
        def compute(part: Rows) -> np.ndarray:
            return np.fromiter((tag in r.tags for r in self._records(part)), dtype=bool)
        return self.cached(("tag", tag), compute)[rows]

    def item_mask(self, item_ids: tuple[str, ...]) -> np.ndarray:
        """The items named (unknown ids name none): a lookup per id, not a pass over the catalogue."""
        mask = np.zeros(len(self.catalog), dtype=bool)
        index = self.catalog.item_ids
        found = [i for i in (index.get(v) for v in item_ids) if i is not None]
        mask[found] = True
        return mask
