"""Popularity baselines: time-decayed trending and all-time popular, over the live counters."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from pulserec.decay import LN2
from pulserec.models.base import PickleMixin, Query, Reason
from pulserec.models.interactions import Interactions
from pulserec.online.catalog import Catalog
from pulserec.online.popularity import Popularity


class Trending(PickleMixin):
    """Items by weighted event count decayed with a half-life (what is hot now)."""

    name: ClassVar[str] = "trending"
    reason_kind: ClassVar[str] = "trending"

    def __init__(self, popularity: Popularity | None = None, halflife: float = 7 * 86_400.0) -> None:
        self.popularity = popularity if popularity is not None else Popularity(halflife)
        self.halflife = LN2 / self.popularity.trending.rate
        self.catalog: Catalog | None = None

    def fit(self, data: Interactions, catalog: Catalog | None = None) -> Trending:
        popularity = Popularity(self.halflife)
        popularity.add_many(data.items, data.weights.astype(np.float64), data.timestamps)
        self.popularity = popularity
        self.catalog = catalog
        return self

    def _raw(self, n_items: int) -> np.ndarray:
        return self.popularity.trending_scores(n_items)

    def score(self, query: Query, n_items: int) -> np.ndarray | None:
        scores = self._raw(n_items)
        return scores if scores.any() else None

    def similar(self, item: int, n_items: int) -> np.ndarray | None:
        return None

    def explain(self, query: Query, items: np.ndarray) -> list[Reason | None]:
        catalog = self.catalog
        return [
            Reason(self.reason_kind, detail=catalog.category_of(int(i)) if catalog and int(i) < len(catalog) else None)
            for i in items
        ]


class Popular(Trending):
    """Items by all-time weighted event count."""

    name: ClassVar[str] = "popular"
    reason_kind: ClassVar[str] = "popular"

    def _raw(self, n_items: int) -> np.ndarray:
        return self.popularity.all_time(n_items)
