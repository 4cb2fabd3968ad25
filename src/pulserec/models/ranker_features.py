"""Recall and feature extraction for the two-stage ranker, vectorised over the candidate set.

Stage one (:func:`recall`) asks every source model for its dense scores and keeps each one's
top-`depth` items among the allowed ones (active, not yet seen by the user); the union is the
candidate set. Stage two turns each candidate into a feature row (:class:`FeatureBuilder`):

- per source: its normalised score and the item's rank in its list (``depth`` if not in it);
- item: log all-time and trending popularity, age in days, log price, category (categorical);
- user x item: the user's decayed interest share in the item's category, log hours since the
  user last touched that category, the length of the user's history;
- request context: hour of day, weekday, device and location (categorical codes);
- the user's declared attributes (issue 14.5: the setting `user_attributes` that training users
  declare, e.g. age band, country, plan): one categorical code per attribute (`user:<name>`) and
  the segment model's score for the candidate (`segment_score`: p(item | the user's segments),
  normalised per query). A model trained without attributes has neither (older files load so).

Interactions such as "on mobile this user buys category X" or "users on plan pro buy category
X" are not hand-coded: device, plan and category are plain categorical inputs and the learner
finds their interactions.

Categorical codes: 0 means unknown/missing; known values are 1..K, fixed when the builder is
fitted (the vocabularies travel with the saved model)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

import numpy as np

from pulserec.config import Settings
from pulserec.models.base import Query, Recommender, pad_scores
from pulserec.models.blend import normalised
from pulserec.online.catalog import Catalog
from pulserec.online.history import Histories
from pulserec.online.popularity import Popularity
from pulserec.online.base import ProfileLookup

DAY = 86_400.0
HOUR = 3_600.0
#: log1p(hours) used when the user never touched the item's category (about ten years).
NEVER_HOURS_LOG = math.log1p(24 * 365 * 10)
UNKNOWN = -1.0

ITEM_FEATURES = ("pop_all_log", "pop_trending_log", "item_age_days", "price_log")
USER_FEATURES = ("category_affinity", "category_recency_log_h", "history_len")
CONTEXT_FEATURES = ("hour", "weekday")
CATEGORICAL_FEATURES = ("item_category", "device", "location")
SEGMENT_FEATURE = "segment_score"
ATTRIBUTE_PREFIX = "user:"


class SegmentScores(Protocol):
    """The segment model's view (models/demographic.py:Demographic.distribution)."""

    def distribution(self, attrs: Mapping[str, Any], n_items: int) -> np.ndarray | None: ...


class FeatureContext(Protocol):
    """What feature extraction reads at request time (an :class:`OnlineState` satisfies it)."""

    catalog: Catalog
    popularity: Popularity
    profiles: ProfileLookup
    histories: Histories
    settings: Settings  # the catalogue policy (serve_unknown_items)


@dataclass
class Vocabulary:
    """Strings -> categorical codes 1..K (0 = unknown), frozen at fit time."""

    codes: dict[str, int] = field(default_factory=dict)

    @classmethod
    def fit(cls, values: Iterable[Any]) -> Vocabulary:
        distinct = sorted({str(v) for v in values if v is not None and v == v and str(v)})
        return cls({value: code for code, value in enumerate(distinct, start=1)})

    def code(self, value: Any) -> int:
        return self.codes.get(str(value), 0) if value is not None else 0

    def __len__(self) -> int:
        return len(self.codes)


@dataclass
class Recall:
    """The candidate set of one query with each source's view of every candidate."""

    items: np.ndarray  # candidate item indices, ascending
    scores: np.ndarray  # (n_sources, n_candidates): source score normalised to [0, 1]
    ranks: np.ndarray  # (n_sources, n_candidates): rank in the source's top list, `depth` if absent

    def __len__(self) -> int:
        return len(self.items)

    def subset(self, positions: np.ndarray) -> Recall:
        return Recall(self.items[positions], self.scores[:, positions], self.ranks[:, positions])


def allowed_items(state: FeatureContext, query: Query, n_items: int) -> np.ndarray:
    """Items a recommendation may contain: servable (active, listed), not yet seen by the query's user."""
    mask = state.catalog.servable_mask(state.settings.serve_unknown_items)[:n_items].copy()
    if len(mask) < n_items:
        mask = np.concatenate([mask, np.zeros(n_items - len(mask), dtype=bool)])
    seen = state.histories.seen(query.user)
    if seen:
        seen_idx = np.fromiter(seen, dtype=np.int64, count=len(seen))
        mask[seen_idx[seen_idx < n_items]] = False
    return mask


def _source_views(
    sources: Mapping[str, Recommender], query: Query, n_items: int, depth: int, allowed: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per source: dense normalised scores and its top-`depth` allowed items, best first."""
    dense_scores, tops = [], []
    for model in sources.values():
        raw = model.score(query, n_items)
        if raw is None:
            dense_scores.append(np.zeros(n_items))
            tops.append(np.empty(0, dtype=np.int64))
            continue
        raw = np.asarray(pad_scores(np.asarray(raw, dtype=np.float64), n_items), dtype=np.float64)
        eligible = np.flatnonzero(allowed & np.isfinite(raw) & (raw > 0))
        values = raw[eligible]
        if len(eligible) > depth:
            keep = np.argpartition(-values, depth - 1)[:depth]
            eligible, values = eligible[keep], values[keep]
        tops.append(eligible[np.lexsort((eligible, -values))])
        dense_scores.append(normalised(raw))
    return dense_scores, tops


def _gather(dense_scores: list[np.ndarray], tops: list[np.ndarray], items: np.ndarray, depth: int) -> Recall:
    n_sources = len(dense_scores)
    scores = np.zeros((n_sources, len(items)))
    ranks = np.full((n_sources, len(items)), float(depth))
    for k, (dense, top) in enumerate(zip(dense_scores, tops)):
        scores[k] = dense[items]
        if len(top):
            order = np.argsort(top)
            pos = np.searchsorted(top[order], items)
            pos = np.minimum(pos, len(top) - 1)
            found = top[order][pos] == items
            ranks[k, found] = order[pos[found]]
    return Recall(items, scores, ranks)


def recall(
    sources: Mapping[str, Recommender], query: Query, n_items: int, depth: int, allowed: np.ndarray
) -> Recall:
    """Union of every source's top-`depth` allowed items, with each source's score and rank."""
    dense_scores, tops = _source_views(sources, query, n_items, depth, allowed)
    items = np.unique(np.concatenate(tops)) if tops else np.empty(0, dtype=np.int64)
    return _gather(dense_scores, tops, items.astype(np.int64), depth)


def describe(
    sources: Mapping[str, Recommender], query: Query, n_items: int, depth: int, allowed: np.ndarray, items: np.ndarray
) -> Recall:
    """Each source's view of a given item list (e.g. the items of a logged impression)."""
    dense_scores, tops = _source_views(sources, query, n_items, depth, allowed)
    return _gather(dense_scores, tops, np.asarray(items, dtype=np.int64), depth)


@dataclass
class FeatureBuilder:
    """Turns a :class:`Recall` into a feature matrix; fitted vocabularies make it reproducible."""

    sources: tuple[str, ...]
    depth: int = 100
    categories: Vocabulary = field(default_factory=Vocabulary)
    devices: Vocabulary = field(default_factory=Vocabulary)
    locations: Vocabulary = field(default_factory=Vocabulary)
    #: Declared user attribute -> its values' codes, in column order (empty: no attribute features).
    attributes: dict[str, Vocabulary] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._category_codes = np.zeros(1, dtype=np.float64)
        self._category_codes_for = -1

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    @classmethod
    def fit(cls, sources: Sequence[str], depth: int, category_names: Iterable[str], contexts: Iterable[Mapping[str, Any]],
            user_attrs: Iterable[Mapping[str, Any]] = (), attributes: Sequence[str] = ()) -> FeatureBuilder:
        """Vocabularies from the training data; an attribute of `attributes` becomes a feature
        when some training user declares it (`user_attrs`: their attributes)."""
        contexts, user_attrs = list(contexts), list(user_attrs)
        declared = {a: Vocabulary.fit(u.get(a) for u in user_attrs) for a in attributes}
        return cls(
            tuple(sources),
            depth,
            Vocabulary.fit(category_names),
            Vocabulary.fit(c.get("device") for c in contexts),
            Vocabulary.fit(c.get("location") for c in contexts),
            {a: vocabulary for a, vocabulary in declared.items() if len(vocabulary)},
        )

    @property
    def names(self) -> list[str]:
        per_source = [f"{s}:{kind}" for s in self.sources for kind in ("score", "rank")]
        segment = [SEGMENT_FEATURE] if self.attributes else []
        return [*per_source, *ITEM_FEATURES, *USER_FEATURES, *CONTEXT_FEATURES, *segment, *CATEGORICAL_FEATURES,
                *(ATTRIBUTE_PREFIX + a for a in self.attributes)]

    @property
    def categorical(self) -> list[int]:
        """Column positions of the categorical features (the last ones)."""
        n, k = len(self.names), len(CATEGORICAL_FEATURES) + len(self.attributes)
        return list(range(n - k, n))

    def without_source(self, matrix: np.ndarray, source: int, depth: int) -> np.ndarray:
        """A copy of `matrix` as if source number `source` had not recalled any candidate."""
        out = matrix.copy()
        out[:, 2 * source] = 0.0
        out[:, 2 * source + 1] = float(depth)
        return out

    # -- blocks ------------------------------------------------------------------------------
    def _category_code_table(self, catalog: Catalog) -> np.ndarray:
        """Code per catalogue category index, plus a trailing 0 for uncategorised (index -1)."""
        n = len(catalog.categories)
        if n != self._category_codes_for:
            codes = [self.categories.code(name) for name in catalog.categories.ids]
            self._category_codes = np.array([*codes, 0], dtype=np.float64)
            self._category_codes_for = n
        return self._category_codes

    def _item_block(self, state: FeatureContext, items: np.ndarray, now: float) -> np.ndarray:
        catalog, popularity = state.catalog, state.popularity
        n = int(items.max()) + 1 if len(items) else 0
        all_time = np.log1p(np.maximum(popularity.all_time(n)[items], 0.0))
        trending = np.log1p(np.maximum(popularity.trending.decayed(n, max(now, popularity.now))[items], 0.0))
        created = catalog.created_ts[items]
        age = np.where(np.isfinite(created), np.maximum(now - created, 0.0) / DAY, UNKNOWN)
        price = catalog.price[items]
        price = np.where(np.isfinite(price) & (price >= 0), np.log1p(np.where(np.isfinite(price), price, 0.0)), UNKNOWN)
        return np.column_stack([all_time, trending, age, price])

    def _user_block(self, state: FeatureContext, query: Query, category_idx: np.ndarray) -> np.ndarray:
        n_categories = len(state.catalog.categories)
        share = np.zeros(n_categories + 1)
        recency = np.full(n_categories + 1, NEVER_HOURS_LOG)
        profile = state.profiles.get(query.user) if query.user is not None else None
        if profile is not None and len(profile.categories):
            interests = profile.categories.at(query.now)
            last = profile.categories.last_times()
            total = sum(interests.values())
            for name, value in interests.items():
                idx = state.catalog.categories.get(name)
                if idx is None:
                    continue
                share[idx] = value / total if total > 0 else 0.0
                recency[idx] = math.log1p(max(query.now - last[name], 0.0) / HOUR)
        history = np.full(len(category_idx), math.log1p(len(query.items)))
        return np.column_stack([share[category_idx], recency[category_idx], history])

    def _context_values(self, query: Query) -> tuple[float, float, float, float]:
        context = query.context or {}
        moment = datetime.fromtimestamp(float(context.get("ts", query.now) or 0.0), tz=timezone.utc)
        hour = float(context.get("hour", moment.hour))
        weekday = float(context.get("weekday", moment.weekday()))
        return hour, weekday, float(self.devices.code(context.get("device"))), float(self.locations.code(context.get("location")))

    def _attribute_block(self, query: Query, items: np.ndarray, segment: SegmentScores | None) -> list[np.ndarray]:
        """The segment score per candidate and one code column per declared attribute."""
        if not self.attributes:
            return []
        n = len(items)
        dense = segment.distribution(query.attrs, max(query.n_items, int(items.max()) + 1)) if segment is not None else None
        scores = normalised(np.asarray(dense, dtype=np.float64))[items] if dense is not None else np.zeros(n)
        codes = [np.full(n, float(vocabulary.code(query.attrs.get(a)))) for a, vocabulary in self.attributes.items()]
        return [scores[:, None], np.column_stack(codes)]

    # -- public ------------------------------------------------------------------------------
    def transform(self, state: FeatureContext, query: Query, candidates: Recall,
                  segment: SegmentScores | None = None) -> np.ndarray:
        """Feature matrix (n_candidates, len(names)), finite everywhere. `segment` gives the
        segment scores (with attribute features; none: 0) of the query's `attrs`."""
        items = candidates.items
        n = len(items)
        if n == 0:
            return np.empty((0, len(self.names)))
        category_idx = state.catalog.category_idx[items].astype(np.int64)  # -1 -> trailing slot
        per_source = np.empty((n, 2 * len(self.sources)))
        per_source[:, 0::2] = candidates.scores.T
        per_source[:, 1::2] = candidates.ranks.T
        hour, weekday, device, location = self._context_values(query)
        categories = self._category_code_table(state.catalog)[category_idx]
        attributes = self._attribute_block(query, items, segment)
        numeric_context = np.column_stack([np.full(n, hour), np.full(n, weekday)])
        categorical = np.column_stack([categories, np.full(n, device), np.full(n, location)])
        blocks = [per_source, self._item_block(state, items, query.now), self._user_block(state, query, category_idx),
                  numeric_context, *attributes[:1], categorical, *attributes[1:]]
        return np.nan_to_num(np.hstack(blocks), nan=UNKNOWN, posinf=0.0, neginf=0.0)
