"""Every batch model of the zoo on the two-group data: right answer, unknown users, save/load."""

from __future__ import annotations

import numpy as np
import pytest
from planted_groups import group_items

from pulserec.models.base import Query, Recommender
from pulserec.models.registry import MODELS, build_model, model_class

ZOO = {
    "als": {"factors": 2, "iterations": 10, "regularization": 1.0},
    "bpr": {"factors": 2, "epochs": 100, "batch_size": 32, "regularization": 0.05},
    "user_knn": {"k": 5},
    "item_knn_bm25": {"k": 10},
    "ease": {"regularization": 1.0},
    "rp3beta": {"k": 10},
    "adjacency": {"window": 2, "keep": 10},
}


def fitted(name: str, data) -> Recommender:
    return build_model(name, **ZOO[name]).fit(data)


def top_unseen(scores: np.ndarray, seen: np.ndarray, n: int) -> np.ndarray:
    scores = scores.astype(float).copy()
    scores[seen] = -np.inf
    return np.argsort(-scores, kind="stable")[:n]


@pytest.mark.parametrize("name", sorted(ZOO))
def test_registered_and_protocol(name: str) -> None:
    assert name in MODELS
    assert isinstance(model_class(name)(), Recommender)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_known_user_gets_own_group(name: str, groups) -> None:
    model = fitted(name, groups)
    assert model.item_ids is groups.item_ids and model.user_ids is groups.user_ids
    own = set(group_items(groups, "a").tolist())
    for u in range(3):
        user = groups.user_ids.get(f"au{u}")
        seen = groups.items[groups.users == user]
        scores = model.score(Query(user=user, n_items=groups.n_items), groups.n_items)
        assert scores is not None and scores.shape == (groups.n_items,)
        assert set(top_unseen(scores, seen, 2).tolist()) <= own


@pytest.mark.parametrize("name", sorted(ZOO))
def test_unknown_user_folds_in_from_history(name: str, groups) -> None:
    model = fitted(name, groups)
    b_items = group_items(groups, "b")
    query = Query(user=None, items=b_items[:3], weights=np.ones(3, dtype=np.float32), n_items=groups.n_items)
    scores = model.score(query, groups.n_items)
    assert scores is not None
    assert set(top_unseen(scores, b_items[:3], 3).tolist()) <= set(b_items.tolist())
    assert model.score(Query(user=None), groups.n_items) is None


@pytest.mark.parametrize("name", sorted(ZOO))
def test_batch_scores_match_single(name: str, groups) -> None:
    model = fitted(name, groups)
    queries = [Query(user=1), Query(user=None, items=group_items(groups, "a")[:2], weights=np.ones(2))]
    batch = model.score_many(queries, groups.n_items)
    for row, query in zip(batch, queries):
        np.testing.assert_allclose(row, model.score(query, groups.n_items), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_save_load_round_trip(name: str, groups, tmp_path) -> None:
    model = fitted(name, groups)
    path = tmp_path / f"{name}.model"
    model.save(path)
    loaded = model_class(name).load(path)
    query = Query(user=None, items=group_items(groups, "a")[:2], weights=np.ones(2))
    np.testing.assert_array_equal(loaded.score(query, groups.n_items), model.score(query, groups.n_items))
    assert loaded.item_ids.ids == groups.item_ids.ids


@pytest.mark.parametrize("name", sorted(ZOO))
def test_similar_items_stay_in_group(name: str, groups) -> None:
    model = fitted(name, groups)
    a = group_items(groups, "a")
    sims = model.similar(int(a[0]), groups.n_items)
    assert sims is not None
    best = [i for i in np.argsort(-sims) if i != a[0]][:2]
    assert set(best) <= set(a.tolist())
    assert model.similar(groups.n_items + 5, groups.n_items) is None


@pytest.mark.parametrize("name", sorted(ZOO))
def test_scores_pad_to_a_grown_catalogue(name: str, groups) -> None:
    model = fitted(name, groups)
    scores = model.score(Query(user=0), groups.n_items + 3)
    assert scores.shape == (groups.n_items + 3,)
    assert np.isneginf(scores[-3:]).all()
