"""EASE (Steck 2019): a closed-form linear item-item model, B = argmin ||X - XB||^2 + lambda ||B||^2, diag(B) = 0.

The solution is B = I - P diag(1 / diag(P)) with P = (X^T X + lambda I)^-1. A user's scores are
their history vector times B, so any history is scored directly: a known user's training row
plus the query's newer events, or an unknown user's query items (no fold-in step needed).

With ``recent_weight`` > 0 the query's RECENT items (the latest distinct ones, decayed by position:
models/query.py) add that weight times their decayed weight on top of the binary history, so the
items the user is busy with now count more than their old taste: one B serves the next item and
the long-term taste (on validation targets carved from MovieLens' training parts, 0.25 lifted the
time-local EASE's next item by 7-14% for at most 0.7% of its taste: docs/benchmarks.md, issue 18).
0 (the default) is Steck's EASE. The same B either way: only the query's vector changes.

Two variants, chosen by ``variant`` ("auto" picks dense up to ``dense_max_items`` items):

- ``dense``: P and B as dense float32 (n x n) matrices. Memory: B is 4 n^2 bytes (1.6 GB at
  20k items), and inverting needs about three times that while fitting (the float64 Gram
  matrix and its Cholesky factor). Exact; the right choice up to ~20-30k items.
- ``low_rank``: X^T X ~ V diag(s^2) V^T from a truncated SVD of X (rank ``rank``). Then
  P = V diag(1/(s^2+lambda) - 1/lambda) V^T + I/lambda exactly for that Gram matrix, diag(P)
  costs O(n r), and x B = x - (x P) / diag(P) is computed through V without ever forming
  an n x n matrix. Memory: V is 4 n r bytes (80 MB for 100k items at r = 200), training
  O((users + items) r). Scores are EASE's for the rank-r approximation of the co-occurrence.

``keep`` > 0 prunes the dense B to the ``keep`` largest-magnitude entries of each row (the items
a history item predicts most, for or against), stored sparse: 8 n keep bytes (40 MB at 9.7k
items and keep = 512, not 0.37 GiB) and a request costs history x keep instead of history x n
(a returning user with 2,000 items: ~1M multiply-adds, not 19M). On MovieLens' random split's
validation keep = 512 scored 0.2114 vs dense 0.2139, 256 0.2085 (NDCG@10; docs/benchmarks.md,
issue 18 serving): the served default prices the dense part out of its latency budget
(models/latency_budget.py), the pruned one fits it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg

from pulserec.models.base import BatchScorer, Query, pad_scores
from pulserec.models.interactions import Interactions
from pulserec.models.persist import SavedState
from pulserec.models.weighting import (TrainingRows, as_dense, binarised, history_matrix, recent_items, recent_matrix,
                                       user_history)

VARIANTS = ("auto", "dense", "low_rank")
#: Entries of a pruned B one request gathers with NumPy (index arithmetic + bincount) before the
#: rows' product goes to scipy's C loop instead (whose per-call set-up is ~0.5 ms, but whose
#: per-entry cost is ~10x lower: a 2,000-item history gathers 1M entries).
GATHER_MAX = 65_536
#: Rows of B pruned at a time (bounds the pruning's index arrays: rows x n x 8 bytes).
PRUNE_ROWS = 512


def rows_sum(matrix: sp.csr_matrix, items: np.ndarray, values: np.ndarray) -> np.ndarray:
    """values @ matrix[items] (float32, one entry per column) for ONE request's distinct rows,
    gathered from the CSR arrays with index arithmetic and a bincount (scipy's construction and
    checks of one-row matrices were ~60% of a request's CPU); a long history's rows go to
    scipy's C loop (GATHER_MAX). The same sums either way."""
    starts = matrix.indptr[items].astype(np.int64)
    lengths = matrix.indptr[items + 1].astype(np.int64) - starts
    total = int(lengths.sum())
    if total > GATHER_MAX:
        return np.asarray(matrix[items].T @ values, dtype=np.float32)
    taken = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(total)
    return np.bincount(matrix.indices[taken], weights=matrix.data[taken] * np.repeat(values, lengths),
                       minlength=matrix.shape[1]).astype(np.float32)


def pruned(b: np.ndarray, keep: int) -> sp.csr_matrix:
    """B with only the `keep` largest-magnitude entries of each row (float32 CSR)."""
    n_rows, n = b.shape
    keep = min(keep, n)
    columns = np.empty((n_rows, keep), dtype=np.int32)
    for first in range(0, n_rows, PRUNE_ROWS):
        block = np.abs(b[first:first + PRUNE_ROWS])
        columns[first:first + len(block)] = np.argpartition(-block, keep - 1, axis=1)[:, :keep] if keep < n else np.arange(n)
    columns.sort(axis=1)
    values = np.take_along_axis(b, columns, axis=1).astype(np.float32)
    matrix = sp.csr_matrix((values.ravel(), columns.ravel(), np.arange(0, n_rows * keep + 1, keep)), shape=(n_rows, n))
    matrix.eliminate_zeros()
    return matrix


def ease_dense(gram: np.ndarray, regularization: float) -> np.ndarray:
    """B = I - P diag(1/diag(P)), P = (G + lambda I)^-1, zero diagonal (float32). `gram` is X^T X.

    G + lambda I is symmetric positive definite, so P comes from its Cholesky factor in float32
    (LAPACK potrf + potri: about a quarter of a float64 LU inverse's time; 9.7k items on one
    loaded core 48 s instead of 132 s); float64 LU where float32 Cholesky fails (lambda tiny
    next to G's scale)."""
    g = np.array(gram, dtype=np.float32, copy=True, order="F")
    g[np.diag_indices_from(g)] += regularization
    factor, info = scipy.linalg.lapack.spotrf(g, lower=False, overwrite_a=True, clean=False)
    if info == 0:
        p, info = scipy.linalg.lapack.spotri(factor, lower=False, overwrite_c=True)
    if info == 0:
        p = np.triu(p) + np.triu(p, 1).T
    else:
        g = np.array(gram, dtype=np.float64, copy=True)
        g[np.diag_indices_from(g)] += regularization
        p = scipy.linalg.inv(g, overwrite_a=True, check_finite=False)
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b.astype(np.float32, copy=False)


def low_rank_factors(x: sp.csr_matrix, rank: int, regularization: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(V, shrink, diag(P)) for the rank-r EASE: P = V diag(shrink) V^T + I / lambda."""
    n_items = x.shape[1]
    rank = max(1, min(rank, min(x.shape) - 1))
    v0 = np.random.default_rng(seed).standard_normal(min(x.shape))
    _, s, vt = scipy.sparse.linalg.svds(x.astype(np.float64), k=rank, v0=v0)
    v = vt.T
    shrink = 1.0 / (s**2 + regularization) - 1.0 / regularization
    diag = (v**2) @ shrink + 1.0 / regularization
    return v.astype(np.float32), shrink.astype(np.float32), diag.reshape(n_items).astype(np.float32)


class EASE(TrainingRows, BatchScorer, SavedState):
    name: ClassVar[str] = "ease"
    saved_fields: ClassVar[tuple[str, ...]] = (
        "user_ids", "item_ids", "user_items", "user_last_ts", "weights", "factors", "shrink", "p_diag")

    def __init__(self, regularization: float = 300.0, binary: bool = True, variant: str = "auto",
                 dense_max_items: int = 20_000, rank: int = 256, seed: int = 0, recent_weight: float = 0.0,
                 keep: int = 0) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
        if not regularization > 0 or not np.isfinite(regularization):
            raise ValueError("regularization must be a finite number > 0")
        if not recent_weight >= 0 or not np.isfinite(recent_weight):
            raise ValueError("recent_weight must be a finite number >= 0")
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
            raise ValueError(f"keep must be 0 (every entry of B) or a number of entries per row, not {keep!r}")
        self.recent_weight = float(recent_weight)
        self.keep = keep
        self.regularization = regularization
        self.binary = binary
        self.variant = variant
        self.dense_max_items = dense_max_items
        self.rank = rank
        self.seed = seed
        self.weights: np.ndarray | sp.csr_matrix = np.zeros((0, 0), dtype=np.float32)  # B (CSR when pruned)
        self.factors = np.zeros((0, 0), dtype=np.float32)  # low-rank V
        self.shrink = np.zeros(0, dtype=np.float32)
        self.p_diag = np.zeros(0, dtype=np.float32)
        self.user_items = sp.csr_matrix((0, 0), dtype=np.float32)
        self.user_last_ts = np.zeros(0)

    @property
    def fitted_variant(self) -> str:
        if sp.issparse(self.weights):
            return "pruned"
        return "dense" if self.weights.size else "low_rank"

    def fit(self, data: Interactions, catalog=None) -> EASE:
        self.keep_rows(data, self.binary)
        n = data.n_items
        dense = self.variant == "dense" or (self.variant == "auto" and n <= self.dense_max_items)
        if dense or n < 3:
            self.weights = ease_dense(self.gram(data), self.regularization)
            if self.keep:
                self.weights = pruned(self.weights, self.keep)
            self.factors, self.shrink, self.p_diag = np.zeros((0, 0), np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32)
        else:
            self.factors, self.shrink, self.p_diag = low_rank_factors(self.user_items, self.rank, self.regularization, self.seed)
            self.weights = np.zeros((0, 0), dtype=np.float32)
        return self

    def gram(self, data: Interactions) -> np.ndarray:
        """The dense item x item matrix EASE inverts: X^T X of the kept training rows (a subclass
        may weight the pairs, models/ease_local.py)."""
        return as_dense(self.user_items.T @ self.user_items)

    @property
    def n_known(self) -> int:
        return self.user_items.shape[1]

    def _times_b(self, x: sp.csr_matrix) -> np.ndarray:
        """x B for a (rows x n_known) history matrix, in either variant."""
        if sp.issparse(self.weights):
            return (x @ self.weights).toarray().astype(np.float32, copy=False)
        if self.weights.size:
            return np.asarray(x @ self.weights, dtype=np.float32)
        xp = np.asarray(x @ self.factors) * self.shrink @ self.factors.T + as_dense(x) / self.regularization
        return (as_dense(x) - xp / self.p_diag).astype(np.float32)

    def score(self, query: Query, n_items: int) -> np.ndarray | None:
        """One request. With a pruned B, x B is gathered from the rows of the history's items
        without building sparse matrices (score_many's path: ~60% of a request's CPU was
        scipy's construction and checks of the one-row matrices); the same sums."""
        if not sp.issparse(self.weights):
            return BatchScorer.score(self, query, n_items)
        items, values = self._history_vector(query)
        if not len(items):
            return None
        return pad_scores(rows_sum(self.weights, items, values)[: min(n_items, self.n_known)], n_items)

    def _history_vector(self, query: Query) -> tuple[np.ndarray, np.ndarray]:
        """(distinct known items, x's values) of score_many's row for `query`: the history's
        items at 1.0 (binary) or their summed weights, plus recent_weight x the recent items."""
        items, weights, _ = user_history(query, self.user_items, self.user_last_ts)
        if self.recent_weight > 0:
            recent, decayed = recent_items(query)
            items = np.concatenate([items, recent])
            weights = np.concatenate([weights if not self.binary else np.ones(len(weights)), self.recent_weight * decayed])
            binary_part = np.r_[np.ones(len(items) - len(recent), bool), np.zeros(len(recent), bool)]
        else:
            binary_part = np.ones(len(items), bool)
        known = (items >= 0) & (items < self.n_known)
        items, weights, binary_part = items[known], weights[known], binary_part[known]
        distinct, inverse = np.unique(items, return_inverse=True)
        if not self.binary:
            return distinct, np.bincount(inverse, weights=weights, minlength=len(distinct))
        present = np.bincount(inverse[binary_part], minlength=len(distinct)) > 0  # binarised history: 1 each
        added = np.bincount(inverse[~binary_part], weights=weights[~binary_part], minlength=len(distinct))
        return distinct, present.astype(np.float64) + added

    def score_many(self, queries: Sequence[Query], n_items: int) -> np.ndarray:
        scores = np.full((len(queries), n_items), -np.inf, dtype=np.float32)
        x = binarised(history_matrix(queries, self.user_items, self.user_last_ts, self.n_known), self.binary)
        if self.recent_weight > 0:
            x = (x + self.recent_weight * recent_matrix(queries, self.n_known)).tocsr()
        ok = x.getnnz(axis=1) > 0
        if ok.any():
            n = min(n_items, self.n_known)
            scores[ok, :n] = self._times_b(x[ok])[:, :n]
        return scores


    def similar(self, item: int, n_items: int) -> np.ndarray | None:
        """Row `item` of B: how strongly having `item` predicts every other item."""
        if not 0 <= item < self.n_known or self.user_items[:, item].nnz == 0:
            return None
        unit = sp.csr_matrix((np.ones(1, dtype=np.float32), ([0], [item])), shape=(1, self.n_known))
        row = self._times_b(unit)[0]
        row[item] = 0.0
        return pad_scores(row, n_items)
