"""Recommendation, session and similar-item answers from the live state and the model set."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from pulserec.config import Settings
from pulserec.decay import read_clock
from pulserec.models.base import Query, Reason, Recommender, scored
from pulserec.models.item_knn import ItemKNN
from pulserec.models.query import serving_query
from pulserec.online.base import State
from pulserec.recommend.model_set import DEFAULT_STRATEGY, ModelSet
from pulserec.recommend.filters import FilterCompiler, Filters
from pulserec.recommend.reasons import render
from pulserec.recommend.top_n import top_n, trending_list

__all__ = ["DEFAULT_STRATEGY", "Answer", "Filters", "RecommendationService", "Recommended", "top_n", "trending_list"]  # re-exported


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
        self.filters = FilterCompiler(state.catalog)  # compiled filters, cached per catalogue revision

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
        return serving_query(owner, state.histories.recent(owner), self.settings, now=state.now,
                             n_items=len(state.catalog), context=context, seen=state.histories.seen(owner))

    def clock(self) -> float:
        """`now` in filter expressions: the engine's clock (see decay.read_clock)."""
        return read_clock(self.state.now, time.time(), self.settings.live_clock_window)

    def candidates(self, owner: int | None, filters: Filters, context: dict[str, Any] | None = None) -> np.ndarray:
        return self.filters.mask(self.state, owner, filters, now=self.clock(), context=context)

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
        mask = self.candidates(query.user, filters, context)
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
