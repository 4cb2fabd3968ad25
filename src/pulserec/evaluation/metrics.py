"""Offline metrics over top-K recommendation lists, vectorised over users.

Recommendations are an (n_users x K_max) int array of item indices, best first, with -1 where
a model recommended fewer than K_max items. Ground truth is a sparse (n_users x n_items)
relevance matrix whose rows align with the recommendation rows.

Definitions (per user, then averaged over users with at least one relevant item):

* Precision@K = hits in top K / K
* Recall@K    = hits in top K / number of relevant items
* NDCG@K      = sum_{hit at rank r (0-based)} 1/log2(r+2)  /  sum_{r < min(K, n_rel)} 1/log2(r+2)
* MRR@K       = 1 / (rank of the first hit + 1), 0 if no hit in top K
* HitRate@K   = 1 if any hit in top K
* Coverage@K  = distinct items recommended in anyone's top K / catalogue size
* Novelty@K   = mean self-information -log2(p(i)) of recommended items, p(i) = share of training
  users who interacted with i
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

KS: tuple[int, ...] = (5, 10, 20)
RANKING_METRICS = ("precision", "recall", "ndcg", "mrr", "hitrate")


def relevance_matrix(users: np.ndarray, items: np.ndarray, n_rows: int, n_items: int) -> sp.csr_matrix:
    """Binary (n_rows x n_items) matrix with a 1 at every (user, item) pair."""
    matrix = sp.csr_matrix(
        (np.ones(len(users), dtype=np.float32), (np.asarray(users), np.asarray(items))), shape=(n_rows, n_items)
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def hit_matrix(recommendations: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """Boolean (n_users x K_max): is the item at each rank relevant to that user?"""
    recs = np.asarray(recommendations, dtype=np.int64)
    if recs.size == 0:
        return np.zeros(recs.shape, dtype=bool)
    n_cols = relevant.shape[1]
    valid = (recs >= 0) & (recs < n_cols)
    rows = np.repeat(np.arange(relevant.shape[0]), np.diff(relevant.indptr))
    truth = np.sort(rows * n_cols + relevant.indices.astype(np.int64))
    keys = np.arange(recs.shape[0])[:, None] * n_cols + np.where(valid, recs, 0)
    pos = np.searchsorted(truth, keys).clip(max=max(len(truth) - 1, 0))
    found = truth[pos] == keys if len(truth) else np.zeros(recs.shape, dtype=bool)
    return found & valid


def discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(k) + 2.0)


def ranking_metrics(
    recommendations: np.ndarray, relevant: sp.csr_matrix, ks: tuple[int, ...] = KS
) -> dict[str, float]:
    """Mean Precision/Recall/NDCG/MRR/HitRate at each K, over users with a relevant item."""
    n_relevant = relevant.getnnz(axis=1)
    users = n_relevant > 0
    hits = hit_matrix(recommendations, relevant)[users]
    n_relevant = n_relevant[users]
    out: dict[str, float] = {}
    if not users.any():
        return {f"{m}@{k}": 0.0 for k in ks for m in RANKING_METRICS}
    k_max = hits.shape[1]
    for k in ks:
        top = hits[:, : min(k, k_max)]
        n_hits = top.sum(axis=1)
        disc = discounts(k)
        ideal = np.cumsum(disc)[np.minimum(n_relevant, k) - 1]
        first = np.where(top.any(axis=1), top.argmax(axis=1), -1)
        out[f"precision@{k}"] = float(np.mean(n_hits / k))
        out[f"recall@{k}"] = float(np.mean(n_hits / n_relevant))
        out[f"ndcg@{k}"] = float(np.mean((top * disc[: top.shape[1]]).sum(axis=1) / ideal))
        out[f"mrr@{k}"] = float(np.mean(np.where(first >= 0, 1.0 / np.maximum(first + 1.0, 1.0), 0.0)))
        out[f"hitrate@{k}"] = float(np.mean(n_hits > 0))
    return out


def per_user_ndcg(recommendations: np.ndarray, relevant: sp.csr_matrix, k: int) -> np.ndarray:
    """NDCG@k of each user with a relevant item (the values `ranking_metrics` averages), for
    confidence intervals over users."""
    n_relevant = relevant.getnnz(axis=1)
    users = n_relevant > 0
    top = hit_matrix(recommendations, relevant)[users][:, :k]
    disc = discounts(k)
    ideal = np.cumsum(disc)[np.minimum(n_relevant[users], k) - 1]
    return (top * disc[: top.shape[1]]).sum(axis=1) / ideal


def coverage(recommendations: np.ndarray, n_items: int, k: int) -> float:
    """Share of the catalogue that appears in at least one user's top K."""
    top = np.asarray(recommendations)[:, :k]
    top = top[(top >= 0) & (top < n_items)]
    return float(len(np.unique(top)) / n_items) if n_items else 0.0


def item_popularity(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> np.ndarray:
    """Share of users who interacted with each item (each user counted once per item)."""
    pairs = np.unique(np.asarray(users, dtype=np.int64) * max(n_items, 1) + np.asarray(items, dtype=np.int64))
    counts = np.bincount(pairs % max(n_items, 1), minlength=n_items)
    return counts / max(n_users, 1)


def novelty(recommendations: np.ndarray, popularity: np.ndarray, k: int) -> float:
    """Mean self-information -log2 p(i) of recommended items (higher = less obvious)."""
    top = np.asarray(recommendations)[:, :k]
    top = top[(top >= 0) & (top < len(popularity))]
    if top.size == 0:
        return 0.0
    p = np.clip(popularity[top], 1e-12, 1.0)
    return float(np.mean(-np.log2(p)))


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    diff = np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
    return float(np.sqrt(np.mean(diff**2))) if diff.size else float("nan")


def mae(predicted: np.ndarray, actual: np.ndarray) -> float:
    diff = np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
    return float(np.mean(np.abs(diff))) if diff.size else float("nan")
