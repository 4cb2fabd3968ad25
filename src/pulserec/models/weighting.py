"""Shared sparse-matrix helpers for the batch models: term weighting, normalisation, top-k pruning
and turning a :class:`~pulserec.models.base.Query` into a vector.

Every helper is vectorised over the whole matrix (no Python loop over rows)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from pulserec.models.base import Query, pad_scores
from pulserec.models.interactions import Interactions

WEIGHTINGS = ("bm25", "tfidf", "none")


@dataclass
class RowWeighting:
    """BM25 or TF-IDF weighting of a sparse matrix whose rows are "documents".

    Fitted once on the training matrix (column idf, mean row length) and then applied to that
    matrix or to new rows (a folded-in user), so both are weighted the same way."""

    scheme: str = "bm25"
    k1: float = 1.2
    b: float = 0.75
    idf: np.ndarray | None = None
    mean_length: float = 1.0

    def __post_init__(self) -> None:
        if self.scheme not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, not {self.scheme!r}")

    def fit(self, matrix: sp.csr_matrix) -> RowWeighting:
        n_rows = max(matrix.shape[0], 1)
        df = np.bincount(matrix.indices, minlength=matrix.shape[1]).astype(np.float64)
        self.idf = (np.log(n_rows) - np.log1p(df)).clip(min=0.0) + 1e-6 if self.scheme != "none" else np.ones_like(df)
        lengths = np.asarray(matrix.sum(axis=1)).ravel()
        self.mean_length = float(lengths.mean()) if len(lengths) and lengths.mean() > 0 else 1.0
        return self

    def transform(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        """Weighted copy of `matrix` (CSR, same shape); columns beyond the fitted ones get idf 1."""
        if self.idf is None:
            raise RuntimeError("RowWeighting.transform before fit")
        out = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
        if self.scheme == "none" or out.nnz == 0:
            return out
        idf = np.ones(out.shape[1], dtype=np.float64)
        n = min(len(self.idf), out.shape[1])
        idf[:n] = self.idf[:n]
        rows = np.repeat(np.arange(out.shape[0]), np.diff(out.indptr))
        tf = out.data.astype(np.float64)
        if self.scheme == "bm25":
            lengths = np.asarray(out.sum(axis=1)).ravel()[rows]
            norm = self.k1 * (1.0 - self.b + self.b * lengths / self.mean_length)
            tf = tf * (self.k1 + 1.0) / (tf + norm)
        else:  # tfidf with sublinear term frequency
            tf = 1.0 + np.log(np.maximum(tf, 1e-12)).clip(min=0.0)
        out.data = (tf * idf[out.indices]).astype(np.float32)
        return out


def l2_normalise_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to unit L2 norm (empty rows stay empty)."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    matrix.data /= np.repeat(norms, np.diff(matrix.indptr)).astype(np.float32)
    return matrix


def top_k_dense_rows(block: np.ndarray, k: int, row_offset: int = 0, drop_diagonal: bool = False) -> sp.csr_matrix:
    """Keep the k largest positive entries of each row of a dense block, as CSR.

    With `drop_diagonal`, entry (r, row_offset + r) is ignored (an item is not its own neighbour)."""
    block = np.array(block, dtype=np.float32, copy=True)
    n_rows, n_cols = block.shape
    if drop_diagonal:
        rows = np.arange(n_rows)
        cols = rows + row_offset
        inside = cols < n_cols
        block[rows[inside], cols[inside]] = 0.0
    k = min(k, n_cols)
    if k <= 0 or n_rows == 0:
        return sp.csr_matrix((n_rows, n_cols), dtype=np.float32)
    top = np.argpartition(-block, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(block, top, axis=1)
    keep = values > 0
    row_idx = np.repeat(np.arange(n_rows), k).reshape(n_rows, k)[keep]
    return sp.csr_matrix((values[keep], (row_idx, top[keep])), shape=(n_rows, n_cols), dtype=np.float32)


def query_vector(query: Query, n: int, decay_halflife: float | None = None) -> np.ndarray:
    """Dense vector over `n` items: the query's weights summed per item.

    Items outside 0..n-1 (unknown to the model) are ignored. Missing weights count as 1. With
    `decay_halflife` (in positions), the i-th most recent item's weight is multiplied by
    0.5 ** (i / decay_halflife)."""
    items = np.asarray(query.items, dtype=np.int64)
    weights = np.asarray(query.weights, dtype=np.float64)
    if len(weights) != len(items):
        weights = np.ones(len(items))
    if decay_halflife:
        weights = weights * 0.5 ** (np.arange(len(items)) / decay_halflife)
    known = (items >= 0) & (items < n)
    return np.bincount(items[known], weights=weights[known], minlength=n)[:n]


def queries_matrix(queries: Sequence[Query], n: int, decay_halflife: float | None = None) -> sp.csr_matrix:
    """Stack of :func:`query_vector` rows as a sparse (len(queries) x n) matrix."""
    rows, cols, vals = [], [], []
    for r, query in enumerate(queries):
        vec = query_vector(query, n, decay_halflife)
        nz = np.flatnonzero(vec)
        rows.append(np.full(len(nz), r))
        cols.append(nz)
        vals.append(vec[nz])
    if not rows:
        return sp.csr_matrix((0, n), dtype=np.float32)
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(len(queries), n), dtype=np.float32
    )


def recent_items(query: Query) -> tuple[np.ndarray, np.ndarray]:
    """(items, weights) of the query's RECENT items only (the latest distinct items, decayed by
    position: models/query.py), without the long-term weight `with_long_term` added to them and
    without the older history items it appended."""
    count = query.recent if query.long_term > 0 else len(query.items)
    weights = np.asarray(query.weights, dtype=np.float64)
    weights = weights[:count] - query.long_term if len(weights) == len(query.items) else np.ones(count)
    return np.asarray(query.items[:count], dtype=np.int64), weights


def recent_matrix(queries: Sequence[Query], n: int) -> sp.csr_matrix:
    """(len(queries) x n) weights of each query's :func:`recent_items`; items >= n are dropped."""
    return _rows_matrix([recent_items(query) for query in queries], n)


def _rows_matrix(rows: Sequence[tuple[np.ndarray, np.ndarray]], n: int) -> sp.csr_matrix:
    """(len(rows) x n) float32 CSR of per-row (items, weights), duplicates summed, items >= n dropped."""
    index, cols, vals = [np.empty(0, np.int64)], [np.empty(0, np.int64)], [np.empty(0)]
    for r, (items, weights) in enumerate(rows):
        known = (items >= 0) & (items < n)
        index.append(np.full(int(known.sum()), r))
        cols.append(items[known])
        vals.append(weights[known])
    matrix = sp.csr_matrix((np.concatenate(vals), (np.concatenate(index), np.concatenate(cols))),
                           shape=(len(rows), n), dtype=np.float32)
    matrix.sum_duplicates()
    return matrix


def user_history(query: Query, user_items: sp.csr_matrix, user_last_ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """(items, weights, fresh) describing the query's user to a model trained on `user_items`.

    A known user is their training row plus the query's events newer than their last training
    event (`fresh` says whether there were any); an unknown user is the query's own items
    (always `fresh`)."""
    items = np.asarray(query.items, dtype=np.int64)
    weights = np.asarray(query.weights, dtype=np.float64)
    weights = weights if len(weights) == len(items) else np.ones(len(items))
    user = query.user
    if user is None or not 0 <= user < user_items.shape[0]:
        return items, weights, True
    ts = np.asarray(query.timestamps, dtype=np.float64)
    newer = ts > user_last_ts[user] if len(ts) == len(items) else np.zeros(len(items), dtype=bool)
    lo, hi = user_items.indptr[user], user_items.indptr[user + 1]  # the row's slice: scipy's row indexing costs 40-80 us
    return (
        np.concatenate([user_items.indices[lo:hi].astype(np.int64), items[newer]]),
        np.concatenate([user_items.data[lo:hi].astype(np.float64), weights[newer]]),
        bool(newer.any()),
    )


def history_matrix(queries: Sequence[Query], user_items: sp.csr_matrix, user_last_ts: np.ndarray, n: int) -> sp.csr_matrix:
    """(len(queries) x n) summed weights of each query's :func:`user_history` (the training row
    of a known user plus its newer events, or an unknown user's items); items >= n are dropped."""
    return _rows_matrix([user_history(query, user_items, user_last_ts)[:2] for query in queries], n)


def last_timestamps(users: np.ndarray, timestamps: np.ndarray, n_users: int) -> np.ndarray:
    """Per user, the time of their latest event (-inf for users without one)."""
    last = np.full(n_users, -np.inf)
    np.maximum.at(last, users, timestamps)
    return last


def as_dense(matrix: sp.spmatrix | np.ndarray) -> np.ndarray:
    """A sparse product result as a dense float32 array."""
    return np.asarray(matrix.todense() if sp.issparse(matrix) else matrix, dtype=np.float32)


def binarised(matrix: sp.csr_matrix, binary: bool = True) -> sp.csr_matrix:
    """A float32 copy of `matrix`, every stored value 1.0 when `binary` (presence, not weight)."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    if binary:
        matrix.data[:] = 1.0
    return matrix


class TrainingRows:
    """The fit prologue of the models that score a user's training row (plus the query's newer
    events, :func:`history_matrix`): the id maps, the user x item matrix and each user's last
    training time. EASE, RP3beta, user-kNN and item-kNN-BM25 share it."""

    user_items: sp.csr_matrix
    user_last_ts: np.ndarray

    def keep_rows(self, data: Interactions, binary: bool = False, last_times: bool = True) -> sp.csr_matrix:
        """Keep `data`'s ids and rows (binarised when `binary`) and, with `last_times`, each
        user's latest timestamp; returns the kept matrix."""
        self.user_ids = data.user_ids
        self.item_ids = data.item_ids
        self.user_items = binarised(data.to_csr(), binary)
        if last_times:
            self.user_last_ts = last_timestamps(data.users, data.timestamps, data.n_users)
        return self.user_items


class SimilarityRows:
    """Batch scores and `similar` of a model whose scores are a user's history vector (training
    row plus newer events, :func:`history_matrix`; binarised when `binary`) times an item x item
    CSR matrix `similarity`: RP3beta and the adjacency kNN share them."""

    similarity: sp.csr_matrix
    binary: bool
    user_items: sp.csr_matrix
    user_last_ts: np.ndarray

    @property
    def n_known(self) -> int:
        return self.similarity.shape[0]

    def score_many(self, queries: Sequence[Query], n_items: int) -> np.ndarray:
        scores = np.full((len(queries), n_items), -np.inf, dtype=np.float32)
        x = binarised(history_matrix(queries, self.user_items, self.user_last_ts, self.n_known), self.binary)
        ok = x.getnnz(axis=1) > 0
        if ok.any():
            n = min(n_items, self.n_known)
            scores[ok, :n] = as_dense(x[ok] @ self.similarity)[:, :n]
        return scores

    def similar(self, item: int, n_items: int) -> np.ndarray | None:
        """Row `item` of the similarity: how strongly having `item` points to every other item."""
        if not 0 <= item < self.n_known or self.similarity[item].nnz == 0:
            return None
        return pad_scores(as_dense(self.similarity[item]).ravel(), n_items)
