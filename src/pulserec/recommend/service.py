"""Recommendation, session and similar-item answers from the live state and the model set."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pulserec.config import Settings
from pulserec.events import SESSION_PREFIX
from pulserec.decay import read_clock
from pulserec.models.base import Query, Reason, Recommender, scored
from pulserec.models.demographic import declared_attributes
from pulserec.models.blend import normalised
from pulserec.models.item_knn import ItemKNN
from pulserec.models.query import recent_of, serving_query
from pulserec.models.search_intent import LearnedSearches, search_strength, with_intent
from pulserec.store.segments import Segments
from pulserec.store.social import SocialGraph
from pulserec.online.base import State
from pulserec.online.history import Histories
from pulserec.recommend.model_set import DEFAULT_STRATEGY, ModelSet
from pulserec.recommend.diversity import Diversity, cooc_similarity, rerank
from pulserec.recommend.exploration import Exposure, explore
from pulserec.recommend.filter_program import Env
from pulserec.recommend.filters import FilterCompiler, Filters
from pulserec.recommend.promotions import compose
from pulserec.recommend.reasons import render
from pulserec.recommend.top_n import top_n, trending_list

__all__ = ["DEFAULT_STRATEGY", "Answer", "Filters", "RecommendationService", "Recommended", "top_n", "trending_list"]  # re-exported


#: The reason of an item given a slot by exploration.
EXPLORING = "new here: exploring"


@dataclass
class Recommended:
    item_id: str
    score: float
    reason: str
    source: str
    title: str | None = None
    category: str | None = None
    promotion: str | None = None  # the promotion that placed or boosted it
    explored: bool = False  # given a slot by exploration (recommend/exploration.py)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"item_id": self.item_id, "score": self.score, "reason": self.reason, "source": self.source,
                               "title": self.title, "category": self.category}
        if self.promotion:
            out["promotion"] = self.promotion
        if self.explored:
            out["explored"] = True
        return out


@dataclass
class Answer:
    items: list[Recommended]
    strategy: str
    cold_start: bool
    history_size: int


class RecommendationService:
    """Turns dense model scores into filtered, explained lists; the models are its `ModelSet`."""

    def __init__(self, state: State, settings: Settings, models: ModelSet | None = None,
                 learned: LearnedSearches | None = None, graph: SocialGraph | None = None,
                 segments: Segments | None = None) -> None:
        self.state = state
        self.settings = settings
        self.graph = graph  # who follows whom (issue 14.4); None: no ties (offline replays)
        self.segments = segments  # users' declared attributes and their segments (issue 14.5)
        self.models = models if models is not None else ModelSet(state, settings, learned, segments)
        self.trending = self.models.trending  # the backfill of short lists
        self.filters = FilterCompiler(state.catalog)  # compiled filters, cached per catalogue revision
        self.exposure: Exposure | None = None  # impressions and clicks per item (the engine sets it)
        self._rng = np.random.default_rng()

    def rebound(self, state: State) -> RecommendationService:
        """The same service over another state, serving the same models re-bound to it."""
        out = RecommendationService(state, self.settings, self.models.rebound(state), graph=self.graph,
                                   segments=self.segments)
        out.exposure = self.exposure
        return out

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
    def query_for(self, owner_key: str | None, context: dict[str, Any] | None = None, *,
                  with_attrs: bool = False, seen: Collection[int] | None = None) -> Query:
        """The owner's query: history, active search, ties; their declared attributes when they
        have no history (the segment model's cold start) or `with_attrs` (a model reads them).
        `seen`: the owner's seen items when the caller has read them already."""
        state = self.state
        owner = state.owners.get(owner_key) if owner_key is not None else None
        query = serving_query(owner, recent_of(state.histories, owner), self.settings, now=state.now,
                              n_items=len(state.catalog), context=context,
                              seen=state.histories.seen(owner) if seen is None else seen,
                              support=state.histories.owner_counts)
        search, ties = self.active_search(owner), self.ties_of(owner_key)
        attrs = self.attrs_of(owner_key) if query.is_cold or with_attrs else {}
        return replace(query, search=search, ties=ties, attrs=attrs) if search is not None or ties or attrs else query

    def attrs_of(self, owner_key: str | None) -> dict[str, Any]:
        """A user's declared attributes (`user_attributes`) for the segment model; none for sessions."""
        if self.segments is None or owner_key is None or owner_key.startswith(SESSION_PREFIX):
            return {}
        return declared_attributes(self.segments.attrs_of(owner_key), self.settings.user_attributes)

    def declared_attrs(self, owner_key: str | None) -> Callable[[], dict[str, Any]] | None:
        """How a request's filters read the user's declared attributes (all of them, not only
        `user_attributes`: `user.attrs.NAME` in docs/filters.md); None for sessions and no owner.
        A callable: the store is read only when an expression asks."""
        if self.segments is None or owner_key is None or owner_key.startswith(SESSION_PREFIX):
            return None
        segments = self.segments
        return lambda: segments.attrs_of(owner_key)

    def ties_of(self, owner_key: str | None) -> tuple[tuple[int, float, str], ...]:
        """The owner's strongest ties that the state knows (followed users who did something)."""
        if self.graph is None or owner_key is None or owner_key.startswith(SESSION_PREFIX):
            return ()
        owners = self.state.owners
        ties = ((owners.get(other), weight, other) for other, weight, _ in
                self.graph.ties(owner_key, limit=self.settings.social_max_ties))
        return tuple((owner, weight, other) for owner, weight, other in ties if owner is not None)

    def active_search(self, owner: int | None) -> tuple[str, float] | None:
        """The owner's latest search and how much it still counts (None: none, or faded)."""
        mark = self.state.profiles.search_mark(owner) if owner is not None else None
        if mark is None:
            return None
        text, ts, since = mark
        s = self.settings
        strength = search_strength(s.search_intent_weight, s.search_intent_halflife, since, self.state.now - ts,
                                   s.session_gap)
        return (text, strength) if strength > 0 else None

    def clock(self) -> float:
        """`now` in filter expressions: the engine's clock (see decay.read_clock)."""
        return read_clock(self.state.now, time.time(), self.settings.live_clock_window)

    def candidates(self, owner: int | None, filters: Filters, context: dict[str, Any] | None = None,
                   owner_key: str | None = None) -> np.ndarray:
        return self.filters.mask(self.state, owner, filters, now=self.clock(), context=context,
                                 attrs_of=self.declared_attrs(owner_key))

    def recommend(
        self,
        owner_key: str | None,
        n: int,
        filters: Filters = Filters(),
        strategy: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> Answer:
        name, model = self.strategy(strategy)
        owner = self.state.owners.get(owner_key) if owner_key is not None else None
        histories = self.state.histories  # seen read once: the query's history and the filters' `seen`
        seen = histories.seen_items(owner) if isinstance(histories, Histories) else histories.seen(owner)
        query = self.query_for(owner_key, context, with_attrs=name in self.models.attribute_readers, seen=seen)
        env = self.filters.env(self.state, query.user, now=self.clock(), seen=seen, context=context,
                               attrs_of=self.declared_attrs(owner_key))
        mask = self.filters.mask(self.state, query.user, filters, now=env.now, env=env)
        n_items = len(mask)
        result = scored(model, query, n_items) if n_items else None  # this request's scores and reasons
        if n_items and query.search is not None and model is not self.models.search:
            # Without a history the search is all the owner has said: it orders the list alone.
            strength = 1.0 if query.is_cold else query.search[1]
            result = with_intent(result, scored(self.models.search, query, n_items), strength)
        scores = result.scores if result else None
        picks = np.empty(0, dtype=np.int64)
        reasons: list[Reason | None] = []
        promoted: list[str | None] = []
        explored: set[int] = set()
        if result is not None and scores is not None:
            fallback = (lambda: self.trending.score(query, n_items)) if filters.promotions else None
            picks, promoted, scores = self._slate(scores, n, mask, filters, env, fallback)
            picks, promoted, explored = self._explore(picks, promoted, mask, n, filters, name)
            reasons = result.explain(picks) if len(picks) else []
        out = self._render(picks, scores, reasons, name, promoted=promoted, explored=explored)
        cold = scores is None or query.is_cold and query.search is None
        if len(out) < n and model is not self.trending:
            out += self._backfill(query, n - len(out), mask, picks, filters)
        return Answer(out, name, cold, len(query.items))

    def _slate(self, scores: np.ndarray, n: int, mask: np.ndarray, filters: Filters, env: Env,
               fallback: Callable[[], np.ndarray | None] | None = None) -> tuple[np.ndarray, list[str | None], np.ndarray]:
        """The picks in slate order, the promotion of each (None: organic) and the scores they
        were cut from (boosted by promotions); `fallback` orders promoted items without a score."""
        if not filters.promotions:
            return self._pick(scores, n, mask & (scores > 0), filters), [], scores
        selected = [(p, self.filters.matching(p.filter, env)) for p in filters.promotions]
        slate, boosted = compose(scores, mask, n, selected, fallback() if fallback else None,
                                 lambda s, k, m: self._pick(s, k, m, filters))
        return slate.picks, slate.promoted, boosted

    def _explore(self, picks: np.ndarray, promoted: list[str | None], mask: np.ndarray, n: int, filters: Filters,
                 strategy: str) -> tuple[np.ndarray, list[str | None], set[int]]:
        """Slots for low-exposure items (the request's share, else the strategy's default)."""
        share = filters.exploration if filters.exploration is not None else self.settings.exploration_defaults.get(strategy, 0.0)
        if share <= 0 or self.exposure is None:
            return picks, promoted, set()
        shown, clicked = self.exposure.arrays(self.state.catalog)
        return explore(picks, promoted, mask, n, share, shown, clicked, self.settings.exploration_max_impressions, self._rng)

    def _pick(self, scores: np.ndarray, n: int, mask: np.ndarray, filters: Filters,
              taken: np.ndarray | None = None) -> np.ndarray:
        """The best n under the slate rules (category cap, MMR diversity), else plain top-n."""
        rules = Diversity(filters.max_per_category, filters.diversity)
        if not rules.active:
            return top_n(scores, n, mask)
        return rerank(scores, mask, n, rules, self.state.catalog.category_codes(), cooc_similarity(self.state.cooc), taken)

    def search_items(self, owner_key: str | None, text: str, n: int, filters: Filters = Filters(exclude_seen=False)) -> list[Recommended]:
        """Items matching `text` (BM25 and what others chose after similar searches), each match
        times (1 + the owner's normalised default score): among equal matches, what they would
        like comes first; without a match nothing is listed. Seen items stay (people search for
        what they know) unless `filters` say otherwise."""
        query = self.query_for(owner_key)
        mask = self.candidates(query.user, filters, owner_key=owner_key)
        n_items = len(mask)
        lexical, learned = self.models.search.parts(text, n_items)
        match = lexical + learned
        personal = scored(self.models.get(None)[1], query, n_items).scores if n_items and not query.is_cold else None
        taste = normalised(np.asarray(personal, dtype=np.float64)) if personal is not None else np.zeros(n_items)
        scores = match * (1.0 + taste)
        picks = top_n(scores, n, mask & (match > 0))
        reasons = [Reason("search", detail=(f'chosen by others who searched "{text}"' if learned[i] > lexical[i] else
                                            f'matches "{text}"') + (", picked for you" if taste[i] > 0 else ""))
                   for i in picks.tolist()]
        return self._render(picks, scores, reasons, self.models.search.name)

    def _backfill(self, query: Query, n: int, mask: np.ndarray, taken: np.ndarray, filters: Filters) -> list[Recommended]:
        """Top up a short list with trending items (cold start, or a sparse neighbourhood)."""
        mask = mask.copy()
        mask[taken] = False
        scores = self.trending.score(query, len(mask))
        if scores is None:
            return []
        picks = self._pick(scores, n, mask & (scores > 0), filters, taken)
        reasons = self.trending.explain(query, picks)
        return self._render(picks, scores, reasons, self.trending.name, scale=1e-6)

    def _render(self, picks, scores, reasons, source: str, scale: float = 1.0,
                promoted: list[str | None] | None = None, explored: set[int] | None = None) -> list[Recommended]:
        catalog = self.state.catalog
        out = []
        for i, (item, reason) in enumerate(zip(picks, reasons)):
            record = catalog.record(int(item))
            promotion = promoted[i] if promoted else None
            exploring = explored is not None and int(item) in explored
            out.append(
                Recommended(
                    item_id=record.item_id,
                    score=round(float(scores[item]) * scale, 9),
                    reason="promoted" if promotion else EXPLORING if exploring else render(reason, catalog, source),
                    source=source,
                    title=record.title,
                    category=record.category,
                    promotion=promotion,
                    explored=exploring,
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
        env = self.filters.env(self.state, None, now=self.clock())
        mask = self.filters.mask(self.state, None, filters, now=env.now, env=env)
        mask[item] = False
        scores = model.similar(item, len(mask))
        if scores is None:
            return []
        picks, promoted, scores = self._slate(scores, n, mask, filters, env)
        reason = Reason("similar_item", item=item)
        return self._render(picks, scores, [reason] * len(picks), name, promoted=promoted)
