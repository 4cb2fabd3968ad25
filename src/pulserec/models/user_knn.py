"""User-based CF: the query user's `k` most similar users vote for their items.

Users are BM25 (or TF-IDF) weighted rows of the user-item matrix, compared by cosine.
score(j) = sum over the k neighbours v of sim(u, v) * w_vj. An unknown user (or one with events
newer than the model) is represented by the weighted vector of their history, so nothing needs
retraining to serve them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from pulserec.models.base import BatchScorer, Query, pad_scores
from pulserec.models.interactions import Interactions
from pulserec.models.persist import SavedState
from pulserec.models.weighting import (
    RowWeighting,
    TrainingRows,
    as_dense,
    history_matrix,
    l2_normalise_rows,
    top_k_dense_rows,
)


class UserKNN(TrainingRows, BatchScorer, SavedState):
    name: ClassVar[str] = "user_knn"
    saved_fields: ClassVar[tuple[str, ...]] = ("user_ids", "item_ids", "user_items", "user_last_ts", "user_vectors")

    def __init__(self, k: int = 50, weighting: str = "bm25", k1: float = 1.2, b: float = 0.75) -> None:
        self.k = k
        self.weighting = weighting
        self.k1 = k1
        self.b = b
        self.user_items = sp.csr_matrix((0, 0), dtype=np.float32)
        self.user_vectors = sp.csr_matrix((0, 0), dtype=np.float32)
        self.user_last_ts = np.zeros(0)

    def fit(self, data: Interactions, catalog=None) -> UserKNN:
        self.keep_rows(data)
        self.after_load()
        self.user_vectors = l2_normalise_rows(self._weighting.transform(self.user_items))
        return self

    def after_load(self) -> None:
        """The weighting is refitted from the training matrix (cheap: one column count)."""
        self._weighting = RowWeighting(self.weighting, self.k1, self.b).fit(self.user_items)

    @property
    def n_known(self) -> int:
        return self.user_items.shape[1]

    def _query_rows(self, queries: Sequence[Query]) -> tuple[sp.csr_matrix, np.ndarray]:
        """Weighted, normalised history vectors of the queries, and each query's own user row (-1 if none)."""
        selves = np.array([q.user if q.user is not None and 0 <= q.user < self.user_items.shape[0] else -1
                           for q in queries], dtype=np.int64)
        counts = history_matrix(queries, self.user_items, self.user_last_ts, self.n_known)
        return l2_normalise_rows(self._weighting.transform(counts)), selves

    def score_many(self, queries: Sequence[Query], n_items: int) -> np.ndarray:
        scores = np.full((len(queries), n_items), -np.inf, dtype=np.float32)
        if not queries:
            return scores
        vectors, selves = self._query_rows(queries)
        sims = as_dense(vectors @ self.user_vectors.T)
        has_self = selves >= 0
        sims[np.flatnonzero(has_self), selves[has_self]] = 0.0
        neighbours = top_k_dense_rows(sims, self.k)
        ok = vectors.getnnz(axis=1) > 0
        n = min(n_items, self.n_known)
        scores[ok, :n] = as_dense(neighbours @ self.user_items)[ok, :n]
        return scores


    def similar(self, item: int, n_items: int) -> np.ndarray | None:
        """Items co-liked by the same users (cosine over the weighted user vectors)."""
        if not 0 <= item < self.n_known:
            return None
        column = self.user_vectors[:, item]
        if column.nnz == 0:
            return None
        sims = as_dense(column.T @ self.user_vectors).ravel()
        norms = np.sqrt(as_dense(self.user_vectors.multiply(self.user_vectors).sum(axis=0)).ravel())
        norms[norms == 0] = 1.0
        return pad_scores(sims / (norms * norms[item]), n_items)
