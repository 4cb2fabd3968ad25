"""A learned blend never loses to its best input on validation (issue 18.2)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from test_content_hybrid import AntiModel

from pulserec.config import DEFAULT_EVENT_WEIGHTS

from pulserec.evaluation.evaluate import evaluate
from pulserec.evaluation.split import leave_last_out, mixed_parts, validation_split
from pulserec.models import registry
from pulserec.models.blend_search import search_weights
from pulserec.models.hybrid import BALANCED, Hybrid
from pulserec.models.interactions import Interactions


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


class NextOnly:
    """Knows the sequence only: the successor of the user's latest chain item (c3 -> c4)."""

    name: ClassVar[str] = "next_only"

    def fit(self, data, catalog=None):
        self.ids = data.item_ids
        return self

    def score(self, query, n_items):
        scores = np.full(n_items, -np.inf, dtype=np.float32)  # nothing else: no accidental hits
        latest = self.ids.ids[int(query.items[0])] if len(query.items) else ""
        successor = self.ids.get(f"c{int(latest[1:]) + 1}") if latest.startswith("c") else None
        if successor is not None and successor < n_items:
            scores[successor] = 1.0
        return scores

    def similar(self, item, n_items):
        return None


class TasteOnly:
    """Knows long-term taste only: the items of the user's group."""

    name: ClassVar[str] = "taste_only"

    def fit(self, data, catalog=None):
        self.item_group = np.array([i[1] if i.startswith("t") else "-" for i in data.item_ids.ids])
        self.user_group = np.array([u[1] for u in data.user_ids.ids])
        return self

    def score(self, query, n_items):
        mine = self.item_group == self.user_group[query.user]
        return np.where(mine, 1.0, -np.inf).astype(np.float32)[:n_items]

    def similar(self, item, n_items):
        return None


def taste_and_sequence() -> Interactions:
    """Users of two taste groups (8 of their group's 10 items early on), each ending on a run of
    three consecutive chain items: the next item follows the chain, the rest is taste. Users
    come one after another (the latest period of the log holds the last users' events)."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(80):
        group = u % 2
        for ts, j in enumerate(rng.choice(10, 8, replace=False)):
            rows.append((f"u{group}-{u}", f"t{group}-{j}", 1000.0 * u + ts))
        start = int(rng.integers(0, 27))
        rows += [(f"u{group}-{u}", f"c{start + step}", 1000.0 * u + 100.0 + step) for step in range(3)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "ts"]).assign(type="view")
    return Interactions.from_frame(frame, DEFAULT_EVENT_WEIGHTS)


def test_mixed_parts_split_the_next_item_from_the_rest() -> None:
    split = validation_split(taste_and_sequence(), "mixed")
    parts = mixed_parts(split)
    test, nxt, taste = split.test, parts["next"].test, parts["taste"].test
    assert len(nxt) + len(taste) == len(test) and len(np.unique(nxt.users)) == len(nxt)  # one per user
    for user in np.unique(test.users):
        assert nxt.timestamps[nxt.users == user].item() == test.timestamps[test.users == user].max()
    assert (nxt.timestamps % 1000 >= 100).all() and parts["taste"].train is split.train


def test_balanced_validation_serves_the_next_item_and_the_taste_alike(monkeypatch) -> None:
    """Each source is best on one target and (nearly) useless on the other: on "balanced"
    validation either alone scores well below one (each target relative to its best source),
    the blend of both nearly one."""
    monkeypatch.setitem(registry.MODELS, "next_only", f"{__name__}:NextOnly")
    monkeypatch.setitem(registry.MODELS, "taste_only", f"{__name__}:TasteOnly")
    hybrid = Hybrid(components=["next_only", "taste_only"], validation=BALANCED, grid=(0.0, 0.5, 1.0, 2.0))
    hybrid.fit(taste_and_sequence())
    scores = hybrid.validation_scores
    best_single = max(scores["next_only"], scores["taste_only"])
    # relative to each target's best: neither is best on all three (the next item's source also
    # serves the latest period, which holds the last users' chains; the targets weigh by their
    # precision: blend_search.target_weights)
    assert best_single < 0.9, scores
    assert scores["blend"] > max(0.9, best_single + 0.15) and all(w > 0 for w in hybrid.weights), (scores, hybrid.weights)
