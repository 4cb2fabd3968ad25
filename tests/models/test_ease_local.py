"""Time-local EASE: its Gram matrix against a pair-by-pair reference, and as a model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pulserec.config import DEFAULT_EVENT_WEIGHTS
from pulserec.models.base import Query
from pulserec.models.ease import EASE
from pulserec.models.ease_local import TimeLocalEASE, local_pairs, time_local_gram
from pulserec.models.interactions import Interactions
from pulserec.models.persist import load_model, save_model


def timed_log(n_users: int = 30, n_items: int = 15, per_user: int = 7, seed: int = 2) -> Interactions:
    """Each user's events at random times over two days (sessions close together and far apart),
    one item twice (its first time counts)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=per_user, replace=False).tolist()
        times = np.sort(rng.uniform(0, 2 * 86_400.0, size=per_user + 1))
        for item, ts in zip([*items, items[0]], times):
            rows.append({"user_id": f"u{u}", "item_id": f"i{item}", "type": "click", "ts": float(ts)})
    return Interactions.from_frame(pd.DataFrame(rows), DEFAULT_EVENT_WEIGHTS)


def reference_gram(data: Interactions, scale: float, floor: float) -> np.ndarray:
    """Every pair of a user's distinct items, at the times each was first met (no cut-off)."""
    gram = np.zeros((data.n_items, data.n_items))
    for user in range(data.n_users):
        first: dict[int, float] = {}
        for i, t in sorted(zip(data.items[data.users == user].tolist(), data.timestamps[data.users == user].tolist()),
                           key=lambda p: p[1]):
            first.setdefault(i, t)
        for i, ti in first.items():
            for j, tj in first.items():
                gram[i, j] += 1.0 if i == j else floor + (1 - floor) * np.exp(-abs(ti - tj) / scale)
    return gram


@pytest.mark.parametrize("floor", [0.0, 0.3])
def test_gram_matches_every_pair_weighted_by_its_time_gap(floor: float) -> None:
    data = timed_log()
    scale = 4 * 86_400.0  # the cut-off (10 scales) reaches every pair of the two days
    np.testing.assert_allclose(time_local_gram(data, scale, floor), reference_gram(data, scale, floor), rtol=1e-5, atol=1e-5)


def test_pairs_beyond_the_cutoff_are_left_out() -> None:
    users = np.array([0, 0, 0, 1, 1])
    times = np.array([0.0, 10.0, 100.0, 0.0, 5.0])
    pairs = sorted((int(a), int(b)) for chunk in local_pairs(users, times, cutoff=20.0) for a, b in zip(chunk[0], chunk[1]))
    assert pairs == [(0, 1), (3, 4)]  # 0-2 and 1-2 are too far apart; no pair across users


def test_floor_one_is_plain_ease() -> None:
    data = timed_log()
    plain = EASE(regularization=5.0, variant="dense").fit(data)
    local = TimeLocalEASE(regularization=5.0, time_scale=60.0, floor=1.0, variant="dense").fit(data)
    np.testing.assert_allclose(local.weights, plain.weights, atol=1e-5)


def test_close_pairs_predict_each_other_more_than_plain_ease() -> None:
    """u0..u9 take x then y in one minute, and z a day later: locally, x predicts y over z."""
    rows = []
    for u in range(10):
        for item, ts in (("x", 0.0), ("y", 60.0), ("z", 86_400.0)):
            rows.append({"user_id": f"u{u}", "item_id": item, "type": "click", "ts": u * 10 * 86_400.0 + ts})
    rows.append({"user_id": "new", "item_id": "x", "type": "click", "ts": 1e7})
    data = Interactions.from_frame(pd.DataFrame(rows), DEFAULT_EVENT_WEIGHTS)
    x, y, z = (data.item_ids.get(i) for i in "xyz")
    query = Query(user=data.user_ids.get("new"), n_items=data.n_items)
    plain = EASE(regularization=1.0).fit(data).score(query, data.n_items)
    local = TimeLocalEASE(regularization=1.0, time_scale=3600.0).fit(data).score(query, data.n_items)
    assert plain[y] == pytest.approx(plain[z], abs=1e-5)
    assert local[y] > local[z] + 0.1


def test_saved_and_loaded_scores_alike(tmp_path) -> None:
    data = timed_log()
    model = TimeLocalEASE(regularization=5.0, time_scale=1800.0, floor=0.2).fit(data)
    save_model(model, tmp_path / "m.model")
    loaded, _ = load_model(tmp_path / "m.model", expected="ease_local")
    assert (loaded.time_scale, loaded.floor) == (1800.0, 0.2)
    queries = [Query(user=u, n_items=data.n_items) for u in range(data.n_users)]
    np.testing.assert_array_equal(loaded.score_many(queries, data.n_items), model.score_many(queries, data.n_items))


@pytest.mark.parametrize("params", [{"time_scale": 0.0}, {"time_scale": float("inf")}, {"floor": -0.1},
                                    {"floor": 1.5}, {"regularization": 0.0}])
def test_invalid_parameters_are_refused(params) -> None:
    with pytest.raises(ValueError):
        TimeLocalEASE(**params)
