"""Metrics against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from pulserec.evaluation.metrics import (
    coverage,
    item_popularity,
    mae,
    novelty,
    ranking_metrics,
    relevance_matrix,
    rmse,
)


def test_one_user_by_hand() -> None:
    recs = np.array([[1, 2, 3]])
    relevant = relevance_matrix(np.array([0, 0]), np.array([2, 5]), 1, 6)
    m = ranking_metrics(recs, relevant, ks=(1, 3))
    assert m["precision@3"] == pytest.approx(1 / 3)
    assert m["recall@3"] == pytest.approx(1 / 2)
    assert m["ndcg@3"] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))
    assert m["mrr@3"] == pytest.approx(1 / 2)
    assert m["hitrate@3"] == 1.0
    assert m["ndcg@1"] == 0.0 and m["hitrate@1"] == 0.0 and m["precision@1"] == 0.0


def test_averages_over_users_and_pads() -> None:
    recs = np.array([[4, -1], [0, 1], [0, 1]])  # user 2 has nothing relevant: not averaged
    relevant = relevance_matrix(np.array([0, 1]), np.array([4, 1]), 3, 5)
    m = ranking_metrics(recs, relevant, ks=(2,))
    assert m["hitrate@2"] == 1.0
    assert m["ndcg@2"] == pytest.approx((1.0 + 1 / np.log2(3)) / 2)
    assert m["mrr@2"] == pytest.approx((1 + 1 / 2) / 2)
    assert m["precision@2"] == pytest.approx((1 / 2 + 1 / 2) / 2)


def test_perfect_ranking_has_ndcg_one() -> None:
    recs = np.array([[3, 1, 0]])
    relevant = relevance_matrix(np.array([0, 0, 0]), np.array([0, 1, 3]), 1, 4)
    assert ranking_metrics(recs, relevant, ks=(3,))["ndcg@3"] == pytest.approx(1.0)


def test_coverage_and_novelty() -> None:
    recs = np.array([[0, 1], [0, 2]])
    assert coverage(recs, n_items=8, k=1) == pytest.approx(1 / 8)
    assert coverage(recs, n_items=8, k=2) == pytest.approx(3 / 8)
    # item 0 seen by 2 of 4 users, item 1 by 1 of 4 (user 0 twice counts once)
    popularity = item_popularity(np.array([0, 1, 2, 2]), np.array([0, 0, 1, 1]), 4, 3)
    np.testing.assert_allclose(popularity, [0.5, 0.25, 0.0])
    assert novelty(np.array([[0, 1]]), popularity, k=2) == pytest.approx((1 + 2) / 2)


def test_rating_errors() -> None:
    assert rmse(np.array([1.0, 3.0]), np.array([2.0, 5.0])) == pytest.approx(np.sqrt((1 + 4) / 2))
    assert mae(np.array([1.0, 3.0]), np.array([2.0, 5.0])) == pytest.approx(1.5)
