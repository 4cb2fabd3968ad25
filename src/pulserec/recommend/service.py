"""Recommendation, session and similar-item answers from the live state and the model set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pulserec.config import Settings
from pulserec.models.base import Query, Reason, Recommender, scored
from pulserec.models.item_knn import ItemKNN
from pulserec.models.query import build_query
from pulserec.online.base import State
from pulserec.recommend.model_set import DEFAULT_STRATEGY, ModelSet
from pulserec.recommend.reasons import render

__all__ = ["DEFAULT_STRATEGY", "Answer", "Filters", "RecommendationService", "Recommended", "top_n", "trending_list"]


@dataclass(frozen=True)
class Filters:
    """Business rules applied to every candidate list."""

    category: str | None = None
    exclude_seen: bool = True
    exclude: frozenset[str] = frozenset()
    min_price: float | None = None
    max_price: float | None = None
    include_inactive: bool = False


@dataclass
class Recommended:
    item_id: str
    score: float
    reason: str
    source: str
    title: str | None = None
    category: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "score": self.score, "reason": self.reason, "source": self.source,
                "title": self.title, "category": self.category}


@dataclass
class Answer:
    items: list[Recommended]
    strategy: str
    cold_start: bool
    history_size: int


class RecommendationService:
    """Turns dense model scores into filtered, explained lists; the models are its `ModelSet`."""

    def __init__(self, state: State, settings: Settings, models: ModelSet | None = None) -> None:
        self.state = state
        self.settings = settings
        self.models = models if models is not None else ModelSet(state, settings)
        self.trending = self.models.trending  # the backfill of short lists

    def rebound(self, state: State) -> RecommendationService:
        """The same service over another state, serving the same models re-bound to it."""
        return RecommendationService(state, self.settings, self.models.rebound(state))

    # The model set's names, for the callers that reach it through the service.
    @property
    def strategies(self) -> dict[str, Recommender]:
        return self.models.strategies

    @property
    def item_knn(self) -> ItemKNN:
        return self.models.item_knn

    def register(self, model: Recommender, name: str | None = None) -> None:
        self.models.register(model, name)

    def strategy(self, name: str | None) -> tuple[str, Recommender]:
        return self.models.get(name)

    # -- queries ----------------------------------------------------------------------------
    def query_for(self, owner_key: str | None, context: dict[str, Any] | None = None) -> Query:
        state = self.state
        owner = state.owners.get(owner_key) if owner_key is not None else None
        return build_query(
            owner,
            state.histories.recent(owner),
            max_items=self.settings.query_len,
            position_decay=self.settings.position_decay,
            now=state.now,
            n_items=len(state.catalog),
            context=context,
        )

    def candidates(self, owner: int | None, filters: Filters) -> np.ndarray:
        catalog = self.state.catalog
        n = len(catalog)
        mask = np.ones(n, dtype=bool) if filters.include_inactive else catalog.active_mask().copy()
        if filters.category is not None:
            mask &= catalog.category_mask(filters.category)
        if filters.min_price is not None or filters.max_price is not None:
            price = catalog.price_array()
            low = -np.inf if filters.min_price is None else filters.min_price
            high = np.inf if filters.max_price is None else filters.max_price
            with np.errstate(invalid="ignore"):
                mask &= (price >= low) & (price <= high)
        if filters.exclude_seen and owner is not None:
            seen = self.state.histories.seen(owner)
            if seen:
                mask[np.fromiter(seen, dtype=np.int64, count=len(seen))] = False
        for item_id in filters.exclude:
            idx = catalog.item_ids.get(item_id)
            if idx is not None:
                mask[idx] = False
        return mask

    def recommend(
        self,
        owner_key: str | None,
        n: int,
        filters: Filters = Filters(),
        strategy: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> Answer:
        name, model = self.strategy(strategy)
        query = self.query_for(owner_key, context)
        mask = self.candidates(query.user, filters)
        n_items = len(mask)
        result = scored(model, query, n_items) if n_items else None  # this request's scores and reasons
        scores = result.scores if result else None
        picks = np.empty(0, dtype=np.int64)
        reasons: list[Reason | None] = []
        if result is not None and scores is not None:
            picks = top_n(scores, n, mask & (scores > 0))
            reasons = result.explain(picks) if len(picks) else []
        out = self._render(picks, scores, reasons, name)
        cold = scores is None or query.is_cold
        if len(out) < n and model is not self.trending:
            out += self._backfill(query, n - len(out), mask, picks)
        return Answer(out, name, cold, len(query.items))

    def _backfill(self, query: Query, n: int, mask: np.ndarray, taken: np.ndarray) -> list[Recommended]:
        """Top up a short list with trending items (cold start, or a sparse neighbourhood)."""
        mask = mask.copy()
        mask[taken] = False
        scores = self.trending.score(query, len(mask))
        if scores is None:
            return []
        picks = top_n(scores, n, mask & (scores > 0))
        reasons = self.trending.explain(query, picks)
        return self._render(picks, scores, reasons, self.trending.name, scale=1e-6)

    def _render(self, picks, scores, reasons, source: str, scale: float = 1.0) -> list[Recommended]:
        catalog = self.state.catalog
        out = []
        for item, reason in zip(picks, reasons):
            record = catalog.record(int(item))
            out.append(
                Recommended(
                    item_id=record.item_id,
                    score=round(float(scores[item]) * scale, 9),
                    reason=render(reason, catalog, source),
                    source=source,
                    title=record.title,
                    category=record.category,
                )
            )
        return out

    def similar(self, item_id: str, n: int, filters: Filters = Filters(), strategy: str | None = None) -> list[Recommended] | None:
        """Items most similar to `item_id`, or None if the item is unknown."""
        catalog = self.state.catalog
        item = catalog.item_ids.get(item_id)
        if item is None:
            return None
        name, model = self.strategy(strategy)
        mask = self.candidates(None, filters)
        mask[item] = False
        scores = model.similar(item, len(mask))
        if scores is None:
            return []
        picks = top_n(scores, n, mask & (scores > 0))
        reason = Reason("similar_item", item=item)
        return self._render(picks, scores, [reason] * len(picks), name)


def trending_list(state: State, n: int = 10) -> list[dict[str, Any]]:
    """The top-n active items by decayed trending score, with titles and all-time event counts
    (the dashboard's list; read inside one read scope: `Engine.read`)."""
    catalog = state.catalog
    size = len(catalog)
    if size == 0:
        return []
    scores = state.popularity.trending_scores(size)
    events = state.popularity.events
    out = []
    for idx in top_n(scores, n, catalog.active_mask() & (scores > 0)).tolist():
        record = catalog.record(idx)
        out.append({"item_id": record.item_id, "title": record.title, "category": record.category,
                    "score": round(float(scores[idx]), 4), "events": int(events[idx]) if idx < len(events) else 0})
    return out


def top_n(scores: np.ndarray, n: int, mask: np.ndarray) -> np.ndarray:
    """Indices of the n best-scoring items where mask is True, best first (ties: lower index).

    A selection pass first: split the scores into blocks and take each block's maximum. The
    n-th largest block maximum is a lower bound for the n-th largest score (the n best blocks
    each hold a score at least that high), so only scores at or above it can be in the top n.
    That leaves a few dozen scores to sort instead of a partition of the whole catalogue
    (30 us instead of 130 us for 10 of 10k items)."""
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    values = np.where(mask, scores, -np.inf)
    block = min(64, len(values) // (4 * n))
    if block >= 4:
        full = len(values) // block * block
        maxima = values[:full].reshape(-1, block).max(axis=1)
        if full < len(values):
            maxima = np.append(maxima, values[full:].max())
    else:  # n is a large share of the catalogue: every score is its own block
        maxima = values
    bound = np.partition(maxima, len(maxima) - n)[len(maxima) - n] if len(maxima) > n else -np.inf
    candidates = np.flatnonzero(values >= bound) if bound > -np.inf else np.flatnonzero(mask)
    return candidates[np.lexsort((candidates, -scores[candidates]))[:n]]
