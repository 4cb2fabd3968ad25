"""Promotions as a pure slate composition: shares, placement, boosts, windows."""

from __future__ import annotations

import numpy as np

from pulserec.recommend.promotions import Promotion, compose, positions, slots
from pulserec.recommend.top_n import top_n


def _pick(scores, k, mask):
    return top_n(scores, k, mask)


def test_slots_round_half_up_and_spread_evenly():
    assert [slots(0.2, n) for n in (10, 3, 2, 1)] == [2, 1, 0, 0]
    assert slots(1.0, 5) == 5 and slots(0.25, 10) == 3
    assert positions(2, 10) == [2, 7] and positions(1, 10) == [5] and positions(3, 3) == [0, 1, 2]


def test_a_share_takes_its_slots_by_personal_score_then_trending():
    scores = np.array([9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 0.0, 0.0, 3.0, 2.0])
    mask = np.ones(10, dtype=bool)
    promoted = np.zeros(10, dtype=bool)
    promoted[[5, 6, 7]] = True  # 5 has a personal score, 6 and 7 none (7 trends more)
    trending = np.array([0, 0, 0, 0, 0, 0, 1.0, 5.0, 0, 0])
    promo = Promotion("sale", "x", share=0.3)
    slate, boosted = compose(scores, mask, 10, [(promo, promoted)], trending, _pick)
    at = positions(3, 10)
    assert at == [1, 5, 8] and slate.picks.tolist() == [0, 5, 1, 2, 3, 7, 4, 8, 6, 9]
    assert [slate.picks[i] for i in at] == [5, 7, 6]  # personal score first, then by trending
    assert [slate.promoted[i] for i in at] == ["sale"] * 3
    organic = [p for i, p in enumerate(slate.picks.tolist()) if i not in at]
    assert organic == [0, 1, 2, 3, 4, 8, 9]  # the rest in score order, promoted items not twice
    assert all(slate.promoted[i] is None for i in range(10) if i not in at)
    assert np.array_equal(boosted, scores)


def test_boosts_multiply_scores_and_label_what_they_lift():
    scores = np.array([5.0, 4.0, 3.0, 1.0])
    selected = np.array([False, False, False, True])
    slate, boosted = compose(scores, np.ones(4, dtype=bool), 2, [(Promotion("b", "x", boost=10.0), selected)], None, _pick)
    assert slate.picks.tolist() == [3, 0] and slate.promoted == ["b", None] and boosted[3] == 10.0
    none = compose(scores, np.ones(4, dtype=bool), 2, [(Promotion("b", "x", boost=2.0), selected)], None, _pick)[0]
    assert none.picks.tolist() == [0, 1] and none.promoted == [None, None]  # 2.0 is not enough


def test_shares_never_exceed_the_slate_and_respect_the_mask():
    scores = np.arange(10, 0, -1, dtype=float)
    mask = np.ones(10, dtype=bool)
    mask[9] = False
    everything = np.ones(10, dtype=bool)
    promos = [(Promotion("a", "x", share=0.8), everything), (Promotion("b", "x", share=0.8), everything)]
    slate, _ = compose(scores, mask, 5, promos, None, _pick)
    assert len(slate.picks) == 5 and 9 not in slate.picks.tolist() and slate.promoted.count("a") == 4
    assert slate.promoted.count("b") == 1


def test_windows():
    promo = Promotion("w", "x", share=0.1, starts=100.0, ends=200.0)
    assert not promo.running(99.9) and promo.running(100.0) and promo.running(199.9) and not promo.running(200.0)
    assert Promotion("open", "x", share=0.1).running(0.0)
