"""Content TF-IDF (item cold start) and the learned-weight Hybrid."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from planted_groups import group_items

from pulserec.models import registry
from pulserec.models.base import Query
from pulserec.models.content import ContentTFIDF
from pulserec.models.hybrid import Hybrid


def test_content_scores_a_cold_item_by_its_metadata(groups, group_catalog) -> None:
    model = ContentTFIDF().fit(groups, group_catalog)
    new = model.item_ids.get("a_new")
    assert new is not None and new >= groups.n_items  # appended after the training items
    a, b = group_items(groups, "a"), group_items(groups, "b")
    scores = model.score(Query(items=a[:2], weights=np.ones(2)), len(model.item_ids))
    assert scores[new] > scores[b].max()
    assert model.score(Query(items=b[:2], weights=np.ones(2)), len(model.item_ids))[new] < scores[new]
    reasons = model.explain(Query(items=a[:2], weights=np.ones(2), types=("click", "click")), np.array([new]))
    assert reasons[0] is not None and reasons[0].item in set(a[:2].tolist())


def test_content_without_catalogue_cannot_score(groups) -> None:
    model = ContentTFIDF().fit(groups, None)
    assert model.score(Query(items=np.array([0]), weights=np.ones(1)), groups.n_items) is None


def test_content_recent_items_weigh_more(groups, group_catalog) -> None:
    model = ContentTFIDF(decay_halflife=0.5).fit(groups, group_catalog)
    a, b = group_items(groups, "a"), group_items(groups, "b")
    scores = model.score(Query(items=np.array([b[0], a[0]]), weights=np.ones(2)), groups.n_items)
    assert scores[b[1]] > scores[a[1]]  # b[0] is the most recent


class AntiModel:
    """Deliberately wrong: recommends the other group's items."""

    name: ClassVar[str] = "anti"

    def fit(self, data, catalog=None):
        self.groups = np.array([i[0] for i in data.item_ids.ids])
        self.user_group = np.array([u[0] for u in data.user_ids.ids])
        return self

    def score(self, query, n_items):
        return (self.groups != self.user_group[query.user]).astype(np.float32)[:n_items]

    def similar(self, item, n_items):
        return None


def test_hybrid_learns_to_ignore_a_bad_component(groups, monkeypatch) -> None:
    monkeypatch.setitem(registry.MODELS, "anti", f"{__name__}:AntiModel")
    model = Hybrid(
        components=[("item_knn_bm25", {"k": 10}), "anti"], validation="leave-last-out", grid=(0.0, 1.0)
    ).fit(groups)
    assert model.weights == [1.0, 0.0]
    user = groups.user_ids.get("bu0")
    scores = model.score(Query(user=user), groups.n_items)
    seen = groups.items[groups.users == user]
    scores[seen] = -np.inf
    assert set(np.argsort(-scores)[:2].tolist()) <= set(group_items(groups, "b").tolist())
    np.testing.assert_allclose(model.score_many([Query(user=user)], groups.n_items)[0][np.isfinite(scores)],
                               scores[np.isfinite(scores)], rtol=1e-5)


def test_hybrid_round_trip(groups, group_catalog, tmp_path) -> None:
    model = Hybrid(components=[("als", {"factors": 2}), "content"], validation="leave-last-out").fit(
        groups, group_catalog
    )
    model.save(tmp_path / "hybrid.model")
    loaded = Hybrid.load(tmp_path / "hybrid.model")
    query = Query(items=group_items(groups, "a")[:2], weights=np.ones(2))
    np.testing.assert_allclose(loaded.score(query, groups.n_items), model.score(query, groups.n_items))
