"""Reference item-item peers, written from their papers (numpy/scipy only), scored densely for
known users from their training rows, like the library peers in peers.py.

* EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019): with the
  Gram matrix G = X^T X + lambda I and P = G^-1, the item-item weights are
  B = I - P diag(1 / diag(P)), i.e. B_ij = -P_ij / P_jj with a zero diagonal; score = x_u B.
  Implemented as in the paper's listing (a dense inverse: 9.7k items = 0.36 GiB in float32).
* RP3beta (Paudel et al., "Updatable, Accurate, Diverse, and Scalable Recommendations for
  Interactive Applications", TiiS 2017), as in the RecSys 2019 reproducibility study's
  RP3betaRecommender: P_ui and P_iu are the row-normalised user->item and item->user
  transition matrices, each raised element-wise to alpha; W = P_iu P_ui with column j divided
  by popularity_j^beta, each row cut to its top_k, score = x_u W (x_u binary).

Both take the binary user x item matrix, as their reference code does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from peer_base import BatchPeer

from pulserec.models.base import Query
from pulserec.models.interactions import Interactions


def binary(data: Interactions) -> sp.csr_matrix:
    matrix = data.to_csr()
    matrix.data[:] = 1.0
    return matrix


class ItemItemPeer(BatchPeer):
    """Scores = X_u W for known users u (X binary training matrix, W item x item)."""

    name: ClassVar[str] = "item_item_peer"
    module: ClassVar[str] = "numpy"

    def __init__(self, **params) -> None:
        self.params = params
        self.x = sp.csr_matrix((0, 0), dtype=np.float32)
        self.w: np.ndarray | sp.csr_matrix = np.zeros((0, 0), dtype=np.float32)

    def score_many(self, queries: Sequence[Query], n_items: int) -> np.ndarray:
        out = np.full((len(queries), n_items), -np.inf, dtype=np.float32)
        rows = np.array([q.user if q.user is not None else -1 for q in queries], dtype=np.int64)
        ok = (rows >= 0) & (rows < self.x.shape[0])
        scores = self.x[rows[ok]] @ self.w
        scores = scores.toarray() if sp.issparse(scores) else np.asarray(scores)
        n = min(n_items, scores.shape[1])
        out[np.flatnonzero(ok), :n] = scores[:, :n]
        return out


class EASE(ItemItemPeer):
    name = "ease"

    def fit(self, data: Interactions, catalog=None) -> EASE:
        lam = float(self.params.get("l2", 500.0))
        self.x = binary(data)
        gram = (self.x.T @ self.x).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += lam
        p = np.linalg.inv(gram)
        b = p / -np.diag(p)
        b[np.diag_indices_from(b)] = 0.0
        self.w = b.astype(np.float32)
        return self


class RP3beta(ItemItemPeer):
    name = "rp3beta"

    def fit(self, data: Interactions, catalog=None) -> RP3beta:
        alpha = float(self.params.get("alpha", 1.0))
        beta = float(self.params.get("beta", 0.5))
        top_k = int(self.params.get("top_k", 100))
        self.x = binary(data)
        p_ui = _row_normalised(self.x).power(alpha)
        p_iu = _row_normalised(self.x.T.tocsr()).power(alpha)
        popularity = np.asarray(self.x.sum(axis=0)).ravel()
        scale = np.power(np.maximum(popularity, 1.0), -beta)
        w = (p_iu @ p_ui).toarray() * scale[None, :]
        np.fill_diagonal(w, 0.0)
        self.w = _top_k_rows(w, top_k)
        return self


def _row_normalised(matrix: sp.csr_matrix) -> sp.csr_matrix:
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    inv = np.divide(1.0, sums, out=np.zeros_like(sums, dtype=np.float64), where=sums > 0)
    return sp.diags(inv) @ matrix


def _top_k_rows(w: np.ndarray, k: int) -> sp.csr_matrix:
    """Keep each row's k largest entries (RP3beta's neighbourhood size)."""
    k = min(k, w.shape[1])
    top = np.argpartition(-w, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(w, top, axis=1)
    rows = np.repeat(np.arange(w.shape[0]), k)
    keep = values.ravel() > 0
    return sp.csr_matrix((values.ravel()[keep], (rows[keep], top.ravel()[keep])), shape=w.shape, dtype=np.float32)
