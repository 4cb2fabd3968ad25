"""A learned blend never loses to its best input on validation (issue 18.2)."""

from __future__ import annotations

import numpy as np
from test_content_hybrid import AntiModel

from pulserec.evaluation.evaluate import evaluate
from pulserec.evaluation.split import leave_last_out
from pulserec.models import registry
from pulserec.models.hybrid import Hybrid, search_weights


def test_search_starts_from_the_best_single_component() -> None:
    """An objective where the equal blend is a local optimum of the coordinate search (every
    single change from it scores worse) and component 0 alone is best: the search must end on
    component 0 alone, not on the equal blend."""
    def objective(w: np.ndarray) -> float:
        if np.array_equal(w, [1.0, 0.0, 0.0]):
            return 1.0
        return 0.5 if np.array_equal(w, [1.0, 1.0, 1.0]) else 0.4

    weights, best, singles = search_weights(objective, 3, grid=(0.0, 0.5, 1.0), rounds=2)
    assert weights.tolist() == [1.0, 0.0, 0.0]
    assert best == 1.0 == max(singles)


def test_blend_keeps_up_with_a_dominant_source(groups, monkeypatch) -> None:
    """One good source beside a bad one (a model that recommends the wrong group): the blend
    scores at least as well as the good source, on validation and on a test split."""
    monkeypatch.setitem(registry.MODELS, "anti", "test_content_hybrid:AntiModel")
    assert AntiModel.name == "anti"
    split = leave_last_out(groups)
    components = [("item_knn_bm25", {"k": 10}), "anti"]
    hybrid = Hybrid(components=components, validation="leave-last-out")
    blended = evaluate(hybrid, split, ks=(10,)).metrics["ndcg@10"]
    alone = evaluate(registry.build_model("item_knn_bm25", k=10), split, ks=(10,)).metrics["ndcg@10"]
    scores = hybrid.validation_scores
    assert scores["blend"] >= max(scores["item_knn_bm25"], scores["anti"])
    assert scores["item_knn_bm25"] > scores["anti"]
    assert blended >= alone - 1e-9
