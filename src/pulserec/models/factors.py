"""What the latent-factor models (ALS, BPR) share: user/item factor matrices, scoring, item
similarity, and the closed-form *fold-in* of a user from a handful of weighted items.

Fold-in solves the implicit-ALS normal equations for one user with the item factors fixed::

    (YtY + Y_I^T (C_I - 1) Y_I + reg I) x = Y_I^T C_I,     C_I = 1 + alpha * w_I

so an unknown user (or a known one with events newer than the model) gets a vector in
microseconds, without retraining. The online layer (issue 4) calls :meth:`FactorModel.fold_in`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from pulserec.ids import IdIndex
from pulserec.models.base import Query, pad_scores
from pulserec.models.interactions import Interactions
from pulserec.models.persist import SavedState
from pulserec.models.weighting import last_timestamps, user_history


class FactorModel(SavedState):
    """Base of the matrix-factorisation models. Subclasses implement :meth:`_train`."""

    name: ClassVar[str] = "factors"
    saved_fields: ClassVar[tuple[str, ...]] = (
        "user_ids", "item_ids", "user_items", "user_last_ts", "user_factors", "item_factors", "item_bias")

    def __init__(self, factors: int = 64, regularization: float = 0.05, alpha: float = 1.0, seed: int = 0) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.seed = seed
        self.user_factors = np.zeros((0, factors), dtype=np.float32)
        self.item_factors = np.zeros((0, factors), dtype=np.float32)
        self.item_bias = np.zeros(0, dtype=np.float32)
        self.user_items = sp.csr_matrix((0, 0), dtype=np.float32)
        self.user_last_ts = np.zeros(0)
        self._gram: np.ndarray | None = None

    # -- training -------------------------------------------------------------------------------
    def fit(self, data: Interactions, catalog=None) -> FactorModel:
        self.set_training_data(
            data.user_ids, data.item_ids, data.to_csr(), last_timestamps(data.users, data.timestamps, data.n_users)
        )
        return self.set_factors(*self._train(self.user_items))

    def set_training_data(
        self, user_ids: IdIndex, item_ids: IdIndex, user_items: sp.csr_matrix, user_last_ts: np.ndarray
    ) -> None:
        """What the model keeps of its training log (id mappings, user x item weights, last event
        time per user). :meth:`fit` calls it; so do trainers that run elsewhere (Spark)."""
        self.user_ids = user_ids
        self.item_ids = item_ids
        self.user_items = user_items
        self.user_last_ts = user_last_ts

    def set_factors(self, user_factors: np.ndarray, item_factors: np.ndarray) -> FactorModel:
        """Install trained factor matrices (float32). Returns self."""
        self.user_factors = np.asarray(user_factors, dtype=np.float32)
        self.item_factors = np.asarray(item_factors, dtype=np.float32)
        if len(self.item_bias) != self.item_factors.shape[0]:
            self.item_bias = np.zeros(self.item_factors.shape[0], dtype=np.float32)
        self._gram = None
        return self

    def _train(self, user_items: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _init_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return (rng.standard_normal((n, self.factors)) * 0.01).astype(np.float32)

    # -- fold-in --------------------------------------------------------------------------------
    @property
    def gram(self) -> np.ndarray:
        """YtY of the item factors, cached (needed by every fold-in)."""
        if self._gram is None:
            y = self.item_factors.astype(np.float64)
            self._gram = y.T @ y
        return self._gram

    def fold_in(self, items: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """User vector for a history of item indices with event weights (closed form).

        Items unknown to the model are ignored; duplicates add their weights up."""
        items = np.asarray(items, dtype=np.int64)
        weights = np.ones(len(items)) if weights is None or len(weights) != len(items) else np.asarray(weights, float)
        known = (items >= 0) & (items < self.item_factors.shape[0])
        items, inverse = np.unique(items[known], return_inverse=True)
        weights = np.bincount(inverse, weights=weights[known], minlength=len(items))
        gram = self.gram + self.regularization * np.eye(self.factors)
        extra = self.alpha * weights
        return solve_implicit_rows(gram, self.item_factors, np.array([0, len(items)]), items, extra)[0]

    def user_vector(self, query: Query) -> np.ndarray | None:
        """The trained vector of a known user with nothing new; else a fold-in of what we know."""
        items, weights, fresh = user_history(query, self.user_items, self.user_last_ts)
        if not fresh:
            return self.user_factors[query.user]
        return self.fold_in(items, weights) if len(items) else None

    # -- scoring --------------------------------------------------------------------------------
    def score(self, query: Query, n_items: int) -> np.ndarray | None:
        vector = self.user_vector(query)
        if vector is None:
            return None
        return pad_scores(self.item_factors @ vector + self.item_bias, n_items)

    def score_many(self, queries: Sequence[Query], n_items: int) -> np.ndarray:
        """Scores of many queries at once (rows of -inf where the model cannot score)."""
        vectors = np.zeros((len(queries), self.factors), dtype=np.float32)
        ok = np.zeros(len(queries), dtype=bool)
        for r, query in enumerate(queries):
            vector = self.user_vector(query)
            if vector is not None:
                vectors[r], ok[r] = vector, True
        scores = np.full((len(queries), n_items), -np.inf, dtype=np.float32)
        n = min(n_items, self.item_factors.shape[0])
        scores[:, :n] = vectors @ self.item_factors[:n].T + self.item_bias[:n]
        scores[~ok] = -np.inf
        return scores

    def similar(self, item: int, n_items: int) -> np.ndarray | None:
        """Cosine similarity of item factors."""
        if not 0 <= item < self.item_factors.shape[0]:
            return None
        norms = np.linalg.norm(self.item_factors, axis=1)
        norms[norms == 0] = 1.0
        sims = (self.item_factors @ self.item_factors[item]) / (norms * norms[item])
        return pad_scores(sims.astype(np.float32), n_items)


def regularised_gram(y: np.ndarray, reg: float) -> np.ndarray:
    """YtY + reg I in float64: the part of every row's normal equations shared by all rows."""
    y = np.asarray(y, dtype=np.float64)
    return y.T @ y + reg * np.eye(y.shape[1])


def solve_implicit_rows(
    gram: np.ndarray, y: np.ndarray, indptr: np.ndarray, indices: np.ndarray, extra: np.ndarray, chunk: int = 2048
) -> np.ndarray:
    """Exact solution of each row's implicit-ALS normal equations, in float32::

        (gram + Y_r^T diag(extra_r) Y_r) x_r = Y_r^T (1 + extra_r),     extra = c - 1 = alpha * w

    Rows are given CSR-style (`indptr`, `indices` into the rows of `y`, `extra` per entry);
    `gram` is :func:`regularised_gram` of `y`. The systems are symmetric positive definite and
    solved by batched Cholesky, `chunk` rows at a time. Fold-in, the in-process
    ``ALS(solver="cholesky")`` and the Spark trainer all call this one function."""
    indptr = np.asarray(indptr, dtype=np.int64)
    indices = np.asarray(indices, dtype=np.int64)
    extra = np.asarray(extra, dtype=np.float64)
    n_rows, k = len(indptr) - 1, gram.shape[0]
    out = np.empty((n_rows, k), dtype=np.float32)
    for start in range(0, n_rows, chunk):
        stop = min(start + chunk, n_rows)
        a = np.broadcast_to(gram, (stop - start, k, k)).copy()
        b = np.zeros((stop - start, k))
        for r in range(start, stop):
            lo, hi = indptr[r], indptr[r + 1]
            y_r = np.asarray(y[indices[lo:hi]], dtype=np.float64)
            a[r - start] += (y_r.T * extra[lo:hi]) @ y_r
            b[r - start] = y_r.T @ (1.0 + extra[lo:hi])
        out[start:stop] = scipy.linalg.solve(a, b[..., None], assume_a="pos")[..., 0]
    return out
