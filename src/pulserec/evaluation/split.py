"""Train/test splits of an interaction log that do not leak the future into training.

Two ways to hold data out:

* :func:`time_split` — one global cut: everything at or after the cut time is test. No event
  of any user after the cut is seen in training (the honest setting for a live system).
* :func:`leave_last_out` — each user's last `n` events are test. Common in the literature, but
  other users' later events remain in training; use it for comparison with published numbers.

:func:`validation_split` carves a validation split out of a training log the same way, for
choosing hyper-parameters without touching the test split.

Both return a :class:`Split` whose training log is re-indexed to the users and items seen in
training, so a model trained on it cannot know that test-only items exist. The held-out part is
handled honestly: events of users never seen in training are dropped (nobody can personalise for
them; they are counted in ``stats``), items never seen in training stay in the ground truth with
ids past the training catalogue (every model misses them; counted), and held-out items that the
user already had in training are dropped, since evaluation excludes seen items."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pulserec.ids import IdIndex
from pulserec.models.interactions import Interactions

METHODS = ("time", "leave-last-out")


@dataclass
class Holdout:
    """Held-out events in the training log's numbering.

    `items` >= `n_known_items` are items never seen in training (one id per distinct item)."""

    users: np.ndarray
    items: np.ndarray
    values: np.ndarray
    timestamps: np.ndarray
    n_known_items: int
    n_items: int  # known + unknown

    def __len__(self) -> int:
        return len(self.users)


@dataclass
class Split:
    name: str
    train: Interactions
    test: Holdout
    cut_time: float | None = None
    stats: dict[str, int] = field(default_factory=dict)


def time_split(data: Interactions, test_fraction: float = 0.2) -> Split:
    """Global cut: the last `test_fraction` of events (by timestamp) are test."""
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be in (0, 1)")
    cut = float(np.quantile(data.timestamps, 1.0 - test_fraction, method="higher")) if len(data) else 0.0
    test_mask = data.timestamps >= cut
    split = _make_split("time", data, ~test_mask, test_mask)
    split.cut_time = cut
    return split


def leave_last_out(data: Interactions, n: int = 1) -> Split:
    """Each user's `n` latest events are test (users with at most `n` events stay in training)."""
    order = np.lexsort((-np.arange(len(data)), -data.timestamps, data.users))  # per user, newest first
    users_sorted = data.users[order]
    starts = np.r_[0, np.flatnonzero(users_sorted[1:] != users_sorted[:-1]) + 1]
    counts = np.diff(np.r_[starts, len(order)])
    rank = np.arange(len(order)) - np.repeat(starts, counts)
    eligible = np.repeat(counts > n, counts)
    test_mask = np.zeros(len(data), dtype=bool)
    test_mask[order[(rank < n) & eligible]] = True
    return _make_split("leave-last-out", data, ~test_mask, test_mask)


def make_split(data: Interactions, method: str, **params: float) -> Split:
    """Split by method name: "time" (test_fraction) or "leave-last-out" (n)."""
    if method == "time":
        return time_split(data, **params)
    if method == "leave-last-out":
        return leave_last_out(data, **{k: int(v) for k, v in params.items()})
    raise ValueError(f"unknown split {method!r}; choose one of {', '.join(METHODS)}")


def validation_split(train: Interactions, method: str = "time", **params: float) -> Split:
    """A split carved from training data only (for hyper-parameters and blend weights)."""
    split = make_split(train, method, **params)
    split.name = f"validation-{split.name}"
    return split


def _make_split(name: str, data: Interactions, train_mask: np.ndarray, test_mask: np.ndarray) -> Split:
    """Re-index the training rows compactly and map the held-out rows into that numbering."""
    train_users, user_new = np.unique(data.users[train_mask], return_inverse=True)
    train_items, item_new = np.unique(data.items[train_mask], return_inverse=True)
    user_map = np.full(max(data.n_users, 1), -1, dtype=np.int64)
    user_map[train_users] = np.arange(len(train_users))
    item_map = np.full(max(data.n_items, 1), -1, dtype=np.int64)
    item_map[train_items] = np.arange(len(train_items))
    train = Interactions(
        users=user_new,
        items=item_new,
        weights=data.weights[train_mask],
        timestamps=data.timestamps[train_mask],
        types=data.types[train_mask],
        user_ids=IdIndex(data.user_ids.ids_of(train_users)),
        item_ids=IdIndex(data.item_ids.ids_of(train_items)),
        values=data.values[train_mask],
    )
    held_users = user_map[data.users[test_mask]]
    held_items_old = data.items[test_mask]
    warm = held_users >= 0
    stats = {
        "train_rows": int(train_mask.sum()),
        "test_rows": int(test_mask.sum()),
        "cold_user_rows": int((~warm).sum()),
        "cold_users": int(len(np.unique(data.users[test_mask][~warm]))),
    }
    held_users, held_items_old = held_users[warm], held_items_old[warm]
    values, stamps = data.values[test_mask][warm], data.timestamps[test_mask][warm]
    held_items = item_map[held_items_old]
    unknown = held_items < 0
    unknown_ids, unknown_new = np.unique(held_items_old[unknown], return_inverse=True)
    held_items[unknown] = len(train_items) + unknown_new
    stats["unknown_item_rows"] = int(unknown.sum())
    stats["unknown_items"] = int(len(unknown_ids))
    seen_keys = np.unique(train.users * max(len(train_items), 1) + train.items)
    keys = held_users * max(len(train_items), 1) + held_items
    repeat = ~unknown & np.isin(keys, seen_keys)
    stats["repeat_rows"] = int(repeat.sum())
    keep = ~repeat
    test = Holdout(
        users=held_users[keep],
        items=held_items[keep],
        values=values[keep],
        timestamps=stamps[keep],
        n_known_items=len(train_items),
        n_items=len(train_items) + len(unknown_ids),
    )
    stats["test_users"] = int(len(np.unique(test.users)))
    return Split(name=name, train=train, test=test, stats=stats)
