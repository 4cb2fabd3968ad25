"""Hybrid: a :class:`~pulserec.models.blend.Blend` of several models whose weights are LEARNED.

fit() carves a validation split out of the training data (never the test data), fits every
component on the validation-train part, caches their normalised scores for the validation
users, and searches the blend weights maximising NDCG@10 on the held-out validation events,
starting from the best single component (so the blend never loses to its best input on
validation: :func:`search_weights`). The components are then refitted on all the training
data and blended with the learned weights."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from pulserec.evaluation.evaluate import Histories, held_out_users, relevant_of, score_queries, top_k
from pulserec.evaluation.metrics import ranking_metrics
from pulserec.evaluation.split import mixed_parts, validation_split
from pulserec.models.base import Query, Reason, Recommender
from pulserec.models.blend import Blend, normalised
from pulserec.models.interactions import Interactions
from pulserec.models.persist import SavedState
from pulserec.online.catalog import Catalog

ComponentSpec = str | tuple[str, dict[str, Any]]

DEFAULT_COMPONENTS: tuple[ComponentSpec, ...] = ("als", "item_knn_bm25", "user_knn", "content", "popular")
DEFAULT_GRID: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
#: Validation that weighs the next item and long-term taste equally: a mixed split whose two
#: targets (each user's newest held-out event; the others) are scored apart, and the objective
#: is the mean of each target's metric relative to its best single component (1.0 = as good
#: as the best input on both). On a plain mixed split the random tenth outnumbers the one
#: next item per user ~16 to 1, so the chosen weights served long-term taste alone.
BALANCED = "balanced"


def _build(spec: ComponentSpec) -> Recommender:
    from pulserec.models.registry import build_model  # late: the registry names this module

    name, params = (spec, {}) if isinstance(spec, str) else spec
    return build_model(name, **params)


def _label(spec: ComponentSpec) -> str:
    return spec if isinstance(spec, str) else spec[0]


def labels(specs: Sequence[ComponentSpec]) -> list[str]:
    """One label per component: its model's name, with its parameters where the name repeats
    (two trending horizons are "trending" and "trending(halflife=31536000.0)")."""
    out: list[str] = []
    for spec in specs:
        label = _label(spec)
        if label in out and not isinstance(spec, str):
            label = f"{label}({', '.join(f'{k}={v}' for k, v in sorted(spec[1].items()))})"
        out.append(label)
    return out


def search_weights(
    objective: Callable[[np.ndarray], float], n: int, grid: Sequence[float], rounds: int
) -> tuple[np.ndarray, float, list[float]]:
    """Blend weights maximising `objective`, never worse than the best single component.

    Every component is scored alone first (weight 1, the others 0); the search starts from the
    best of those and of the equal-weight blend, and a coordinate search over `grid` only
    accepts strict improvements. So on the validation split the blend is at least as good as
    its best input (the fall-back is that input alone). Returns (weights, score, singles)."""
    singles = [objective(np.eye(n)[c]) for c in range(n)]
    best_single = int(np.argmax(singles))
    weights, best = np.eye(n)[best_single], singles[best_single]
    if n > 1:
        equal = objective(np.ones(n))
        if equal > best + 1e-9:
            weights, best = np.ones(n), equal
    for _ in range(rounds):
        improved = False
        for c in range(n):
            for value in grid:
                if value == weights[c]:
                    continue
                trial = weights.copy()
                trial[c] = value
                if not trial.any():
                    continue
                result = objective(trial)
                if result > best + 1e-9:
                    best, weights, improved = result, trial, True
        if not improved:
            break
    return weights, best, singles


class Hybrid(SavedState):
    name: ClassVar[str] = "hybrid"
    saved_fields: ClassVar[tuple[str, ...]] = (
        "user_ids", "item_ids", "weights", "validation_score", "validation_scores", "models")

    def __init__(
        self,
        components: Sequence[ComponentSpec] = DEFAULT_COMPONENTS,
        validation: str = "mixed",
        validation_params: dict[str, float] | None = None,
        grid: Sequence[float] = DEFAULT_GRID,
        rounds: int = 2,
        metric: str = "ndcg@10",
    ) -> None:
        self.components = list(components)
        self.validation = validation
        self.validation_params = dict(validation_params or {})
        self.grid = tuple(grid)
        self.rounds = rounds
        self.metric = metric
        self.weights: list[float] = [1.0] * len(self.components)
        self.validation_score = float("nan")
        #: Validation score of each component alone and of the learned blend ("blend").
        self.validation_scores: dict[str, float] = {}
        self.models: list[Recommender] = []
        self.blend = Blend([])

    def fit(self, data: Interactions, catalog: Catalog | None = None) -> Hybrid:
        self.user_ids = data.user_ids
        self.item_ids = data.item_ids
        self.weights, self.validation_score = self._learn_weights(data, catalog)
        models = [_build(spec).fit(data, catalog) for spec in self.components]
        self.models = models
        self.after_load()
        return self

    def after_load(self) -> None:
        self.blend = Blend(list(zip(self.models, self.weights)), name=self.name)

    def component_names(self) -> list[str]:
        return labels(self.components)

    def _learn_weights(self, data: Interactions, catalog: Catalog | None) -> tuple[list[float], float]:
        method = "mixed" if self.validation == BALANCED else self.validation
        split = validation_split(data, method, **self.validation_params)
        users = held_out_users(split)
        if len(users) == 0:
            return [1.0] * len(self.components), float("nan")
        histories = Histories(split.train)
        queries = [histories.query(int(u)) for u in users]
        n_items = split.train.n_items
        parts = np.stack([
            normalised(score_queries(_build(spec).fit(split.train, catalog), queries, n_items))
            for spec in self.components
        ])
        seen = split.train.to_csr()[users]
        k = int(self.metric.split("@")[1])
        targets = mixed_parts(split) if self.validation == BALANCED else {"all": split}
        rows = {name: np.searchsorted(users, held_out_users(part)) for name, part in targets.items()}
        relevant = {name: relevant_of(part, users[rows[name]]) for name, part in targets.items()}

        def per_target(weights: np.ndarray) -> dict[str, float]:
            recs = top_k(np.tensordot(weights, parts, axes=1), k, seen)
            return {name: ranking_metrics(recs[rows[name]], relevant[name], (k,))[self.metric] for name in targets}

        eye = np.eye(len(self.components))
        best_single = {name: max(per_target(eye[c])[name] for c in range(len(self.components))) or 1.0
                       for name in targets}

        def objective(weights: np.ndarray) -> float:
            """The metric, or with several targets its mean relative to each target's best single."""
            scores = per_target(weights)
            if len(scores) == 1:
                return next(iter(scores.values()))
            return float(np.mean([scores[name] / best_single[name] for name in targets]))

        weights, best, singles = search_weights(objective, len(self.components), self.grid, self.rounds)
        self.validation_scores = {**dict(zip(labels(self.components), singles)),
                                  "blend": best}
        return weights.tolist(), best

    def score(self, query: Query, n_items: int) -> np.ndarray | None:
        return self.blend.score(query, n_items)

    def score_many(self, queries: Sequence[Query], n_items: int) -> np.ndarray:
        total = np.zeros((len(queries), n_items), dtype=np.float32)
        any_part = np.zeros(len(queries), dtype=bool)
        for model, weight in self.blend.components:
            if weight <= 0:
                continue
            scores = score_queries(model, queries, n_items)
            any_part |= np.isfinite(scores).any(axis=1)
            total += weight * normalised(scores)
        total[~any_part] = -np.inf
        return total

    def similar(self, item: int, n_items: int) -> np.ndarray | None:
        return self.blend.similar(item, n_items)

    def explain(self, query: Query, items: np.ndarray) -> list[Reason | None]:
        return self.blend.explain(query, items)
