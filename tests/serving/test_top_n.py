"""top_n: the group-maxima selection gives exactly the sorted answer, ties, masks, NaN and
infinite scores included (NaN last, as a full sort orders them)."""

import numpy as np
import pytest

from pulserec.recommend.service import top_n


def reference(scores: np.ndarray, n: int, mask: np.ndarray) -> np.ndarray:
    candidates = np.flatnonzero(mask)
    return candidates[np.lexsort((candidates, -scores[candidates]))[:n]]


@pytest.mark.parametrize("seed", range(4))
def test_top_n_matches_a_full_sort(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(300):
        size = int(rng.integers(0, 6000))
        scores = rng.random(size) ** 8
        if rng.random() < 0.5:
            scores = np.round(scores, 2)  # many ties, also at the n-th place
        if size and rng.random() < 0.2:
            scores[rng.integers(0, size, int(rng.integers(1, 50)))] = np.nan
        if size and rng.random() < 0.1:
            scores[rng.integers(0, size, 5)] = rng.choice([np.inf, -np.inf])
        mask = rng.random(size) > rng.random()
        n = int(rng.integers(0, 600))
        np.testing.assert_array_equal(top_n(scores, n, mask), reference(scores, n, mask))


def test_top_n_edge_cases() -> None:
    scores = np.array([0.5, 0.9, 0.9, 0.1, 0.7])
    assert top_n(scores, 3, np.ones(5, dtype=bool)).tolist() == [1, 2, 4]
    assert top_n(scores, 10, np.array([True, False, True, False, False])).tolist() == [2, 0]
    assert top_n(scores, 0, np.ones(5, dtype=bool)).tolist() == []
    assert top_n(scores, 2, np.zeros(5, dtype=bool)).tolist() == []
    assert top_n(np.empty(0), 5, np.empty(0, dtype=bool)).tolist() == []
    big = np.zeros(10_000)
    big[[17, 4_000, 9_999]] = [3.0, 2.0, 1.0]
    assert top_n(big, 2, big > 0).tolist() == [17, 4_000]


def test_top_n_sees_past_a_nan() -> None:
    # A group's maximum with a NaN in it is NaN: it says nothing about the group's other scores.
    big = np.zeros(10_000)
    big[[17, 18, 4_000]] = [np.nan, 3.0, 2.0]
    assert top_n(big, 2, np.ones(10_000, dtype=bool)).tolist() == [18, 4_000]
    assert top_n(big, 4, big != 0).tolist() == [18, 4_000, 17]  # fewer scores than asked: NaN last


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_top_n_of_other_dtypes(dtype) -> None:
    rng = np.random.default_rng(1)
    scores, mask = (rng.random(5_000) * 100).astype(dtype), rng.random(5_000) > 0.3
    np.testing.assert_array_equal(top_n(scores, 10, mask), reference(scores, 10, mask))
