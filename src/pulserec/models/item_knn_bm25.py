"""Batch item-based CF on a BM25 (or TF-IDF) weighted user-item matrix.

Each item is a "document" over the users who touched it; BM25 damps heavy users and very
popular items. Similarity is the cosine of the weighted item vectors, pruned to the `k`
nearest neighbours per item (computed block by block: memory stays O(block x items)).
score(j) = sum over the query's items h of weight(h) * sim(h, j); a known user who brings no
items is scored from their training history.

The online, co-occurrence-based :class:`~pulserec.models.item_knn.ItemKNN` is a different model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from pulserec.models.base import Query, Reason, pad_scores
from pulserec.models.interactions import Interactions
from pulserec.models.persist import SavedState
from pulserec.models.weighting import (
    RowWeighting,
    TrainingRows,
    as_dense,
    l2_normalise_rows,
    queries_matrix,
    query_vector,
    top_k_dense_rows,
)


class ItemKNNBM25(TrainingRows, SavedState):
    name: ClassVar[str] = "item_knn_bm25"
    saved_fields: ClassVar[tuple[str, ...]] = ("user_ids", "item_ids", "user_items", "similarity")

    def __init__(
        self,
        k: int = 100,
        weighting: str = "bm25",
        k1: float = 1.2,
        b: float = 0.75,
        shrink: float = 0.0,
        block: int = 1024,
    ) -> None:
        self.k = k
        self.weighting = weighting
        self.k1 = k1
        self.b = b
        self.shrink = shrink
        self.block = block
        self.similarity = sp.csr_matrix((0, 0), dtype=np.float32)
        self.user_items = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, data: Interactions, catalog=None) -> ItemKNNBM25:
        self.keep_rows(data, last_times=False)
        item_users = self.user_items.T.tocsr()
        weighted = RowWeighting(self.weighting, self.k1, self.b).fit(item_users).transform(item_users)
        self.similarity = self._neighbours(l2_normalise_rows(weighted))
        return self

    def _neighbours(self, vectors: sp.csr_matrix) -> sp.csr_matrix:
        """Top-k cosine neighbours of every item, block by block."""
        vectors_t = vectors.T.tocsc()
        blocks = []
        for start in range(0, vectors.shape[0], self.block):
            sims = as_dense(vectors[start : start + self.block] @ vectors_t)
            if self.shrink > 0:  # damp similarities resting on few co-raters
                support = as_dense((vectors[start : start + self.block] > 0).astype(np.float32) @ (vectors_t > 0))
                sims *= support / (support + self.shrink)
            blocks.append(top_k_dense_rows(sims, self.k, row_offset=start, drop_diagonal=True))
        return sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, 0), dtype=np.float32)

    @property
    def n_known(self) -> int:
        return self.similarity.shape[0]

    def _history(self, query: Query) -> Query:
        """The query itself, or for a known user who brought no items, their training history."""
        user = query.user
        if len(query.items) or user is None or not 0 <= user < self.user_items.shape[0]:
            return query
        row = self.user_items[user]
        return Query(user=user, items=row.indices, weights=row.data)

    def score(self, query: Query, n_items: int) -> np.ndarray | None:
        vector = query_vector(self._history(query), self.n_known)
        if not vector.any():
            return None
        return pad_scores(np.asarray(self.similarity.T @ vector, dtype=np.float32), n_items)

    def score_many(self, queries: Sequence[Query], n_items: int) -> np.ndarray:
        scores = np.full((len(queries), n_items), -np.inf, dtype=np.float32)
        matrix = queries_matrix([self._history(q) for q in queries], self.n_known)
        n = min(n_items, self.n_known)
        dense = as_dense(matrix @ self.similarity)
        ok = matrix.getnnz(axis=1) > 0
        scores[ok, :n] = dense[ok, :n]
        return scores

    def similar(self, item: int, n_items: int) -> np.ndarray | None:
        if not 0 <= item < self.n_known:
            return None
        return pad_scores(as_dense(self.similarity[item]).ravel(), n_items)

    def explain(self, query: Query, items: np.ndarray) -> list[Reason | None]:
        """The history item that contributed most to each recommended item."""
        history = np.asarray(query.items, dtype=np.int64)
        known = (history >= 0) & (history < self.n_known)
        if not known.any():
            return [None] * len(items)
        weights = np.asarray(query.weights, dtype=np.float64)
        weights = weights if len(weights) == len(history) else np.ones(len(history))
        targets = np.clip(np.asarray(items, dtype=np.int64), 0, self.n_known - 1)
        contrib = as_dense(self.similarity[history[known]][:, targets]) * weights[known, None]
        best = contrib.argmax(axis=0)
        positions = np.flatnonzero(known)[best]
        return [
            Reason("history", item=int(history[p]), event_type=query.types[p] if p < len(query.types) else None)
            if contrib[b, c] > 0 and int(items[c]) < self.n_known
            else None
            for c, (b, p) in enumerate(zip(best, positions))
        ]
