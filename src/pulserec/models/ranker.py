"""The two-stage ranker: recall candidates from several source models, rank them with a learned model.

Generic over candidate sources: any :class:`Recommender` registered under a name can be a
source, as long as the same names are given at serving time as at training time. The ranker
reads the live catalogue, popularity counters, histories and profiles through an explicit
:class:`FeatureContext` (normally the engine's :class:`OnlineState`).

Scores are dense like every model's: candidates get a score in (0, 1) (the learned margin
through a logistic), everything outside the recall set gets -inf."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy.special import expit

from pulserec.models.base import Query, Reason, Recommender, Scored, explanation
from pulserec.models.ranker_features import FeatureContext, Recall, SegmentScores, allowed_items, recall
from pulserec.models.persist import load_model, save_model
from pulserec.models.ranker_learners import RankingModel

#: Smallest candidate score, so that a candidate stays > 0 (the service serves only positive scores).
_FLOOR = np.nextafter(0.0, 1.0)


class Ranker:
    """Recall from `sources`, then rank the union with a learned :class:`RankingModel`."""

    name: ClassVar[str] = "ranker"

    def __init__(self, sources: Mapping[str, Recommender], state: FeatureContext, model: RankingModel,
                 depth: int | None = None, info: Mapping[str, Any] | None = None,
                 segment: SegmentScores | None = None) -> None:
        missing = [s for s in model.features.sources if s not in sources]
        if missing:
            raise ValueError(f"the ranking model was trained with sources {', '.join(missing)} that are not given")
        self.sources = {name: sources[name] for name in model.features.sources}
        self.state = state
        self.model = model
        self.depth = depth or model.features.depth
        self.info = dict(info or {})  # how and when it was trained, the file it was loaded from
        self.segment = segment  # the segment model, for the attribute features (none: their score is 0)

    @property
    def reads_attributes(self) -> bool:
        """Whether its features include the user's declared attributes (the service then reads
        them for every user, not only for those without a history)."""
        return bool(self.model.features.attributes)

    # -- Recommender -----------------------------------------------------------------------
    def fit(self, data: Any, catalog: Any = None) -> Ranker:
        raise NotImplementedError("train the ranker from a log with pulserec.models.ranker_training.train_ranking_model")

    def candidates(self, query: Query, n_items: int) -> tuple[Recall, np.ndarray]:
        """The recall set of `query` and its feature matrix."""
        found, matrix, _ = self._ranked(query, n_items)
        return found, matrix

    def _ranked(self, query: Query, n_items: int) -> tuple[Recall, np.ndarray, np.ndarray]:
        """Recall set, feature matrix and learned margins of one request."""
        found = recall(self.sources, query, n_items, self.depth, allowed_items(self.state, query, n_items))
        matrix = self.model.features.transform(self.state, query, found, self.segment)
        margins = self.model.predict(matrix) if len(found) else np.empty(0)
        return found, matrix, margins

    def score_explained(self, query: Query, n_items: int) -> Scored:
        """Scores, and an explanation that reuses this request's recall set and features."""
        ranked = self._ranked(query, n_items)
        found, _, margins = ranked
        scores = None
        if len(found):
            scores = np.full(n_items, -np.inf)
            scores[found.items] = np.maximum(expit(margins), _FLOOR)
        return Scored(scores, lambda items: self._reasons(query, ranked, items))

    def score(self, query: Query, n_items: int) -> np.ndarray | None:
        return self.score_explained(query, n_items).scores

    def similar(self, item: int, n_items: int) -> np.ndarray | None:
        return None

    def source_contributions(self, matrix: np.ndarray, margins: np.ndarray) -> np.ndarray:
        """(n_rows, n_sources): how much each row's learned margin drops without that source's
        features (ablation: score 0, rank beyond the recall depth). One batched prediction."""
        features, n_sources = self.model.features, len(self.sources)
        ablated = np.vstack([features.without_source(matrix, k, self.depth) for k in range(n_sources)])
        without = self.model.predict(ablated).reshape(n_sources, len(matrix))
        return (margins[None, :] - without).T

    def explain(self, query: Query, items: np.ndarray) -> list[Reason | None]:
        """Each item's reason comes from the source whose features added most to its score."""
        return self._reasons(query, self._ranked(query, query.n_items), items)

    def _reasons(self, query: Query, ranked: tuple[Recall, np.ndarray, np.ndarray], items: np.ndarray) -> list[Reason | None]:
        found, matrix, margins = ranked
        items = np.asarray(items, dtype=np.int64)
        reasons: list[Reason | None] = [None] * len(items)
        if len(found) == 0 or len(items) == 0:
            return reasons
        rows = np.minimum(np.searchsorted(found.items, items), len(found) - 1)
        known = np.flatnonzero(found.items[rows] == items)
        if len(known) == 0:
            return reasons
        winners = self.source_contributions(matrix[rows[known]], margins[rows[known]]).argmax(axis=1)
        for k, model in enumerate(self.sources.values()):
            chosen = known[winners == k]
            if len(chosen) == 0:
                continue
            for pos, reason in zip(chosen, explanation(model, query, items[chosen])):
                reasons[pos] = reason
        return reasons

    def rebound(self, rebind: Callable[[Recommender], Recommender], state: FeatureContext) -> Ranker:
        """The same learned model over another state (after a state rebuild), each source mapped
        by `rebind` (the model set re-binds each source once, so it stays the served model)."""
        segment = rebind(self.segment) if isinstance(self.segment, Recommender) else self.segment
        return Ranker({name: rebind(model) for name, model in self.sources.items()}, state, self.model, self.depth, self.info,
                      segment)

    # -- introspection and persistence -----------------------------------------------------
    @property
    def feature_importance(self) -> dict[str, float]:
        return self.model.feature_importance

    @property
    def meta(self) -> dict[str, Any]:
        """Shown by `GET /models`."""
        return {
            **self.info,
            "sources": list(self.sources),
            "depth": self.depth,
            "learner": self.model.learner.kind,
            **self.model.stats,
            "feature_importance": self.feature_importance,
        }

    def save(self, path: str | Path, info: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Persist the learned part (features spec + learner); sources and state are live objects."""
        return save_model(self.model, path, {"sources": list(self.sources), **(info or {})})

    @classmethod
    def load(cls, path: str | Path, sources: Mapping[str, Recommender], state: FeatureContext, depth: int | None = None,
             segment: SegmentScores | None = None) -> Ranker:
        model, _ = load_model(path, expected=RankingModel.name)
        return cls(sources, state, model, depth, segment=segment)
