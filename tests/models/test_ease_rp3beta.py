"""EASE and RP3beta against their reference formulas on small data, and as served models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from planted_groups import group_items

from pulserec.config import DEFAULT_EVENT_WEIGHTS
from pulserec.models.base import Query
from pulserec.models.ease import EASE
from pulserec.models.interactions import Interactions
from pulserec.models.query import with_long_term
from pulserec.models.rp3beta import RP3beta


def random_log(n_users: int = 40, n_items: int = 25, per_user: int = 6, seed: int = 1) -> Interactions:
    rng = np.random.default_rng(seed)
    popular = rng.dirichlet(np.ones(n_items) * 0.5)
    rows = [
        {"user_id": f"u{u}", "item_id": f"i{i}", "type": "click", "ts": float(u * 100 + k)}
        for u in range(n_users)
        for k, i in enumerate(rng.choice(n_items, size=per_user, replace=False, p=popular))
    ]
    return Interactions.from_frame(pd.DataFrame(rows), DEFAULT_EVENT_WEIGHTS)


def binary_matrix(data: Interactions) -> np.ndarray:
    return (data.to_csr().toarray() > 0).astype(np.float64)


def reference_ease(x: np.ndarray, lam: float) -> np.ndarray:
    p = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    b = np.eye(x.shape[1]) - p @ np.diag(1.0 / np.diag(p))
    np.fill_diagonal(b, 0.0)
    return b


def all_user_scores(model, data: Interactions) -> np.ndarray:
    queries = [Query(user=u, n_items=data.n_items) for u in range(data.n_users)]
    return model.score_many(queries, data.n_items)


def test_ease_dense_matches_reference_formula() -> None:
    data = random_log()
    x = binary_matrix(data)
    model = EASE(regularization=5.0, variant="dense").fit(data)
    assert model.fitted_variant == "dense"
    np.testing.assert_allclose(model.weights, reference_ease(x, 5.0), atol=1e-5)
    np.testing.assert_allclose(all_user_scores(model, data), x @ reference_ease(x, 5.0), atol=1e-4)


def test_ease_low_rank_at_full_rank_equals_dense() -> None:
    """With the rank equal to the Gram matrix's, the low-rank path is exact."""
    data = random_log(n_users=60, n_items=20)
    x = binary_matrix(data)
    model = EASE(regularization=5.0, variant="low_rank", rank=19).fit(data)
    assert model.fitted_variant == "low_rank" and model.weights.size == 0
    rank = np.linalg.matrix_rank(x)
    assert rank <= 19  # so the truncated SVD keeps every non-zero singular value
    np.testing.assert_allclose(all_user_scores(model, data), x @ reference_ease(x, 5.0), atol=1e-3)


def test_ease_low_rank_truncated_keeps_the_ranking_close() -> None:
    data = random_log(n_users=80, n_items=30, seed=3)
    x = binary_matrix(data)
    exact = x @ reference_ease(x, 20.0)
    approx = all_user_scores(EASE(regularization=20.0, variant="low_rank", rank=12).fit(data), data)
    corr = [np.corrcoef(exact[u], approx[u])[0, 1] for u in range(data.n_users)]
    assert np.median(corr) > 0.9


def test_pruned_ease_keeps_the_largest_entries_of_each_row_and_scores_with_them(tmp_path) -> None:
    data = random_log()
    x = binary_matrix(data)
    dense = reference_ease(x, 5.0)
    model = EASE(regularization=5.0, keep=6).fit(data)
    assert model.fitted_variant == "pruned" and model.weights.getnnz(axis=1).max() <= 6
    kept = np.zeros_like(dense)
    for row in range(len(dense)):
        top = np.argsort(-np.abs(dense[row]), kind="stable")[:6]
        kept[row, top] = dense[row, top]
    np.testing.assert_allclose(model.weights.toarray(), kept, atol=1e-5)
    np.testing.assert_allclose(all_user_scores(model, data), x @ kept, atol=1e-4)
    whole = EASE(regularization=5.0, keep=data.n_items).fit(data)  # every entry kept: dense EASE's scores
    np.testing.assert_allclose(all_user_scores(whole, data), x @ dense, atol=1e-4)
    item = int(np.flatnonzero(x.sum(axis=0))[0])
    assert np.count_nonzero(model.similar(item, data.n_items)) <= 6
    model.save(tmp_path / "ease.model")
    again = EASE.load(tmp_path / "ease.model")
    assert again.fitted_variant == "pruned" and np.array_equal(all_user_scores(again, data), all_user_scores(model, data))
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="keep"):
            EASE(keep=bad)


@pytest.mark.parametrize("params", [{}, {"recent_weight": 0.5}, {"binary": False}, {"binary": False, "recent_weight": 0.3}])
@pytest.mark.parametrize("gather_max", [0, 65_536])  # the rows' product in scipy, or gathered with NumPy
def test_pruned_ease_scores_one_request_as_its_batch_does(params, gather_max, monkeypatch) -> None:
    monkeypatch.setattr("pulserec.models.ease.GATHER_MAX", gather_max)
    data = random_log()
    model = EASE(regularization=5.0, keep=6, **params).fit(data)
    n = data.n_items
    queries = [Query(user=0, items=np.array([3, 3, 7, 1]), weights=np.array([1.0, 0.5, 0.25, 0.1]),
                     timestamps=np.array([1e9, 1e9, 1e9, 0.0]), n_items=n),  # a known user's newer events
               Query(user=None, items=np.array([2, 5, n + 3]), weights=np.array([1.0, 0.6, 0.3]), n_items=n + 5),
               Query(user=4, n_items=n), Query(user=None, items=np.array([n + 1]), n_items=n + 2)]
    for query in queries:
        one, batch = model.score(query, query.n_items), model.score_many([query], query.n_items)[0]
        if one is None:
            assert np.isneginf(batch).all()
        else:
            assert one.shape == batch.shape and one.dtype == np.float32
            np.testing.assert_allclose(one, batch, rtol=1e-5, atol=1e-6)


def test_ease_auto_switches_to_low_rank_past_dense_max_items() -> None:
    data = random_log(n_items=25)
    assert EASE(dense_max_items=30).fit(data).fitted_variant == "dense"
    assert EASE(dense_max_items=10, rank=8).fit(data).fitted_variant == "low_rank"


def reference_rp3beta(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Dense RP3beta without pruning: (P_iu^a P_ui^a) / pop^beta, zero diagonal, l1 rows."""
    pop = x.sum(axis=0)
    p_ui = (x / np.maximum(x.sum(axis=1, keepdims=True), 1)) ** alpha
    p_iu = (x.T / np.maximum(pop[:, None], 1)) ** alpha
    w = (p_iu @ p_ui) * np.where(pop > 0, np.maximum(pop, 1) ** -beta, 0.0)[None, :]
    np.fill_diagonal(w, 0.0)
    return w / np.maximum(w.sum(axis=1, keepdims=True), 1e-300)


@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 0.5), (0.7, 0.3), (1.2, 0.0)])
def test_rp3beta_matches_reference_formula(alpha: float, beta: float) -> None:
    data = random_log()
    x = binary_matrix(data)
    model = RP3beta(alpha=alpha, beta=beta, k=data.n_items, block=7).fit(data)  # blocks cut across rows
    np.testing.assert_allclose(model.similarity.toarray(), reference_rp3beta(x, alpha, beta), atol=1e-6)
    np.testing.assert_allclose(all_user_scores(model, data), x @ reference_rp3beta(x, alpha, beta), atol=1e-5)


def test_rp3beta_keeps_k_neighbours() -> None:
    data = random_log()
    model = RP3beta(k=3).fit(data)
    assert model.similarity.getnnz(axis=1).max() <= 3
    assert model.similarity.diagonal().max() == 0.0


@pytest.mark.parametrize("model", [EASE(regularization=1.0), RP3beta()], ids=["ease", "rp3beta"])
def test_groups_and_unknown_users(model, groups) -> None:
    model.fit(groups)
    a_items, b_items = group_items(groups, "a"), group_items(groups, "b")
    user = groups.user_ids.get("au0")
    seen = groups.items[groups.users == user]
    scores = model.score(Query(user=user, n_items=groups.n_items), groups.n_items).copy()
    scores[seen] = -np.inf
    assert set(np.argsort(-scores)[:2].tolist()) <= set(a_items.tolist())
    query = Query(items=b_items[:3], weights=np.ones(3), n_items=groups.n_items)
    scores = model.score(query, groups.n_items).copy()
    scores[b_items[:3]] = -np.inf
    assert set(np.argsort(-scores)[:3].tolist()) <= set(b_items.tolist())
    assert model.score(Query(), groups.n_items) is None
    similar = model.similar(int(a_items[0]), groups.n_items)
    assert similar is not None and int(np.argmax(similar)) in set(a_items.tolist())


def test_fresh_events_of_a_known_user_count() -> None:
    """A known user's events newer than training join their training row."""
    data = random_log()
    model = EASE(regularization=5.0).fit(data)
    user = 0
    last = data.timestamps[data.users == user].max()
    new_item = int(np.setdiff1d(np.arange(data.n_items), data.items[data.users == user])[0])
    plain = model.score(Query(user=user, n_items=data.n_items), data.n_items)
    fresh = model.score(Query(user=user, items=np.array([new_item]), weights=np.ones(1), timestamps=np.array([last + 1.0]),
                              n_items=data.n_items), data.n_items)
    np.testing.assert_allclose(fresh - plain, model.weights[new_item], atol=1e-5)


def test_recent_weight_adds_the_decayed_recent_items_to_the_binary_history() -> None:
    """x = binary history + recent_weight x the query's recent weights (the long-term weight
    with_long_term added taken off again, its appended older items left out), times B; a known
    user's old items still count once, and the recent items' neighbours gain."""
    data = random_log()
    plain, recent = EASE(regularization=5.0).fit(data), EASE(regularization=5.0, recent_weight=0.5).fit(data)
    user = 3
    row = np.flatnonzero(binary_matrix(data)[user])
    last = data.timestamps[data.users == user].max()
    fresh = int(np.setdiff1d(np.arange(data.n_items), row)[0])
    items, weights = np.array([fresh, row[0], row[1]]), np.array([1.0, 0.6, 0.3])
    query = with_long_term(Query(user=user, items=items, weights=weights, timestamps=np.array([last + 1.0, last, last - 1]),
                                 history=np.sort(np.r_[row, fresh]), n_items=data.n_items), 0.2)
    assert query.long_term == 0.2 and len(query.items) > 3  # the older history items were appended
    x = binary_matrix(data)[user]
    x[fresh] = 1.0
    x[items] += 0.5 * weights
    np.testing.assert_allclose(recent.score(query, data.n_items), x @ recent.weights, atol=1e-4)
    np.testing.assert_allclose(recent.weights, plain.weights)  # the same B: only the query changes
    unknown = Query(items=items, weights=weights, n_items=data.n_items)  # a new user: their query items alone
    np.testing.assert_allclose(recent.score(unknown, data.n_items), (1.0 + 0.5 * weights) @ recent.weights[items], atol=1e-4)


@pytest.mark.parametrize(("cls", "params"), [
    (EASE, {"variant": "sparse"}), (EASE, {"regularization": 0.0}), (EASE, {"regularization": float("nan")}),
    (EASE, {"recent_weight": -0.1}), (EASE, {"recent_weight": float("inf")}),
    (RP3beta, {"k": 0}), (RP3beta, {"alpha": 0.0}), (RP3beta, {"beta": -1.0}),
])
def test_rejects_bad_parameters(cls, params) -> None:
    with pytest.raises(ValueError):
        cls(**params)
