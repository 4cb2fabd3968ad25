"""The business rules every candidate list passes: active items, a category, a price range,
items to exclude and, for a known owner, the items they have seen."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pulserec.online.base import State


@dataclass(frozen=True)
class Filters:
    """Business rules applied to every candidate list."""

    category: str | None = None
    exclude_seen: bool = True
    exclude: frozenset[str] = frozenset()
    min_price: float | None = None
    max_price: float | None = None
    include_inactive: bool = False


def candidate_mask(state: State, owner: int | None, filters: Filters) -> np.ndarray:
    """Boolean mask over the catalogue of the items `filters` let through for `owner`."""
    catalog = state.catalog
    n = len(catalog)
    # The catalogue policy: only active, listed items (unless serve_unknown_items).
    mask = np.ones(n, dtype=bool) if filters.include_inactive else catalog.servable_mask(state.settings.serve_unknown_items).copy()
    if filters.category is not None:
        mask &= catalog.category_mask(filters.category)
    if filters.min_price is not None or filters.max_price is not None:
        price = catalog.price_array()
        low = -np.inf if filters.min_price is None else filters.min_price
        high = np.inf if filters.max_price is None else filters.max_price
        with np.errstate(invalid="ignore"):
            mask &= (price >= low) & (price <= high)
    if filters.exclude_seen and owner is not None:
        seen = state.histories.seen(owner)
        if seen:
            mask[np.fromiter(seen, dtype=np.int64, count=len(seen))] = False
    for item_id in filters.exclude:
        idx = catalog.item_ids.get(item_id)
        if idx is not None:
            mask[idx] = False
    return mask
