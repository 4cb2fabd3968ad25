"""evaluate(): queries from training history only, seen items excluded, unscorable users count as misses."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from pulserec.config import DEFAULT_EVENT_WEIGHTS
from pulserec.evaluation.evaluate import evaluate, top_k
from pulserec.evaluation.split import leave_last_out
from pulserec.models.interactions import Interactions


class Oracle:
    """Knows the held-out items (and, to test exclusion, loves what the user already saw)."""

    name: ClassVar[str] = "oracle"

    def __init__(self, answers: dict[int, int], can_score: bool = True) -> None:
        self.answers, self.can_score, self.queries = answers, can_score, []

    def fit(self, data, catalog=None):
        return self

    def score(self, query, n_items):
        self.queries.append(query)
        if not self.can_score:
            return None
        scores = np.zeros(n_items, dtype=np.float32)
        scores[query.items] = 10.0  # already seen: must be excluded by the evaluator
        scores[self.answers[query.user]] = 5.0
        return scores

    def similar(self, item, n_items):
        return None


@pytest.fixture
def split():
    rng = np.random.default_rng(1)
    rows = [(f"u{u}", f"i{i}", float(t)) for t, (u, i) in enumerate(zip(rng.integers(0, 6, 80), rng.integers(0, 30, 80)))]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "ts"]).assign(type="view")
    frame = frame.drop_duplicates(["user_id", "item_id"])
    return leave_last_out(Interactions.from_frame(frame, DEFAULT_EVENT_WEIGHTS))


def test_oracle_is_perfect_and_sees_only_training(split) -> None:
    answers = dict(zip(split.test.users.tolist(), split.test.items.tolist()))
    model = Oracle(answers)
    result = evaluate(model, split, ks=(1, 5))
    assert result.metrics["ndcg@1"] == pytest.approx(1.0)
    assert result.metrics["hitrate@5"] == 1.0
    assert result.n_users == len(answers)
    for query in model.queries:
        assert query.timestamps.max() <= split.train.timestamps[split.train.users == query.user].max()
        assert np.all(np.diff(query.timestamps) <= 0)  # newest first
        assert answers[query.user] not in set(query.items.tolist())


def test_model_that_cannot_score_gets_zero(split) -> None:
    answers = dict(zip(split.test.users.tolist(), split.test.items.tolist()))
    result = evaluate(Oracle(answers, can_score=False), split, ks=(5,))
    assert result.metrics["hitrate@5"] == 0.0 and result.metrics["coverage@5"] == 0.0


def test_top_k_excludes_and_pads() -> None:
    import scipy.sparse as sp

    scores = np.array([[0.1, 0.9, 0.5, -np.inf], [np.nan, -np.inf, -np.inf, 1.0]], dtype=np.float32)
    exclude = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 0]]))
    np.testing.assert_array_equal(top_k(scores, 3, exclude), [[2, 0, -1], [3, -1, -1]])
