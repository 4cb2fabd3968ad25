"""The query's recent part from history columns (models/query.py `_recent_part`) equals the
per-touch loop it replaced, to the bit: distinct items (the vectorised pass) and repeats (the
loop), equal weights, more touches than `max_items`, from `Touch`es and from the in-memory
histories' columns alike."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pulserec.models.query import RecentTouches, build_query, recent_of, touch_columns
from pulserec.online.history import Histories, Touch


def loop_query(recent: list[Touch], max_items: int, position_decay: float):
    """The query's recent part as build_query computed it touch by touch (before the columns)."""
    items, weights, types, stamps, slot = [], [], [], [], {}
    for touch in reversed(recent):
        pos = slot.get(touch.item)
        if pos is not None:
            if touch.weight > weights[pos] / math.exp(-pos / position_decay):
                weights[pos] = touch.weight * math.exp(-pos / position_decay)
                types[pos] = touch.type
            continue
        if len(items) >= max_items:
            continue
        pos = len(items)
        slot[touch.item] = pos
        items.append(touch.item)
        weights.append(touch.weight * math.exp(-pos / position_decay))
        types.append(touch.type)
        stamps.append(touch.ts)
    return items, weights, tuple(types), stamps


def touches(rng, n: int, n_items: int) -> list[Touch]:
    kinds = [("view", 1.0), ("click", 2.0), ("like", 2.0), ("purchase", 0.7)]  # equal weights: ties
    return [Touch(int(rng.integers(n_items)), kinds[k][1], 1.7e9 + 60.0 * i, kinds[k][0])
            for i, k in enumerate(rng.integers(0, 4, n).tolist())]


@pytest.mark.parametrize("n, n_items, max_items, decay", [
    (0, 10, 20, 10.0), (1, 10, 20, 10.0), (50, 10**6, 20, 10.0), (50, 10**6, 60, 3.0),  # distinct items
    (50, 12, 20, 10.0), (200, 30, 20, 7.0), (200, 400, 50, 1.3), (5, 2, 1, 10.0),  # repeats
])
def test_recent_part_equals_the_touch_loop(n, n_items, max_items, decay):
    rng = np.random.default_rng(n * 31 + n_items)
    recent = touches(rng, n, n_items)
    items, weights, types, stamps = loop_query(recent, max_items, decay)
    for given in (recent, touch_columns(recent)):
        query = build_query(7, given, max_items=max_items, position_decay=decay, now=1.8e9, n_items=n_items)
        assert query.items.tolist() == items and query.items.dtype == np.int64
        assert query.weights.tobytes() == np.asarray(weights, dtype=np.float64).tobytes()  # to the bit
        assert query.types == types and query.timestamps.tolist() == stamps


def test_columns_of_the_histories_equal_their_touches():
    """`recent_of` reads the in-memory histories' columns; they hold what `recent` gives."""
    histories = Histories(max_len=30)
    rng = np.random.default_rng(3)
    for touch in touches(rng, 80, 25):
        histories.add(4, touch)
    histories.flush()  # a segment below the next touches
    for touch in touches(rng, 12, 25):
        histories.add(4, touch)
    got = recent_of(histories, 4)
    assert isinstance(got, RecentTouches)
    assert touch_columns(histories.recent(4)).items.tolist() == got.items.tolist()
    assert [tuple(c.tolist()) for c in touch_columns(histories.recent(4))] == [tuple(c.tolist()) for c in got]
    assert len(recent_of(histories, None).items) == 0
