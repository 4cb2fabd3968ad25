"""Temporal adjacency kNN: what other users consumed right before or after the user's items.

In each user's time-ordered sequence of distinct items, item c is adjacent to item a when it
came within ``window`` positions after or before a. Counting that over all users gives the
symmetric matrix S = F + F^T (F[a, c]: c within ``window`` positions after a), and

    W[a, c] = S[a, c] / (deg_a ** 0.5 * deg_c ** beta),    deg = the row sums of S,

pruned to the ``keep`` largest entries of each row. A user's scores are their history vector
(binary: each distinct item once) times W, so any history is scored directly: a known user's
training row plus the query's newer events, or an unknown user's query items.

Why beside EASE: EASE (and the time-local EASE, models/ease_local.py) read which items share a
user, or a sitting; this reads the ORDER a sitting took ("what people look at next to what you
looked at"): in MovieLens users rate pages of films the site presents in an order, and on a
per-user random split the held-out films lie in the gaps between the training events. On that
split's validation, carved from its training part, window 1 added to the time-local EASE
(normalised, weight 0.25) gave +1.9%, and on the test part +1.3% (95% CI 0.4-2.2% at keep 256;
docs/benchmarks.md, issue 18, eighth session): a small signal. It is not one of auto's
candidates: added there, the chooser moved its other weights too and the time split lost
(0.974x, CI 0.951-0.995), so it is served as `?strategy=adjacency` and for blends made by hand.

Memory: W is at most ``keep`` float32 entries per item (9.7k items x 256: ~20 MB); fitting sweeps
each user's sequence once per offset (O(events x window)). A request gathers history x keep
entries, as the pruned EASE does (models/ease.py `rows_sum`)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from pulserec.models.base import BatchScorer, Query, pad_scores
from pulserec.models.ease import rows_sum
from pulserec.models.ease_local import first_events
from pulserec.models.interactions import Interactions
from pulserec.models.persist import SavedState
from pulserec.models.weighting import SimilarityRows, TrainingRows, as_dense, top_k_dense_rows, user_history

#: Rows of S made dense at a time while pruning (bounds the fit's memory to ROWS x items floats).
ROWS = 512


def adjacent_counts(users: np.ndarray, items: np.ndarray, n_items: int, window: int) -> sp.csr_matrix:
    """F (float32, items x items): F[a, c] = how often c came within `window` positions after a in
    one user's sequence; `users`/`items` are events sorted by user, then time."""
    rows, cols = [], []
    for offset in range(1, window + 1):
        same = users[offset:] == users[:-offset]
        rows.append(items[:-offset][same])
        cols.append(items[offset:][same])
    rows_all, cols_all = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_matrix((np.ones(len(rows_all), np.float32), (rows_all, cols_all)), shape=(n_items, n_items))


def adjacency_weights(data: Interactions, window: int, beta: float, keep: int) -> sp.csr_matrix:
    """W (module docstring) of a training log: each user's first event per item, in time order."""
    users, items, _ = first_events(data)
    n = data.n_items
    forward = adjacent_counts(users, items, n, window)
    both = (forward + forward.T).tocsr()
    degree = np.maximum(np.asarray(both.sum(axis=1), dtype=np.float64).ravel(), 1.0)
    scaled = sp.csr_matrix(sp.diags((degree ** -0.5).astype(np.float32)) @ both @ sp.diags((degree ** -beta).astype(np.float32)),
                           dtype=np.float32)
    blocks = [top_k_dense_rows(as_dense(scaled[first:first + ROWS]), keep, row_offset=first, drop_diagonal=True)
              for first in range(0, n, ROWS)]
    weights = sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((n, n), dtype=np.float32)
    weights = sp.csr_matrix(weights, dtype=np.float32)
    weights.eliminate_zeros()
    return weights


class AdjacencyKNN(TrainingRows, SimilarityRows, BatchScorer, SavedState):
    name: ClassVar[str] = "adjacency"
    binary: ClassVar[bool] = True  # each distinct item of the history once
    saved_fields: ClassVar[tuple[str, ...]] = ("user_ids", "item_ids", "user_items", "user_last_ts", "similarity")

    def __init__(self, window: int = 1, beta: float = 0.5, keep: int = 256) -> None:
        for label, value, low, high in (("window", window, 1, 100), ("keep", keep, 1, 100_000)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{label} must be a whole number in [{low}, {high}], not {value!r}")
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 <= beta <= 2.0:
            raise ValueError(f"beta must be a number in [0, 2], not {beta!r}")
        self.window = window
        self.beta = float(beta)
        self.keep = keep
        self.similarity = sp.csr_matrix((0, 0), dtype=np.float32)
        self.user_items = sp.csr_matrix((0, 0), dtype=np.float32)
        self.user_last_ts = np.zeros(0)

    def fit(self, data: Interactions, catalog=None) -> AdjacencyKNN:
        self.keep_rows(data, binary=True)
        self.similarity = adjacency_weights(data, self.window, self.beta, self.keep)
        return self

    def _history(self, query: Query) -> np.ndarray:
        """The distinct known items of the query's user (training row + newer events, or the
        query's own items): the binary history vector's support."""
        items = user_history(query, self.user_items, self.user_last_ts)[0]
        return np.unique(items[(items >= 0) & (items < self.n_known)])

    def score(self, query: Query, n_items: int) -> np.ndarray | None:
        items = self._history(query)
        if not len(items):
            return None
        return pad_scores(rows_sum(self.similarity, items, np.ones(len(items)))[: min(n_items, self.n_known)], n_items)
