"""RP3beta (Paudel et al. 2017; the form of Dacrema et al.'s reference implementation): a random
walk item -> user -> item with popularity re-weighting.

With P_ui = X row-normalised (user -> item steps) and P_iu = binary(X)^T row-normalised
(item -> user steps), both raised element-wise to ``alpha``, the item-item weight is

    W_ij = (P_iu P_ui)_ij / pop_j ** beta,     pop_j = number of users of item j,

pruned to the ``k`` largest entries per row (the diagonal is dropped), rows optionally
l1-normalised. A user's scores are their history vector times W: a known user's training row
plus newer query events, an unknown user's query items. Computed block by block, so fitting
needs O(block x items) dense memory besides the sparse W (at most k entries per item).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from pulserec.models.base import BatchScorer
from pulserec.models.interactions import Interactions
from pulserec.models.persist import SavedState
from pulserec.models.weighting import SimilarityRows, TrainingRows, as_dense, top_k_dense_rows


def l1_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to sum to 1 (empty rows stay empty)."""
    matrix = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    sums = np.asarray(abs(matrix).sum(axis=1)).ravel()
    sums[sums == 0] = 1.0
    matrix.data /= np.repeat(sums, np.diff(matrix.indptr))
    return matrix


def transition_matrices(x: sp.csr_matrix, alpha: float, binary: bool) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    """(P_iu^alpha, P_ui^alpha, item popularity) of a user x item matrix."""
    x = sp.csr_matrix(x, dtype=np.float64, copy=True)
    x.eliminate_zeros()
    ones = x.copy()
    ones.data[:] = 1.0
    p_ui = l1_rows(ones if binary else x)
    p_iu = l1_rows(ones.T.tocsr())
    p_ui.data **= alpha
    p_iu.data **= alpha
    popularity = np.asarray(ones.sum(axis=0)).ravel()
    return p_iu, p_ui, popularity


class RP3beta(TrainingRows, SimilarityRows, BatchScorer, SavedState):
    name: ClassVar[str] = "rp3beta"
    saved_fields: ClassVar[tuple[str, ...]] = ("user_ids", "item_ids", "user_items", "user_last_ts", "similarity")

    def __init__(self, alpha: float = 1.0, beta: float = 0.5, k: int = 100, normalize: bool = True,
                 binary: bool = True, block: int = 1024) -> None:
        if k < 1 or block < 1:
            raise ValueError("k and block must be >= 1")
        if alpha <= 0 or beta < 0:
            raise ValueError("alpha must be > 0 and beta >= 0")
        self.alpha = alpha
        self.beta = beta
        self.k = k
        self.normalize = normalize
        self.binary = binary
        self.block = block
        self.similarity = sp.csr_matrix((0, 0), dtype=np.float32)
        self.user_items = sp.csr_matrix((0, 0), dtype=np.float32)
        self.user_last_ts = np.zeros(0)

    def fit(self, data: Interactions, catalog=None) -> RP3beta:
        self.keep_rows(data, self.binary)
        p_iu, p_ui, popularity = transition_matrices(self.user_items, self.alpha, self.binary)
        damp = np.zeros_like(popularity)
        seen = popularity > 0
        damp[seen] = popularity[seen] ** -self.beta
        blocks = []
        for start in range(0, p_iu.shape[0], self.block):
            walk = as_dense(p_iu[start : start + self.block] @ p_ui) * damp[None, :].astype(np.float32)
            blocks.append(top_k_dense_rows(walk, self.k, row_offset=start, drop_diagonal=True))
        n = data.n_items
        similarity = sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((n, n), dtype=np.float32)
        self.similarity = sp.csr_matrix(l1_rows(similarity) if self.normalize else similarity, dtype=np.float32)
        return self
