"""Popularity baselines: time-decayed trending and all-time popular, over the live counters."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from pulserec.decay import LN2
from pulserec.models.base import Query, Reason
from pulserec.models.interactions import Interactions
from pulserec.models.persist import SavedState
from pulserec.online.catalog import Catalog
from pulserec.online.popularity import Popularity


class Trending(SavedState):
    """Items by weighted event count decayed with a half-life (what is hot now)."""

    name: ClassVar[str] = "trending"
    reason_kind: ClassVar[str] = "trending"

    def __init__(self, popularity: Popularity | None = None, halflife: float = 7 * 86_400.0) -> None:
        self.popularity = popularity if popularity is not None else Popularity(halflife)
        self.halflife = LN2 / self.popularity.trending.rate
        self.catalog: Catalog | None = None

    def saved_params(self) -> dict[str, Any]:
        return {"halflife": self.halflife}

    def saved_values(self) -> dict[str, Any]:
        """The counters of a batch-fitted popularity (inside a hybrid); the live one is the state's."""
        decay = self.popularity.trending
        values = {"total": self.popularity.total, "events": self.popularity.events, "trending": decay.values,
                  "landmark": decay.landmark, "now": decay.now if math.isfinite(decay.now) else None}
        if hasattr(self, "item_ids"):  # fitted on a log: served through its trained ids (AlignedModel)
            values["item_ids"] = self.item_ids
        return values

    @classmethod
    def from_saved(cls, params: dict[str, Any], values: dict[str, Any]) -> Trending:
        model = cls(halflife=float(params["halflife"]))
        popularity, decay = model.popularity, model.popularity.trending
        popularity.total, popularity.events = values["total"].astype(np.float64), values["events"].astype(np.int64)
        decay.values, decay.landmark = values["trending"].astype(np.float64), values["landmark"]
        decay.now = -math.inf if values["now"] is None else float(values["now"])
        if "item_ids" in values:
            model.item_ids = values["item_ids"]
        return model

    def fit(self, data: Interactions, catalog: Catalog | None = None) -> Trending:
        popularity = Popularity(self.halflife)
        popularity.add_many(data.items, data.weights.astype(np.float64), data.timestamps)
        self.popularity = popularity
        # its indices are the log's (AlignedModel maps them to live ones), not the catalog's: a
        # reason names no category rather than another item's
        self.catalog = None
        self.item_ids = data.item_ids
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
