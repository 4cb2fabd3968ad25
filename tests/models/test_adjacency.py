"""Temporal adjacency kNN: its counts against a sequence-by-sequence reference, a planted
order signal that unordered co-occurrence (EASE) cannot see, fold-in, save/load, parameters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pulserec.config import DEFAULT_EVENT_WEIGHTS
from pulserec.models.adjacency import AdjacencyKNN, adjacent_counts
from pulserec.models.base import Query
from pulserec.models.ease import EASE
from pulserec.models.interactions import Interactions
from pulserec.models.persist import load_model, save_model


def frame(sequences: dict[str, list[str]]) -> Interactions:
    rows = [{"user_id": user, "item_id": item, "type": "click", "ts": 1_000.0 * u + 10.0 * k}
            for u, (user, items) in enumerate(sequences.items()) for k, item in enumerate(items)]
    return Interactions.from_frame(pd.DataFrame(rows), DEFAULT_EVENT_WEIGHTS)


def planted(n_users: int = 12, seed: int = 3) -> Interactions:
    """Every user takes x, then at once y, then four fillers, then z: y and z share every user
    with x (EASE sees them alike), but only y is next to x in the users' sequences."""
    rng = np.random.default_rng(seed)
    fillers = [f"f{i}" for i in range(8)]
    sequences = {f"u{u}": ["x", "y", *rng.choice(fillers, size=4, replace=False).tolist(), "z"] for u in range(n_users)}
    sequences["new"] = ["x"]
    return frame(sequences)


def test_counts_match_every_sequence_window() -> None:
    rng = np.random.default_rng(0)
    users = np.sort(rng.integers(0, 6, size=60))
    items = rng.integers(0, 9, size=60)
    for window in (1, 3):
        reference = np.zeros((9, 9))
        for k in range(60):
            for d in range(1, window + 1):
                if k + d < 60 and users[k + d] == users[k]:
                    reference[items[k], items[k + d]] += 1
        np.testing.assert_array_equal(adjacent_counts(users, items, 9, window).toarray(), reference)


def test_the_item_next_to_the_history_wins_where_ease_ties() -> None:
    data = planted()
    x, y, z = (data.item_ids.get(i) for i in "xyz")
    query = Query(user=data.user_ids.get("new"), n_items=data.n_items)
    plain = EASE(regularization=1.0).fit(data).score(query, data.n_items)
    assert plain[y] == pytest.approx(plain[z], abs=1e-5)
    scores = AdjacencyKNN(window=1).fit(data).score(query, data.n_items)
    assert scores[y] > 0 and scores[z] == 0.0
    wide = AdjacencyKNN(window=5).fit(data).score(query, data.n_items)
    assert wide[y] > wide[z] == 0.0  # z is six positions after x: outside window 5 too


def test_unknown_users_fold_in_and_batches_equal_single_requests() -> None:
    data = planted()
    model = AdjacencyKNN(window=2, keep=4).fit(data)
    assert model.similarity.getnnz(axis=1).max() <= 4
    y = data.item_ids.get("y")
    cold = Query(user=None, items=np.array([y]), weights=np.array([0.3]), n_items=data.n_items)
    queries = [cold, Query(user=data.user_ids.get("u1"), n_items=data.n_items), Query(user=None)]
    batch = model.score_many(queries, data.n_items + 2)
    for row, query in zip(batch[:2], queries[:2]):
        np.testing.assert_allclose(row, model.score(query, data.n_items + 2), rtol=1e-5, atol=1e-6)
    assert np.isneginf(batch[2]).all() and model.score(queries[2], data.n_items) is None
    assert batch[0][data.item_ids.get("x")] > 0  # x is next to y (before it)


def test_a_newer_event_of_a_known_user_counts() -> None:
    data = planted()
    model = AdjacencyKNN(window=1).fit(data)
    user = data.user_ids.get("new")
    z = data.item_ids.get("z")
    newer = Query(user=user, items=np.array([z]), weights=np.ones(1), timestamps=np.array([1e9]), n_items=data.n_items)
    before = model.score(Query(user=user, n_items=data.n_items), data.n_items)
    after = model.score(newer, data.n_items)
    assert after.sum() > before.sum()


def test_saved_and_loaded_scores_alike(tmp_path) -> None:
    data = planted()
    model = AdjacencyKNN(window=3, beta=0.25, keep=5).fit(data)
    save_model(model, tmp_path / "m.model")
    loaded, _ = load_model(tmp_path / "m.model", expected="adjacency")
    assert (loaded.window, loaded.beta, loaded.keep) == (3, 0.25, 5)
    queries = [Query(user=u, n_items=data.n_items) for u in range(data.n_users)]
    np.testing.assert_array_equal(loaded.score_many(queries, data.n_items), model.score_many(queries, data.n_items))
    np.testing.assert_array_equal(loaded.score(queries[0], data.n_items), model.score(queries[0], data.n_items))


@pytest.mark.parametrize("params", [{"window": 0}, {"window": 2.0}, {"window": True}, {"keep": 0},
                                    {"beta": -0.1}, {"beta": float("nan")}, {"beta": "0.5"}])
def test_invalid_parameters_are_refused(params) -> None:
    with pytest.raises(ValueError):
        AdjacencyKNN(**params)
