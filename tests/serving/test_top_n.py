"""top_n: the block-maxima selection gives exactly the sorted answer, ties and masks included."""

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


def test_top_n_scans_a_block_that_holds_a_nan() -> None:
    # The block's maximum is NaN, so it says nothing about the block's other scores.
    big = np.zeros(10_000)
    big[[17, 18, 4_000]] = [np.nan, 3.0, 2.0]
    assert top_n(big, 2, np.ones(10_000, dtype=bool)).tolist() == [18, 4_000]
