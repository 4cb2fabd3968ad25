"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008) with a vectorised conjugate-gradient solver.

Preference p_ui = 1 for every observed (user, item), confidence c_ui = 1 + alpha * w_ui where w
is the summed event weight. Each half-step solves all users' (or all items') normal equations
at once with a few CG steps warm-started from the previous factors (Takács et al. 2011): the
matrix-vector product (YtY + Y^T (C_u - 1) Y) p is one gather + one sparse product for all rows.
``solver="cholesky"`` instead solves every row's system exactly (slower; the reference that the
distributed trainer in :mod:`pulserec.distributed.als` reproduces).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from pulserec.models.factors import FactorModel, regularised_gram, solve_implicit_rows

SOLVERS = ("cg", "cholesky")


class ALS(FactorModel):
    name: ClassVar[str] = "als"

    # Defaults chosen on the leave-last-out validation split carved from ml-latest-small training
    # data (benchmarks/accuracy.py --tune -> benchmarks/accuracy_params.json; docs/benchmarks.md).
    def __init__(
        self,
        factors: int = 64,
        regularization: float = 10.0,
        alpha: float = 2.0,
        iterations: int = 15,
        cg_steps: int = 3,
        seed: int = 0,
        solver: str = "cg",
    ) -> None:
        super().__init__(factors=factors, regularization=regularization, alpha=alpha, seed=seed)
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, not {solver!r}")
        self.iterations = iterations
        self.cg_steps = cg_steps
        self.solver = solver

    def initial_factors(self, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
        """The seeded random starting point (users first, then items, from one generator)."""
        rng = np.random.default_rng(self.seed)
        users = self._init_factors(n_users, rng)
        return users, self._init_factors(n_items, rng)

    def confidence_extra(self, weights: np.ndarray) -> np.ndarray:
        """c - 1 = alpha * w, in float32 as the solvers see it."""
        return (self.alpha * np.asarray(weights, dtype=np.float32)).astype(np.float32)

    def _train(self, user_items: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        extra = user_items.copy()
        extra.data = self.confidence_extra(extra.data)  # c - 1
        extra_t = extra.T.tocsr()
        users, items = self.initial_factors(*user_items.shape)
        for _ in range(self.iterations):
            if self.solver == "cholesky":
                users = exact_step(items, extra, self.regularization)
                items = exact_step(users, extra_t, self.regularization)
            else:
                users = conjugate_gradient_step(users, items, extra, self.regularization, self.cg_steps)
                items = conjugate_gradient_step(items, users, extra_t, self.regularization, self.cg_steps)
        return users, items


def exact_step(y: np.ndarray, extra: sp.csr_matrix, reg: float) -> np.ndarray:
    """Every row's normal equations solved exactly with `y` fixed (`extra` = CSR of c - 1)."""
    extra.sort_indices()
    return solve_implicit_rows(regularised_gram(y, reg), y, extra.indptr, extra.indices, extra.data)


def conjugate_gradient_step(x: np.ndarray, y: np.ndarray, extra: sp.csr_matrix, reg: float, steps: int) -> np.ndarray:
    """A few CG steps on every row's system (YtY + Y^T diag(extra_u) Y + reg I) x_u = Y^T (1 + extra_u).

    `extra` is the CSR of c - 1 (rows align with `x`, columns with `y`)."""
    x = x.copy()
    gram = (y.T @ y + reg * np.eye(y.shape[1])).astype(np.float32)
    rows = np.repeat(np.arange(extra.shape[0]), np.diff(extra.indptr))
    y_nnz = y[extra.indices]
    confidence = sp.csr_matrix((extra.data + 1.0, extra.indices, extra.indptr), shape=extra.shape)

    def product(p: np.ndarray) -> np.ndarray:
        dots = np.einsum("nk,nk->n", p[rows], y_nnz)
        weighted = sp.csr_matrix((extra.data * dots, extra.indices, extra.indptr), shape=extra.shape)
        return p @ gram + weighted @ y

    residual = confidence @ y - product(x)
    direction = residual.copy()
    rs_old = np.einsum("nk,nk->n", residual, residual)
    for _ in range(steps):
        a_dir = product(direction)
        denom = np.einsum("nk,nk->n", direction, a_dir)
        step = np.divide(rs_old, denom, out=np.zeros_like(rs_old), where=denom > 1e-20)
        x += step[:, None] * direction
        residual -= step[:, None] * a_dir
        rs_new = np.einsum("nk,nk->n", residual, residual)
        beta = np.divide(rs_new, rs_old, out=np.zeros_like(rs_new), where=rs_old > 1e-20)
        direction = residual + beta[:, None] * direction
        rs_old = rs_new
    return x.astype(np.float32)
