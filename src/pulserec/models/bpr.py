"""Bayesian Personalised Ranking (Rendle et al. 2009) trained by vectorised mini-batch SGD.

For sampled triples (u, i, j) with i observed and j not, maximise ln sigmoid(x_ui - x_uj) where
x_ui = p_u . q_i + b_i. Each mini-batch computes all gradients at once and scatters them with
a sort-and-reduce scatter (Hogwild-style: triples in one batch do not see each other's updates). Positives
are drawn uniformly and their gradient scaled by the event weight relative to the mean.
Unknown users are folded in with the closed form shared with ALS (:mod:`.factors`)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from pulserec.models.factors import FactorModel


class BPR(FactorModel):
    name: ClassVar[str] = "bpr"

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.05,
        regularization: float = 0.01,
        epochs: int = 40,
        batch_size: int = 2048,
        alpha: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(factors=factors, regularization=regularization, alpha=alpha, seed=seed)
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size

    def _train(self, user_items: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        n_users, n_items = user_items.shape
        users_f = (rng.standard_normal((n_users, self.factors)) * 0.1).astype(np.float32)
        items_f = (rng.standard_normal((n_items, self.factors)) * 0.1).astype(np.float32)
        bias = np.zeros(n_items, dtype=np.float32)
        pos_users = np.repeat(np.arange(n_users), np.diff(user_items.indptr))
        pos_items = user_items.indices.astype(np.int64)
        scale = (user_items.data / user_items.data.mean()).astype(np.float32) if user_items.nnz else user_items.data
        observed = np.sort(pos_users * n_items + pos_items)
        lr, reg = self.learning_rate, self.regularization
        for _ in range(self.epochs):
            order = rng.permutation(len(pos_users))
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                u, i = pos_users[batch], pos_items[batch]
                j = rng.integers(0, n_items, size=len(batch))
                keys = u * n_items + j
                valid = observed[np.searchsorted(observed, keys).clip(max=len(observed) - 1)] != keys
                u, i, j, w = u[valid], i[valid], j[valid], scale[batch][valid]
                pu, qi, qj = users_f[u], items_f[i], items_f[j]
                x = np.einsum("nk,nk->n", pu, qi - qj) + bias[i] - bias[j]
                g = (w / (1.0 + np.exp(np.clip(x, -30, 30))))[:, None]  # d ln sigmoid(x) / dx
                scatter_add(users_f, u, lr * (g * (qi - qj) - reg * pu))
                scatter_add(items_f, np.concatenate([i, j]), lr * np.concatenate([g * pu - reg * qi, -g * pu - reg * qj]))
                scatter_add(bias, np.concatenate([i, j]), lr * np.concatenate([g[:, 0] - reg * bias[i], -g[:, 0] - reg * bias[j]]))
        self.item_bias = bias
        return users_f, items_f


def scatter_add(target: np.ndarray, index: np.ndarray, values: np.ndarray) -> None:
    """target[index] += values with repeated indices summed (a faster a sort-and-reduce scatter)."""
    order = np.argsort(index, kind="stable")
    index = index[order]
    starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    target[index[starts]] += np.add.reduceat(values[order], starts, axis=0)
