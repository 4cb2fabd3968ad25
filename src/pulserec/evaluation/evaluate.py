"""Evaluate any :class:`~pulserec.models.base.Recommender` on a :class:`~.split.Split`.

For every test user the query is built from their *training* history only, by the function
the server builds its queries with (:func:`~pulserec.models.query.serving_query`); items they
had in training are excluded, and the model's dense scores are cut to the top K. Models that define ``score_many(queries, n_items)`` (a
(len(queries) x n_items) array, -inf rows where they cannot score) are scored in batches;
others one query at a time through ``score``. A user the model cannot score gets an empty list
(counted as misses, never skipped)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from pulserec.evaluation.metrics import (
    KS,
    coverage,
    item_popularity,
    novelty,
    per_user_ndcg,
    ranking_metrics,
    relevance_matrix,
)
from pulserec.evaluation.split import Split
from pulserec.config import Settings
from pulserec.models.base import Query, Recommender, ScoresMany
from pulserec.models.query import QuerySettings, serving_query
from pulserec.models.interactions import Interactions
from pulserec.online.catalog import Catalog
from pulserec.online.history import Touch


@dataclass
class EvalResult:
    model: str
    metrics: dict[str, float]
    fit_seconds: float = float("nan")
    score_seconds: float = float("nan")
    n_users: int = 0
    params: dict[str, object] = field(default_factory=dict)
    #: NDCG@10 of every test user, in the order of `held_out_users` (for confidence intervals).
    per_user: np.ndarray = field(default_factory=lambda: np.empty(0))


class Histories:
    """Each user's training events, oldest first, turned into the query the server would build
    from them (:func:`~pulserec.models.query.serving_query`, the one function both use) under
    `settings`: the latest `query_len` distinct items, decayed by position."""

    def __init__(self, train: Interactions, settings: QuerySettings | None = None) -> None:
        order = np.lexsort((train.timestamps, train.users))  # by user, then time; stable for ties
        self.items = train.items[order]
        self.weights = train.weights[order]
        self.timestamps = train.timestamps[order]
        self.types = train.types[order]
        self.indptr = np.r_[0, np.cumsum(np.bincount(train.users, minlength=train.n_users))]
        self.n_items = train.n_items
        self.now = float(train.timestamps.max()) if len(train) else 0.0
        self.settings = settings if settings is not None else Settings()
        # Owners per item (the online state's `owner_counts`): which older items carry long-term taste.
        pairs = np.unique((train.users.astype(np.int64) << 32) | train.items.astype(np.int64))
        self.support = np.bincount(pairs & 0xFFFFFFFF, minlength=train.n_items)

    def query(self, user: int) -> Query:
        first, hi = self.indptr[user], self.indptr[user + 1]
        lo = max(first, hi - self.settings.history_len)  # the online state keeps no more than these
        touches = map(Touch, self.items[lo:hi].tolist(), self.weights[lo:hi].tolist(),
                      self.timestamps[lo:hi].tolist(), self.types[lo:hi].tolist())
        seen = np.unique(self.items[first:hi]).tolist()  # the whole training history, as the state's seen set
        return serving_query(int(user), touches, self.settings, now=self.now, n_items=self.n_items, seen=seen,
                             support=self.support)


def score_queries(model: Recommender, queries: Sequence[Query], n_items: int) -> np.ndarray:
    """(len(queries) x n_items) float32 scores; -inf rows where the model cannot score."""
    batch: Callable[[Sequence[Query], int], np.ndarray] | None = model.score_many if isinstance(model, ScoresMany) else None
    if batch is not None:
        return np.asarray(batch(queries, n_items), dtype=np.float32)
    out = np.full((len(queries), n_items), -np.inf, dtype=np.float32)
    for r, query in enumerate(queries):
        scores = model.score(query, n_items)
        if scores is not None:
            out[r] = np.asarray(scores, dtype=np.float32)[:n_items]
    return out


def top_k(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """Indices of the k best finite scores per row, best first; -1 pads rows with fewer.

    `exclude` (rows aligned with `scores`) marks items that must not be recommended."""
    scores = np.where(np.isnan(scores), -np.inf, scores).astype(np.float32, copy=True)
    if exclude is not None and exclude.nnz:
        rows = np.repeat(np.arange(exclude.shape[0]), np.diff(exclude.indptr))
        cols = exclude.indices
        inside = cols < scores.shape[1]
        scores[rows[inside], cols[inside]] = -np.inf
    k_eff = min(k, scores.shape[1])
    out = np.full((scores.shape[0], k), -1, dtype=np.int64)
    if k_eff == 0:
        return out
    part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    best = np.take_along_axis(part, order, axis=1)
    finite = np.isfinite(np.take_along_axis(part_scores, order, axis=1))
    out[:, :k_eff] = np.where(finite, best, -1)
    return out


def recommend(
    model: Recommender,
    train: Interactions,
    users: np.ndarray,
    k: int,
    batch_size: int = 512,
    settings: QuerySettings | None = None,
) -> np.ndarray:
    """Top-k unseen items for each of `users` (training indices), in batches, each asked with
    the query the server would build (under `settings`, default the default settings)."""
    histories = Histories(train, settings)
    seen = train.to_csr()
    n_items = train.n_items
    out = np.full((len(users), k), -1, dtype=np.int64)
    for start in range(0, len(users), batch_size):
        chunk = users[start : start + batch_size]
        queries = [histories.query(int(u)) for u in chunk]
        scores = score_queries(model, queries, n_items)
        out[start : start + len(chunk)] = top_k(scores, k, seen[chunk])
    return out


def relevant_of(split: Split, users: np.ndarray) -> sp.csr_matrix:
    """The held-out items of `users` (rows in that order) as a binary relevance matrix."""
    test = split.test
    row_of = np.full(split.train.n_users, -1, dtype=np.int64)
    row_of[users] = np.arange(len(users))
    rows = row_of[test.users]
    keep = rows >= 0
    return relevance_matrix(rows[keep], test.items[keep], len(users), test.n_items)


def metrics_of(recommendations: np.ndarray, split: Split, users: np.ndarray, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """Ranking metrics, coverage and novelty of recommendations for `users` of `split`."""
    train = split.train
    result = ranking_metrics(recommendations, relevant_of(split, users), ks)
    popularity = item_popularity(train.users, train.items, train.n_users, train.n_items)
    for k in ks:
        result[f"coverage@{k}"] = coverage(recommendations, train.n_items, k)
        result[f"novelty@{k}"] = novelty(recommendations, popularity, k)
    return result


def held_out_users(split: Split) -> np.ndarray:
    return np.unique(split.test.users)


def evaluate(
    model: Recommender,
    split: Split,
    ks: tuple[int, ...] = KS,
    catalog: Catalog | None = None,
    fit: bool = True,
    label: str | None = None,
    settings: QuerySettings | None = None,
) -> EvalResult:
    """Fit `model` on the split's training log (unless `fit` is False) and measure it on the test part."""
    fit_seconds = float("nan")
    if fit:
        start = time.perf_counter()
        model.fit(split.train, catalog)
        fit_seconds = time.perf_counter() - start
    users = held_out_users(split)
    start = time.perf_counter()
    recs = recommend(model, split.train, users, max(ks), settings=settings)
    score_seconds = time.perf_counter() - start
    return EvalResult(
        model=label or model.name,
        metrics=metrics_of(recs, split, users, ks),
        fit_seconds=fit_seconds,
        score_seconds=score_seconds,
        n_users=len(users),
        per_user=per_user_ndcg(recs, relevant_of(split, users), min(10, max(ks))),
    )
