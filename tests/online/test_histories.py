"""Histories.latest reads only the newest segments it needs: the same touches as the whole history."""

from __future__ import annotations

import numpy as np

from pulserec.online.history import Histories, Touch


def test_latest_is_the_tail_of_the_whole_history_across_segments_and_pending():
    rng = np.random.default_rng(3)
    max_len, n = 8, 400
    owners, items = rng.integers(0, 12, n), rng.integers(0, 30, n)
    weights, ts = rng.choice([1.0, 2.0, 3.0], n), np.arange(n, dtype=np.float64)
    types = np.array(["view", "click", "like"], dtype=object)[rng.integers(0, 3, n)]
    hist = Histories(max_len)
    every: dict[int, list[Touch]] = {}
    for o, i, w, t, kind in zip(owners, items, weights, ts, types):
        every.setdefault(int(o), []).append(Touch(int(i), float(w), float(t), str(kind)))
    hist.add_many(owners[:150], items[:150], weights[:150], ts[:150], types[:150])  # a bulk segment
    for k in range(150, 330):  # per-event touches, flushed into segments of different sizes
        hist.add(int(owners[k]), Touch(int(items[k]), float(weights[k]), float(ts[k]), str(types[k])))
        if k in (170, 260, 300):
            hist.flush()
    for k in range(330, n):  # and some still pending
        hist.add(int(owners[k]), Touch(int(items[k]), float(weights[k]), float(ts[k]), str(types[k])))
    assert len(hist.segments) >= 2 and hist._pending
    for owner, touches in every.items():
        assert hist.recent(owner) == touches[-max_len:]
        for k in range(0, max_len + 3):
            assert hist.latest(owner, k) == (touches[-min(k, max_len):] if k else []), (owner, k)
    assert hist.latest(None, 5) == [] and hist.latest(99, 5) == []


def test_owner_counts_over_many_bulk_logs_count_each_owner_once_per_item():
    """Each bulk log's pairs are looked up in the segments of earlier logs (only the rows of
    the log's own owners are read): an (owner, item) pair seen before, in any segment, is not
    counted again."""
    rng = np.random.default_rng(8)
    n = 3000
    owners, items = rng.integers(0, 200, n), rng.integers(0, 60, n)
    weights, ts = np.ones(n), np.arange(n, dtype=np.float64)
    types = np.full(n, "view", dtype=object)
    hist = Histories(5)
    for a, b in ((0, 1500), (1500, 2200), (2200, 2500), (2500, 2600), (2600, 3000)):  # size-tiered segments
        hist.add_many(owners[a:b], items[a:b], weights[a:b], ts[a:b], types[a:b])
    assert len(hist.segments) >= 2
    expected = np.bincount(np.unique(owners * 1000 + items) % 1000, minlength=60)
    assert hist.owner_counts[:60].tolist() == expected.tolist()


def test_seen_items_are_the_seen_set_sorted():
    """`seen_items` (what a recommendation reads) holds exactly `seen`, sorted: one segment, several
    segments, pending touches on top, repeats, an unknown owner."""
    from pulserec.online.history import Histories, Touch

    histories = Histories(max_len=5)
    rng = np.random.default_rng(2)
    for step in range(3):
        for k in range(40):
            histories.add(int(rng.integers(4)), Touch(int(rng.integers(30)), 1.0, 1.7e9 + step * 100 + k, "view"))
        if step < 2:
            histories.flush()  # a segment per step; the last step's touches stay pending
    for owner in (0, 1, 2, 3, 9):
        got = histories.seen_items(owner)
        assert got.dtype == np.int64 and got.tolist() == sorted(histories.seen(owner)), owner
    assert histories.seen_items(None).tolist() == []
