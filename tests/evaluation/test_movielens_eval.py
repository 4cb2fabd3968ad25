"""End to end on ml-latest-small (skipped when the data set is absent)."""

from __future__ import annotations

import pytest

from pulserec.config import DEFAULT_EVENT_WEIGHTS
from pulserec.evaluation.evaluate import evaluate
from pulserec.evaluation.split import leave_last_out
from pulserec.models.als import ALS
from pulserec.models.interactions import Interactions
from pulserec.models.item_knn_bm25 import ItemKNNBM25
from pulserec.models.popularity import Popular

pytestmark = pytest.mark.movielens


@pytest.fixture(scope="module")
def split():
    from pulserec.ingest.movielens import movielens_path, read_ratings

    try:
        movielens_path()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    return leave_last_out(Interactions.from_frame(read_ratings(), DEFAULT_EVENT_WEIGHTS))


def test_personalised_models_beat_popularity(split) -> None:
    assert split.stats["test_users"] > 500 and split.stats["cold_users"] == 0
    popular = evaluate(Popular(), split, ks=(10,)).metrics
    for model in (ALS(iterations=8), ItemKNNBM25()):
        metrics = evaluate(model, split, ks=(10,)).metrics
        assert metrics["hitrate@10"] > popular["hitrate@10"]
        assert metrics["coverage@10"] > popular["coverage@10"]
