"""The blend's and the query's arithmetic, done without catalogue-sized temporaries, gives
the very numbers of the plain formulas: sum_k w_k * normalised(score_k) summed with np.sum,
and the long-term items chosen with np.isin (issue 17.2: recommend at 100k items)."""

from __future__ import annotations

import numpy as np
import pytest

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.ingest.synthetic import as_events
from pulserec.models.blend import Blend, _summed, normalised
from pulserec.models.query import _among


@pytest.fixture
def engine(tmp_path, shop):
    engine = Engine(Settings.load(tmp_path / "data"))
    engine.put_items(list(shop.items))
    engine.ingest(as_events(shop.events))
    yield engine
    engine.close()


def test_the_blend_scores_are_the_formula_bit_for_bit_and_leave_the_parts_alone(engine, shop):
    models = engine.service.models
    blend = Blend([(models.item_knn, 1.0), (models.popular, 0.3), (models.trending, 0.05)])
    totals = engine.state.popularity.total.copy()
    n_items = len(engine.state.catalog)
    users = sorted(set(shop.events["user_id"]))[:20]
    for user in users:
        query = engine.service.query_for(engine.user_key(user))
        parts = [w * normalised(m.score(query, n_items)) for m, w in blend.components]
        expected = np.sum(parts, axis=0)
        got = blend.score_explained(query, n_items).scores
        assert got.tobytes() == expected.tobytes()
    # Popular scores with a view of the state's own counts: the in-place weighting never touches it.
    assert engine.state.popularity.total.tobytes() == totals.tobytes()


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_summed_is_np_sum_bit_for_bit(k):
    rng = np.random.default_rng(k)
    for _ in range(20):
        parts = [rng.random(500) * rng.choice([1e-6, 1.0, 1e6]) for _ in range(k)]
        assert _summed(parts).tobytes() == np.sum(parts, axis=0).tobytes()
    parts = [rng.random(10).astype(np.float32), rng.random(10).astype(np.float32), rng.random(10)]
    assert _summed(parts).dtype == np.sum(parts, axis=0).dtype == np.float64  # a wider part widens the sum
    np.testing.assert_array_equal(_summed(parts), np.sum(parts, axis=0))
    assert _summed([]) is None


def test_among_is_np_isin():
    rng = np.random.default_rng(0)
    for _ in range(200):
        values = np.unique(rng.integers(0, 100_000, int(rng.integers(0, 40))))
        members = rng.integers(0, 100_000, int(rng.integers(0, 25))).tolist() + values[: int(rng.integers(0, 5))].tolist()
        np.testing.assert_array_equal(_among(values, members), np.isin(values, members))
        np.testing.assert_array_equal(_among(values, np.asarray(members, dtype=np.int64)), np.isin(values, members))
