"""Bulk interning and the dense-range `np.unique` replacements give what one call per value and
`np.unique` give."""

from __future__ import annotations

import numpy as np

from pulserec.ids import IdIndex, distinct_inverse, distinct_of
from pulserec.online.catalog import Catalog


def test_add_many_interns_in_order_of_first_appearance_like_add():
    bulk, one_by_one = IdIndex(["b", "z"]), IdIndex(["b", "z"])
    values = np.array(["c", "b", "a", "c", "y", "z", "a"], dtype=object)
    got = bulk.add_many(values)
    assert got.tolist() == [one_by_one.add(v) for v in values] and bulk.ids == one_by_one.ids
    assert bulk.indices_of(["a", "nope"]) == [bulk.get("a"), None]


def test_intern_many_registers_new_items_with_their_first_rows_time():
    catalog = Catalog()
    catalog.intern("old", 5.0)
    ids = np.array(["new2", "old", "new1", "new2", "new1"], dtype=object)
    got = catalog.intern_many(ids, np.array([30.0, 31.0, 32.0, 33.0, 34.0]))
    assert catalog.item_ids.ids == ["old", "new2", "new1"] and got.tolist() == [1, 0, 2, 1, 2]
    assert catalog.created_ts[:3].tolist() == [5.0, 30.0, 32.0]


def test_distinct_of_and_inverse_equal_np_unique():
    rng = np.random.default_rng(3)
    for values in (rng.integers(0, 50, 300), rng.integers(10**5, 10**5 + 3, 20), np.array([7]), np.zeros(0, np.int64)):
        distinct, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
        assert distinct_of(values).tolist() == distinct.tolist()
        got = distinct_inverse(values)
        assert [a.tolist() for a in got] == [distinct.tolist(), inverse.tolist(), counts.tolist()]
