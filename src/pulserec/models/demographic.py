"""Demographic cold start (issue 14.5): what users with the same declared attributes engage with.

For each declared attribute the user has (`Query.attrs`: age band, gender, country, plan, ...;
the setting `user_attributes` says which count), the segment's engagement (store/segments.py)
is turned into a distribution over items smoothed toward global trending:

    p(item | segment) = (engagement(item) + prior * trending_share(item)) / (sum engagement + prior)

so a segment of three users is mostly trending, one of thousands mostly itself. The user's
scores are the mean over their attributes weighted by each segment's evidence n / (n + prior)
(an attribute value nobody else has adds nothing). Served as `?strategy=segment` and blended into the
default for users without a history (a cold user with attributes): a user with a history is
served by it; the ranker reads :meth:`Demographic.distribution` for everyone, as a feature."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np

from pulserec.models.base import OnlineScorer, Query, Reason, Scored
from pulserec.online.base import ItemCatalog, PopularityCounts


def declared_attributes(attrs: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The attributes of `attrs` that count (`names`: the setting `user_attributes`), unset ones left out."""
    return {a: attrs[a] for a in names if attrs.get(a) is not None}


class SegmentSource(Protocol):
    def engagements(self, segments: Sequence[tuple[str, Any]]) -> list[dict[str, float]]:
        """Item id -> engagement of each (attribute, value)'s users, in the order given."""
        ...


class Demographic(OnlineScorer):
    """Segment distributions of the query's attributes, smoothed toward trending."""

    name: ClassVar[str] = "segment"

    def __init__(self, catalog: ItemCatalog, popularity: PopularityCounts, source: SegmentSource | None,
                 attributes: Sequence[str], prior: float = 20.0) -> None:
        self.catalog = catalog
        self.popularity = popularity
        self.source = source
        self.attributes = tuple(attributes)
        self.prior = prior
        #: (attribute, value) -> (the engagement it was converted from, catalogue size, indices, weights)
        self._dense: dict[tuple[str, Any], tuple[dict[str, float], int, np.ndarray, np.ndarray]] = {}

    def segment_scores(self, attribute: str, value: Any, engagement: dict[str, float],
                       trending_share: np.ndarray) -> tuple[np.ndarray, float]:
        """(p(item | attribute = value) over the catalogue, the segment's evidence n / (n + prior))
        from the segment's `engagement` (see the module docstring)."""
        n_items = len(trending_share)
        idx, weights = self._engaged(attribute, value, engagement)
        counts = np.zeros(n_items, dtype=np.float64)
        inside = idx < n_items
        counts[idx[inside]] = weights[inside]
        total = counts.sum()
        return (counts + self.prior * trending_share) / (total + self.prior), total / (total + self.prior)

    def _engaged(self, attribute: str, value: Any, engagement: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """(item indices, weights) of a segment's engagement, converted from the source's item ids
        once per engagement it returns (it caches them) and catalogue size: converting a
        MovieLens segment per request was ~8 ms of a cold user's 25 ms (benchmarks/behaviours.py)."""
        ids = self.catalog.item_ids
        known = len(ids)
        cached = self._dense.get((attribute, value))
        if cached is not None and cached[0] is engagement and cached[1] == known:
            return cached[2], cached[3]
        pairs = [(ids.get(item_id), weight) for item_id, weight in engagement.items()]
        idx = np.array([i for i, _ in pairs if i is not None], dtype=np.int64)
        weights = np.array([w for i, w in pairs if i is not None], dtype=np.float64)
        self._dense[(attribute, value)] = (engagement, known, idx, weights)
        return idx, weights

    def distribution(self, attrs: Mapping[str, Any], n_items: int) -> np.ndarray | None:
        """p(item | the user's segments) over the catalogue (None: no declared attribute has a
        segment with anyone in it): what the ranker reads as a feature, cold user or not."""
        found = self._parts(attrs, n_items)
        return found[0] if found is not None else None

    def _parts(self, attrs: Mapping[str, Any], n_items: int) -> tuple[np.ndarray, list[tuple[str, Any]], np.ndarray] | None:
        """(the mixed distribution, the declared (attribute, value) pairs, each segment's lift over trending)."""
        declared = list(declared_attributes(attrs, self.attributes).items())
        if not declared or self.source is None or n_items == 0:
            return None
        trending = self.popularity.trending_scores(n_items)
        share = trending / trending.sum() if trending.sum() > 0 else np.full(n_items, 1.0 / n_items)
        scored_parts = [self.segment_scores(a, v, engaged, share)  # the log's head read once for all
                        for (a, v), engaged in zip(declared, self.source.engagements(declared))]
        parts = np.stack([p for p, _ in scored_parts])
        evidence = np.array([e for _, e in scored_parts])
        if evidence.sum() <= 0:  # no segment has anyone in it yet: trending is all there is
            return None
        return evidence @ parts / evidence.sum(), declared, parts - share  # lift: what each segment likes more

    def score_explained(self, query: Query, n_items: int) -> Scored:
        found = self._parts(query.attrs, n_items) if query.is_cold else None  # a history says more
        if found is None:
            return Scored(None, lambda picks: [None] * len(picks))
        mixed, declared, lift = found
        return Scored(mixed, self._explainer(declared, lift))

    @staticmethod
    def _explainer(declared: list[tuple[str, Any]], lift: np.ndarray) -> Callable[[np.ndarray], list[Reason | None]]:
        def explain(picks: np.ndarray) -> list[Reason | None]:
            out: list[Reason | None] = []
            for item in np.asarray(picks).tolist():
                best = int(np.argmax(lift[:, item]))
                if lift[best, item] <= 0:
                    out.append(Reason("trending"))
                else:
                    attribute, value = declared[best]
                    out.append(Reason("segment", detail=f"popular with users of {attribute} {value}"))
            return out
        return explain
