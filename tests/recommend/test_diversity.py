"""Slate diversity: the category cap and MMR, as pure functions and through a real engine."""

from __future__ import annotations

import numpy as np
import pytest

from pulserec.config import Settings
from pulserec.ingest.synthetic import as_events
from pulserec.recommend.diversity import Diversity, intra_list_diversity, rerank, tag_similarity
from pulserec.recommend.filters import Filters


@pytest.fixture
def settings(tmp_path, backend) -> Settings:
    """Both online states: MMR reads the co-occurrence rows through the State protocol."""
    return Settings.load(tmp_path / "data", **backend)


def _fixed(matrix: np.ndarray):
    return lambda pool: matrix[np.ix_(pool, pool)] * (1 - np.eye(len(pool)))


def test_mmr_trades_relevance_for_dissimilarity_exactly():
    scores = np.array([1.0, 0.9, 0.8, 0.1])
    sims = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float)
    mask = np.ones(4, dtype=bool)
    none = np.full(4, -1)
    assert rerank(scores, mask, 3, Diversity(), none, _fixed(sims)).tolist() == [0, 1, 2]
    # d = 0.5: after item 0, item 1 is worth 0.5*0.9 - 0.5*1 < item 2's 0.5*0.8 - 0
    assert rerank(scores, mask, 3, Diversity(diversity=0.5), none, _fixed(sims)).tolist() == [0, 2, 3]
    # d = 0.05: relevance still wins for item 1 (0.855 - 0.05 > 0.76); at 0.1 it no longer does
    assert rerank(scores, mask, 2, Diversity(diversity=0.1), none, _fixed(sims)).tolist() == [0, 2]
    assert rerank(scores, mask, 2, Diversity(diversity=0.05), none, _fixed(sims)).tolist() == [0, 1]
    # already on the slate: item 0 (taken) keeps item 1 away
    assert rerank(scores, np.array([False, True, True, True]), 1, Diversity(diversity=0.5), none, _fixed(sims),
                  taken=np.array([0])).tolist() == [2]


def test_category_cap_counts_taken_items_and_leaves_uncategorised_alone():
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    cats = np.array([0, 0, 1, -1, -1])
    mask = np.ones(5, dtype=bool)
    no_sims = _fixed(np.zeros((5, 5)))
    assert rerank(scores, mask, 5, Diversity(max_per_category=1), cats, no_sims).tolist() == [0, 2, 3, 4]
    assert rerank(scores, mask, 5, Diversity(max_per_category=1, diversity=0.3), cats, no_sims).tolist() == [0, 2, 3, 4]
    taken = np.array([2])
    mask[2] = False
    assert rerank(scores, mask, 3, Diversity(max_per_category=1), cats, no_sims, taken=taken).tolist() == [0, 3, 4]


def test_a_real_engine_caps_categories_and_mmr_raises_intra_list_diversity(engine, shop):
    engine.put_items(list(shop.items))
    engine.ingest(as_events(shop.events))
    users = shop.events["user_id"].value_counts().index[:25]
    catalog = engine.state.catalog
    similarity = tag_similarity([r.tags + ((r.category,) if r.category else ()) for r in catalog.records()])

    def slates(**rules):
        out = []
        for user in users:
            answer = engine.recommend(str(user), 10, Filters(**rules), "item_knn")
            out.append(np.array([catalog.item_ids.get(r.item_id) for r in answer.items], dtype=np.int64))
        return out

    for slate in slates(max_per_category=2):
        cats = [catalog.category_of(int(i)) for i in slate]
        assert len(slate) == 10 and max(cats.count(c) for c in set(cats) if c is not None) <= 2
    plain = np.mean([intra_list_diversity(s, similarity) for s in slates()])
    diverse = np.mean([intra_list_diversity(s, similarity) for s in slates(diversity=0.7)])
    assert diverse > plain + 0.02, (plain, diverse)
    first = slates()[0]
    assert slates(diversity=0.0)[0].tolist() == first.tolist()  # 0 is the plain ranking
