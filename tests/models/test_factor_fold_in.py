"""Closed-form fold-in shared by ALS and BPR."""

from __future__ import annotations

import numpy as np
from planted_groups import group_items

from pulserec.models.als import ALS
from pulserec.models.base import Query


def test_fold_in_reproduces_a_trained_user(groups) -> None:
    model = ALS(factors=8, iterations=30, cg_steps=8).fit(groups)
    user = 0
    row = model.user_items[user]
    folded = model.fold_in(row.indices, row.data)
    # The final ALS user step solves the same normal equations (approximately, by CG).
    cos = folded @ model.user_factors[user] / (np.linalg.norm(folded) * np.linalg.norm(model.user_factors[user]))
    assert cos > 0.98


def test_fresh_events_move_a_known_user(groups) -> None:
    model = ALS(factors=8, iterations=10).fit(groups)
    user = groups.user_ids.get("au0")
    b_items = group_items(groups, "b")
    stale = Query(user=user, items=b_items[:3], weights=np.full(3, 5.0), timestamps=np.zeros(3))
    fresh = Query(user=user, items=b_items[:3], weights=np.full(3, 5.0), timestamps=np.full(3, 1e12))
    np.testing.assert_array_equal(model.user_vector(stale), model.user_factors[user])
    moved = model.score(fresh, groups.n_items)
    before = model.score(stale, groups.n_items)
    others = b_items[3:]
    assert moved[others].mean() > before[others].mean()


def test_fold_in_ignores_unknown_items(groups) -> None:
    model = ALS(factors=8, iterations=5).fit(groups)
    a = group_items(groups, "a")
    np.testing.assert_allclose(
        model.fold_in(np.r_[a[:2], 10_000, -1], np.ones(4)), model.fold_in(a[:2], np.ones(2)), rtol=1e-5
    )


def test_cholesky_solver_is_an_exact_alternating_least_squares(groups) -> None:
    """Exact half-steps never increase the implicit-ALS objective, and end at least as low as CG."""
    import scipy.sparse as sp

    def objective(model: ALS) -> float:
        p = (model.user_items > 0).astype(np.float64).toarray()
        c = 1.0 + model.alpha * model.user_items.toarray()
        pred = model.user_factors.astype(np.float64) @ model.item_factors.T
        reg = model.regularization * ((model.user_factors**2).sum() + (model.item_factors**2).sum())
        return float((c * (p - pred) ** 2).sum() + reg)

    exact = [objective(ALS(factors=8, iterations=n, solver="cholesky").fit(groups)) for n in (1, 2, 5)]
    assert exact[0] > exact[1] > exact[2]
    assert exact[2] <= objective(ALS(factors=8, iterations=5, cg_steps=1).fit(groups)) + 1e-6
    assert sp.issparse(ALS(factors=4, iterations=1, solver="cholesky").fit(groups).user_items)


def test_fold_in_of_a_user_after_an_exact_user_step_is_that_users_vector(groups) -> None:
    model = ALS(factors=8, iterations=3, solver="cholesky").fit(groups)
    from pulserec.models.als import exact_step

    extra = model.user_items.copy()
    extra.data = model.confidence_extra(extra.data)
    users = exact_step(model.item_factors, extra, model.regularization)
    row = model.user_items[3]
    np.testing.assert_allclose(model.fold_in(row.indices, row.data), users[3], rtol=1e-4, atol=1e-6)
