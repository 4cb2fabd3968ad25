"""The long-term part of the served query, capped (long_term_max_items): the recent items always
count, of the older ones those most owners share, and with no cap every history item."""

from __future__ import annotations

import numpy as np
import pytest

from pulserec.config import Settings
from pulserec.models.query import build_query
from pulserec.online.history import Touch


def query(max_items: int, support: np.ndarray | None):
    recent = [Touch(item, 1.0, 100.0 + k, "view") for k, item in enumerate((7, 3))]  # 3 is the newest
    return build_query(1, recent, max_items=20, position_decay=4.0, now=200.0, n_items=12,
                       seen={0, 1, 2, 3, 4, 5, 6, 7, 11}, long_term_weight=0.1, long_term_max_items=max_items,
                       support=support)


def test_every_history_item_counts_without_a_cap():
    q = query(0, None)
    assert q.items.tolist() == [3, 7, 0, 1, 2, 4, 5, 6, 11]
    np.testing.assert_allclose(q.weights[2:], 0.1)


def test_the_cap_keeps_the_recent_items_and_the_most_shared_older_ones():
    support = np.array([5, 1, 9, 50, 9, 0, 2, 40])  # item 11 is past its end: no owners counted
    q = query(3, support)
    assert q.items.tolist() == [3, 7, 0, 2, 4]  # recent first; then 2 and 4 (9 each, lower index first), 0 (5)
    assert q.history.tolist() == [0, 2, 3, 4, 7]
    assert query(100, support).items.tolist() == query(0, support).items.tolist()  # a cap above the history


def test_the_setting_is_checked(tmp_path):
    with pytest.raises(ValueError, match="long_term_max_items"):
        Settings.load(tmp_path, long_term_max_items=-1)
    assert Settings.load(tmp_path).long_term_max_items == 0
