"""Splits: nothing from the future in training, honest handling of cold users and items."""

from __future__ import annotations

import pandas as pd
import pytest

from pulserec.config import DEFAULT_EVENT_WEIGHTS
from pulserec.evaluation.split import leave_last_out, make_split, time_split, validation_split
from pulserec.models.interactions import Interactions


@pytest.fixture
def log() -> Interactions:
    rows = [
        ("u1", "i1", 1), ("u1", "i2", 2), ("u2", "i1", 3), ("u2", "i3", 4), ("u1", "i3", 5),
        ("u3", "i2", 6), ("u1", "i4", 7),  # i4 only after the cut
        ("u2", "i2", 8), ("u9", "i1", 9),  # u9 only after the cut
        ("u2", "i1", 10),  # u2 already had i1 in training: a repeat
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "ts"]).assign(type="view")
    return Interactions.from_frame(frame, DEFAULT_EVENT_WEIGHTS)


def test_time_split_has_no_future_in_training(log) -> None:
    split = time_split(log, test_fraction=0.4)
    assert split.cut_time == 7
    assert split.train.timestamps.max() < split.cut_time <= split.test.timestamps.min()
    assert sorted(split.train.item_ids.ids) == ["i1", "i2", "i3"]  # i4 unknown to training
    assert sorted(split.train.user_ids.ids) == ["u1", "u2", "u3"]
    assert split.stats["cold_users"] == 1 and split.stats["cold_user_rows"] == 1
    assert split.stats["unknown_items"] == 1 and split.stats["repeat_rows"] == 1
    test = split.test
    u1, u2 = split.train.user_ids.get("u1"), split.train.user_ids.get("u2")
    pairs = set(zip(test.users.tolist(), test.items.tolist()))
    assert pairs == {(u1, test.n_known_items), (u2, split.train.item_ids.get("i2"))}
    assert test.n_items == test.n_known_items + 1


def test_leave_last_out_holds_each_users_latest(log) -> None:
    split = leave_last_out(log)
    train, test = split.train, split.test
    for user in range(train.n_users):
        held = test.timestamps[test.users == user]
        if len(held):
            assert held.min() >= train.timestamps[train.users == user].max()
    assert "u3" in train.user_ids and "u9" in train.user_ids  # single events stay in training
    # held out: u1's i4 (never seen in training) and u2's i1 (a repeat of training: dropped)
    assert split.stats["test_rows"] == 2 and split.stats["repeat_rows"] == 1
    assert split.stats["unknown_items"] == 1 and len(test) == 1
    assert test.users[0] == train.user_ids.get("u1") and test.items[0] >= test.n_known_items


def test_validation_is_carved_from_training_only(log) -> None:
    outer = time_split(log, test_fraction=0.4)
    inner = validation_split(outer.train, "time", test_fraction=0.3)
    assert inner.name == "validation-time"
    assert inner.test.timestamps.max() < outer.cut_time
    assert set(inner.train.item_ids.ids) <= set(outer.train.item_ids.ids)


def test_unknown_method_is_rejected(log) -> None:
    with pytest.raises(ValueError):
        make_split(log, "no-such-split")
    with pytest.raises(ValueError):
        time_split(log, test_fraction=1.5)
