"""The learned re-ranking stage (models/rerank.py): it never serves worse than its best source
on validation (falls back to it), learns what no source knows alone, and saves without pickle."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from planted_groups import two_group_frame
from test_content_hybrid import AntiModel

from pulserec.config import DEFAULT_EVENT_WEIGHTS
from pulserec.evaluation.evaluate import evaluate
from pulserec.evaluation.split import random_split
from pulserec.models import registry
from pulserec.models.base import Query
from pulserec.models.interactions import Interactions
from pulserec.models.persist import SavedState, load_model, save_model
from pulserec.models.rerank import Reranked
from pulserec.models.rerank_features import ItemStats, candidates, ranks_within


class GroupOnly(SavedState):
    """Knows which group a user belongs to, nothing else: every own-group item scores 1."""

    name: ClassVar[str] = "group_only"
    saved_fields: ClassVar[tuple[str, ...]] = ("item_group", "user_group")

    def fit(self, data, catalog=None):
        self.item_group = np.array([i[0] for i in data.item_ids.ids])
        self.user_group = np.array([u[0] for u in data.user_ids.ids])
        return self

    def score(self, query, n_items):
        return (self.item_group == self.user_group[query.user]).astype(np.float32)[:n_items]

    def similar(self, item, n_items):
        return None


def zipf_groups(users_per_group: int = 120, items_per_group: int = 30, per_user: int = 10, seed: int = 0) -> Interactions:
    """Two disjoint groups whose users pick their group's items by a Zipf popularity; the b
    group's items are rarer overall, so global popularity serves b users a's items."""
    rng = np.random.default_rng(seed)
    rows, ts = [], 0.0
    for group, share in (("a", 1.0), ("b", 0.5)):
        p = 1.0 / np.arange(1, items_per_group + 1)
        for u in range(int(users_per_group * share)):
            for item in rng.choice(items_per_group, size=per_user, replace=False, p=p / p.sum()):
                ts += 60.0
                rows.append({"user_id": f"{group}u{u}", "item_id": f"{group}{item}", "type": "click", "ts": ts})
    return Interactions.from_frame(pd.DataFrame(rows), DEFAULT_EVENT_WEIGHTS)


@pytest.fixture
def extra_models(monkeypatch):
    monkeypatch.setitem(registry.MODELS, "anti", "test_content_hybrid:AntiModel")
    monkeypatch.setitem(registry.MODELS, "group_only", f"{__name__}:GroupOnly")
    assert AntiModel.name == "anti"


def test_falls_back_to_a_dominant_source(extra_models) -> None:
    """A good source beside a wrong one, on data too small to grow a tree from (every leaf needs
    300 candidates): the stage cannot beat the good source on validation, so it serves it alone
    and scores exactly as it does on a test split."""
    data = Interactions.from_frame(two_group_frame(users_per_group=6), DEFAULT_EVENT_WEIGHTS)
    split = random_split(data, 0.25)
    model = Reranked(sources=[("item_knn_bm25", {"k": 10}), "anti"], depth=6)
    ranked = evaluate(model, split, ks=(10,)).metrics["ndcg@10"]
    alone = evaluate(registry.build_model("item_knn_bm25", k=10), split, ks=(10,)).metrics["ndcg@10"]
    assert model.learned()["fallback"] == "item_knn_bm25"
    assert model.validation_scores["rerank"] <= model.validation_scores["item_knn_bm25"]
    assert ranked == pytest.approx(alone)


def test_serves_the_ranker_only_where_it_beat_every_source_on_validation(groups, extra_models) -> None:
    """Whatever the data, the choice follows the held half of the validation users: the ranker
    where it scored above the best source there, else that source."""
    model = Reranked(sources=[("item_knn_bm25", {"k": 10}), "anti"], depth=6).fit(groups)
    scores = model.validation_scores
    best = max(("item_knn_bm25", "anti"), key=scores.get)
    assert model.learned()["fallback"] == (None if scores["rerank"] > scores[best] else best)


def test_learns_what_no_source_knows_alone(extra_models) -> None:
    """Group membership (ties within the group) and global popularity (the other group's items
    for b users) each rank badly; together they are the answer: the stage beats both."""
    data = zipf_groups()
    split = random_split(data, 0.25)
    model = Reranked(sources=["group_only", "popular"], depth=30)
    ranked = evaluate(model, split, ks=(10,)).metrics["ndcg@10"]
    singles = [evaluate(registry.build_model(name), split, ks=(10,)).metrics["ndcg@10"] for name in ("group_only", "popular")]
    assert model.learned()["fallback"] is None
    assert model.validation_scores["rerank"] > max(model.validation_scores["group_only"], model.validation_scores["popular"])
    assert ranked > 1.1 * max(singles)


def test_saved_and_loaded_scores_alike(tmp_path, extra_models) -> None:
    data = zipf_groups(users_per_group=80)
    model = Reranked(sources=["group_only", "popular"], depth=30).fit(data)
    assert model.learned()["fallback"] is None  # the learned trees are what is saved
    save_model(model, tmp_path / "r.model")
    loaded, meta = load_model(tmp_path / "r.model", expected="rerank")
    queries = [Query(user=u, n_items=data.n_items, history=data.items[data.users == u]) for u in range(data.n_users)]
    np.testing.assert_allclose(loaded.score_many(queries, data.n_items), model.score_many(queries, data.n_items), rtol=1e-6)
    assert meta["params"]["depth"] == 30


def test_candidates_are_each_sources_top_unseen_items() -> None:
    parts = np.array([[[0.9, 0.8, 0.1, 0.0]], [[0.0, 0.2, 0.3, 0.7]]], dtype=np.float32)  # 2 sources, 1 query
    seen = sp.csr_matrix(np.array([[1, 0, 0, 0]], dtype=np.float32))
    rows, items = candidates(parts, seen, depth=1)
    assert rows.tolist() == [0, 0] and items.tolist() == [1, 3]  # item 0 is seen; item 2 is nobody's best


def test_ranks_are_per_query_largest_first() -> None:
    rows = np.array([0, 0, 0, 1, 1])
    assert ranks_within(rows, np.array([0.1, 0.9, 0.5, 2.0, 3.0])).tolist() == [2, 0, 1, 1, 0]


@pytest.mark.parametrize("params", [{"depth": 0}, {"sources": []}])
def test_invalid_parameters_are_refused(params) -> None:
    with pytest.raises(ValueError):
        Reranked(**params)


def test_events_while_the_user_was_active_are_counted_per_item() -> None:
    rows = [{"user_id": "u", "item_id": "x", "type": "click", "ts": 100.0},
            {"user_id": "u", "item_id": "y", "type": "click", "ts": 200.0},
            *({"user_id": f"o{k}", "item_id": "z", "type": "click", "ts": t} for k, t in enumerate((50.0, 150.0, 160.0, 900.0)))]
    data = Interactions.from_frame(pd.DataFrame(rows), DEFAULT_EVENT_WEIGHTS)
    stats = ItemStats.fit(data, None)
    u, z = data.user_ids.get("u"), data.item_ids.get("z")
    first, last = stats.active_window([Query(user=u, now=1000.0)])
    assert (first[0], last[0]) == (100.0, 200.0)
    assert stats.events_between(np.array([z, z]), np.array([100.0, 0.0]), np.array([200.0, 1e9])).tolist() == [2, 4]
