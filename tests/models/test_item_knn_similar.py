"""Similar items under minimum support: the row's own entries are checked, and the answer is the
dense row with every unsupported item zeroed (what it was when the whole catalogue was checked)."""

from __future__ import annotations

import numpy as np

from pulserec.models.item_knn import ItemKNN
from pulserec.online.cooccurrence import CoOccurrence
from pulserec.online.history import Histories


def test_similar_is_the_dense_row_with_unsupported_items_zeroed():
    rng = np.random.default_rng(5)
    n = 3000
    owners, items = rng.integers(0, 60, n), rng.zipf(1.6, n) % 80
    weights, ts = rng.choice([1.0, 2.0], n), np.sort(rng.uniform(0, 1e6, n))
    cooc = CoOccurrence(5, 86_400.0)
    cooc.add_log(owners, items, weights, ts)
    hist = Histories(50)
    hist.add_many(owners, items, weights, ts, np.array(["view"] * n, dtype=object))
    knn = ItemKNN(cooc, support=hist, min_support=4)
    n_items = 90  # the catalogue knows items the log never named (80-89)
    unsupported = np.zeros(n_items, dtype=bool)
    counts = hist.owner_counts
    unsupported[: len(counts)] = counts[:n_items] < 4
    unsupported[len(counts):] = True
    assert unsupported[:80].any() and not unsupported.all()
    for item in range(80):
        if not cooc.has_item(item):
            assert knn.similar(item, n_items) is None
            continue
        want = cooc.dense_row(item, n_items)
        want[unsupported] = 0.0
        np.testing.assert_array_equal(knn.similar(item, n_items), want)
