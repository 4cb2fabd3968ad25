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
    def engagement(self, attribute: str, value: Any) -> dict[str, float]: ...


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

    def segment_scores(self, attribute: str, value: Any, trending_share: np.ndarray) -> tuple[np.ndarray, float]:
        """(p(item | attribute = value) over the catalogue, the segment's evidence n / (n + prior))
        (see the module docstring)."""
        n_items = len(trending_share)
        counts = np.zeros(n_items, dtype=np.float64)
        ids = self.catalog.item_ids
        for item_id, weight in (self.source.engagement(attribute, value) if self.source else {}).items():
            idx = ids.get(item_id)
            if idx is not None and idx < n_items:
                counts[idx] += weight
        total = counts.sum()
        return (counts + self.prior * trending_share) / (total + self.prior), total / (total + self.prior)

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
        scored_parts = [self.segment_scores(a, v, share) for a, v in declared]
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
