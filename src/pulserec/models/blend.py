"""Weighted blend of several models' scores (each normalised to [0, 1] first), and a blend whose
weights depend on how long the user's history is (:class:`GatedBlend`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from pulserec.models.base import Query, Reason, Recommender, Scored, scored


def normalised(scores: np.ndarray) -> np.ndarray:
    """Scale finite scores into [0, 1] along the last axis (one row per query for 2-D input):
    -inf/NaN become 0, a negative minimum is shifted to 0, then each row is divided by its max."""
    if scores.ndim == 1 and scores.size:
        low, high = scores.min(), scores.max()
        if np.isfinite(low) and np.isfinite(high):  # min/max propagate NaN and show any inf: all finite
            if low < 0:
                scores, high = scores - low, high - low
            return scores / high if high > 0 else np.zeros_like(scores)
    scores = np.where(np.isfinite(scores), scores, 0.0)
    if scores.size == 0:
        return scores
    scores = scores - np.minimum(scores.min(axis=-1, keepdims=True), 0.0)
    top = scores.max(axis=-1, keepdims=True)
    return np.divide(scores, top, out=np.zeros_like(scores), where=top > 0)


class Blend:
    """score = sum_k w_k * normalised(score_k). Components that cannot score are skipped."""

    name: ClassVar[str] = "blend"

    def __init__(self, components: Sequence[tuple[Recommender, float]], name: str | None = None) -> None:
        self.components = list(components)
        if name:
            self.name = name  # type: ignore[misc]

    def fit(self, data, catalog=None) -> Blend:  # components are fitted on their own
        return self

    def _parts(self, query: Query, n_items: int) -> list[tuple[Scored, np.ndarray]]:
        """Each scoring component's request result and its weighted, normalised scores."""
        parts = []
        for model, weight in self.components:
            if weight <= 0:
                continue
            result = scored(model, query, n_items)
            if result.scores is not None:
                parts.append((result, _weighted(normalised(result.scores), weight)))
        return parts

    def score_explained(self, query: Query, n_items: int) -> Scored:
        parts = self._parts(query, n_items)
        return Scored(_summed([p for _, p in parts]), lambda items: _explained_by_winner(parts, items))

    def score(self, query: Query, n_items: int) -> np.ndarray | None:
        return self.score_explained(query, n_items).scores

    def similar(self, item: int, n_items: int) -> np.ndarray | None:
        sims = [(m.similar(item, n_items), w) for m, w in self.components]
        sims = [(s, w) for s, w in sims if s is not None]
        if not sims:
            return None
        return np.sum([w * normalised(s) for s, w in sims], axis=0)

    def explain(self, query: Query, items: np.ndarray) -> list[Reason | None]:
        return self.score_explained(query, query.n_items).explain(items)

    def rebound(self, rebind: Callable[[Recommender], Recommender], state: Any) -> Blend:
        """The same blend over `rebind(part)` of every part (recommend/model_set.py)."""
        return Blend([(rebind(part), weight) for part, weight in self.components], name=self.name)


class GatedBlend(Blend):
    """One :class:`Blend` per bucket of the query's history length (distinct items in
    `query.history`): bucket 0 up to edges[0] items, 1 up to edges[1], ..., the last above
    the last edge. The buckets' blends share their parts; `components` lists every part once
    with its largest weight (what GET /models and the rebinding walk see)."""

    def __init__(self, edges: Sequence[int], blends: Sequence[Blend], name: str | None = None) -> None:
        if len(blends) != len(edges) + 1:
            raise ValueError(f"{len(edges)} history edges need {len(edges) + 1} blends, not {len(blends)}")
        self.edges, self.blends = tuple(int(e) for e in edges), list(blends)
        widest: dict[int, tuple[Recommender, float]] = {}
        for blend in self.blends:
            for part, weight in blend.components:
                kept = widest.get(id(part))
                widest[id(part)] = (part, max(weight, kept[1] if kept else weight))
        super().__init__(list(widest.values()), name=name)

    def blend_for(self, query: Query) -> Blend:
        bucket = int(np.searchsorted(self.edges, len(query.history), side="left"))
        return self.blends[min(bucket, len(self.blends) - 1)]

    def score_explained(self, query: Query, n_items: int) -> Scored:
        return self.blend_for(query).score_explained(query, n_items)

    def similar(self, item: int, n_items: int) -> np.ndarray | None:
        """Item-to-item: no user, so the blend of the longest histories (taste, not popularity)."""
        return self.blends[-1].similar(item, n_items)

    def rebound(self, rebind: Callable[[Recommender], Recommender], state: Any) -> GatedBlend:
        return GatedBlend(self.edges, [blend.rebound(rebind, state) for blend in self.blends], name=self.name)


def _weighted(part: np.ndarray, weight: float) -> np.ndarray:
    """`weight * part`, in place where `part` is a float array of its own (normalised's result
    is: a new array): one catalogue-sized allocation less per component and request."""
    if weight == 1.0:
        return part
    if part.dtype.kind == "f" and part.size:
        part *= weight
        return part
    return weight * part


def _summed(parts: list[np.ndarray]) -> np.ndarray | None:
    """`np.sum(parts, axis=0)`, the same sums in the same order (first + second, then each next
    added), without first stacking the parts into one len(parts) x n_items array."""
    if not parts:
        return None
    if len(parts) == 1:
        return np.array(parts[0], copy=True)
    total = np.add(parts[0], parts[1], dtype=np.result_type(*parts))  # np.sum stacks in the widest type first
    for part in parts[2:]:
        total += part
    return total


def _explained_by_winner(parts: list[tuple[Scored, np.ndarray]], items: np.ndarray) -> list[Reason | None]:
    """Each item's reason is that of the component that added most to its blended score."""
    if not parts or len(items) == 0:
        return [None] * len(items)
    winners = np.stack([p[items] for _, p in parts]).argmax(axis=0)
    reasons: list[Reason | None] = [None] * len(items)
    for k, (result, _) in enumerate(parts):
        chosen = np.flatnonzero(winners == k)
        if len(chosen):
            for pos, reason in zip(chosen, result.explain(items[chosen])):
                reasons[pos] = reason
    return reasons
