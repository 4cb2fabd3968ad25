"""Train/test splits of an interaction log that do not leak the future into training.

Ways to hold data out:

* :func:`time_split` — one global cut: everything at or after the cut time is test. No event
  of any user after the cut is seen in training (the honest setting for a live system).
* :func:`leave_last_out` — each user's last `n` events are test. Common in the literature, but
  other users' later events remain in training; use it for comparison with published numbers.
* :func:`mixed_split` — each user's last event and a random tenth of the others: the
  default validation target of learned blends (neither kind of split alone).
* :func:`random_split` — each user's events are held out at random (25% by default): the
  returning user with a long history, whose long-term taste is what counts (the protocol of
  Microsoft Recommenders' MovieLens tables).

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

METHODS = ("time", "leave-last-out", "random", "mixed")
#: Below this many test users a split's averages are too noisy to rank models (warned about).
MIN_TEST_USERS = 200


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


def time_split(data: Interactions, test_fraction: float = 0.2, warm_start: int = 0) -> Split:
    """Global cut: the last `test_fraction` of events (by timestamp) are test.

    Users who first appear after the cut cannot be personalised and are dropped (counted as
    cold). With `warm_start` = n, such a user's first n events after the cut go to training
    instead, as a live system would have seen them before the rest: on logs where most users
    are active only briefly (MovieLens), this is what gives a time split enough test users."""
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be in (0, 1)")
    cut = float(np.quantile(data.timestamps, 1.0 - test_fraction, method="higher")) if len(data) else 0.0
    test_mask = data.timestamps >= cut
    if warm_start > 0 and test_mask.any():
        test_mask &= ~_new_users_first(data, test_mask, int(warm_start))
    split = _make_split("time", data, ~test_mask, test_mask)
    split.cut_time = cut
    return split


def _new_users_first(data: Interactions, test_mask: np.ndarray, n: int | np.ndarray) -> np.ndarray:
    """Rows that are the first n events of a user with no event before the cut (`n`: one count,
    or one per user index)."""
    has_train = np.zeros(data.n_users, dtype=bool)
    has_train[data.users[~test_mask]] = True
    order = np.lexsort((np.arange(len(data)), data.timestamps, data.users))  # per user, oldest first
    users_sorted = data.users[order]
    starts = np.r_[0, np.flatnonzero(users_sorted[1:] != users_sorted[:-1]) + 1]
    counts = np.diff(np.r_[starts, len(order)])
    rank = np.arange(len(order)) - np.repeat(starts, counts)
    out = np.zeros(len(data), dtype=bool)
    limit = n[users_sorted] if isinstance(n, np.ndarray) else n
    out[order[(rank < limit) & ~has_train[users_sorted]]] = True
    return out


def leave_last_out(data: Interactions, n: int = 1) -> Split:
    """Each user's `n` latest events are test (users with at most `n` events stay in training)."""
    return _make_split("leave-last-out", data, ~_last_mask(data, n), _last_mask(data, n))


def _per_user_rank(data: Interactions, key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, rank within the user by ascending `key`, the user's event count) per sorted row."""
    order = np.lexsort((key, data.users))
    users_sorted = data.users[order]
    starts = np.r_[0, np.flatnonzero(users_sorted[1:] != users_sorted[:-1]) + 1] if len(data) else np.empty(0, np.int64)
    counts = np.diff(np.r_[starts, len(order)])
    return order, np.arange(len(order)) - np.repeat(starts, counts), np.repeat(counts, counts)


def _last_mask(data: Interactions, n: int) -> np.ndarray:
    """Each user's n newest events (ties: the later row), for users with more than n."""
    newest_first = np.lexsort((-np.arange(len(data)), -data.timestamps))
    key = np.empty(len(data), dtype=np.int64)
    key[newest_first] = np.arange(len(data))
    order, rank, count = _per_user_rank(data, key)
    mask = np.zeros(len(data), dtype=bool)
    mask[order[(rank < n) & (count > n)]] = True
    return mask


def _random_mask(data: Interactions, test_fraction: float, seed: int) -> np.ndarray:
    """A random `test_fraction` (at least one) of each user's events, for users with two or more."""
    order, rank, count = _per_user_rank(data, np.random.default_rng(seed).random(len(data)))
    n_test = np.where(count > 1, np.maximum(np.round(count * test_fraction), 1), 0)
    mask = np.zeros(len(data), dtype=bool)
    mask[order[rank < n_test]] = True
    return mask


def random_split(data: Interactions, test_fraction: float = 0.25, seed: int = 0) -> Split:
    """Per user, a random `test_fraction` of their events is test (users with a single event
    stay in training); the draw is reproducible with `seed`."""
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be in (0, 1)")
    test_mask = _random_mask(data, test_fraction, seed)
    return _make_split("random", data, ~test_mask, test_mask)


def mixed_split(data: Interactions, test_fraction: float = 0.1, seed: int = 0) -> Split:
    """Each user's last event AND a random `test_fraction` of their earlier ones are held out:
    a validation target that rewards the next item (short-term intent) and the rest of the
    user's taste alike, so weights chosen on it do not serve one kind of split only."""
    test_mask = _last_mask(data, 1)
    test_mask |= _random_mask(data, test_fraction, seed) & (np.bincount(data.users, minlength=data.n_users)[data.users] > 2)
    return _make_split("mixed", data, ~test_mask, test_mask)


def mixed_parts(split: Split) -> dict[str, Split]:
    """A mixed split's two targets apart, on the same training log: "next" holds each user's
    newest held-out event (the next item), "taste" the others (the rest of their taste)."""
    test = split.test
    order = np.lexsort((-np.arange(len(test)), -test.timestamps, test.users))  # per user, newest first
    first = np.r_[True, test.users[order][1:] != test.users[order][:-1]] if len(test) else np.zeros(0, bool)
    newest = np.zeros(len(test), dtype=bool)
    newest[order[first]] = True

    def part(name: str, mask: np.ndarray) -> Split:
        held = Holdout(test.users[mask], test.items[mask], test.values[mask], test.timestamps[mask],
                       test.n_known_items, test.n_items)
        return Split(f"{split.name}:{name}", split.train, held, split.cut_time, {"test_rows": int(mask.sum())})

    return {"next": part("next", newest), "taste": part("taste", ~newest)}


#: The three targets of :func:`targets_split`, in the order the validation reports them.
TARGETS = ("next", "taste", "time")


def targets_split(data: Interactions, period: float = 0.2, taste_fraction: float = 0.1, max_warm_start: int = 10,
                  seed: int = 0) -> dict[str, Split]:
    """Three validation targets held out of ONE training log (so every model is fitted once):

    * "time": every event in the latest `period` of the log (by timestamp); a user who first
      appears after the cut keeps a random 1..`max_warm_start` of their first events in training
      (a live system saw them first; a spread of short histories, not one length);
    * "next": each user's newest event before the cut (the next item);
    * "taste": a random `taste_fraction` of each user's other events before the cut (long-term taste).

    A default that must serve a next item, a returning user's taste and the present period
    learns on all three without being told which one a test asks for."""
    if not 0 < period < 1 or not 0 < taste_fraction < 1 or max_warm_start < 1:
        raise ValueError("period and taste_fraction must be in (0, 1), max_warm_start >= 1")
    rng = np.random.default_rng(seed)
    cut = float(np.quantile(data.timestamps, 1.0 - period, method="higher")) if len(data) else 0.0
    late = data.timestamps >= cut
    warm = rng.integers(1, max_warm_start + 1, size=max(data.n_users, 1))
    late &= ~_new_users_first(data, late, warm)
    early = np.flatnonzero(data.timestamps < cut)
    before = data.subset(data.timestamps < cut)
    next_rows = _last_mask(before, 1)
    many = np.bincount(before.users, minlength=before.n_users)[before.users] > 2
    taste_rows = _random_mask(before, taste_fraction, seed) & many & ~next_rows
    masks = {"time": late, "next": np.zeros(len(data), bool), "taste": np.zeros(len(data), bool)}
    masks["next"][early[next_rows]] = True
    masks["taste"][early[taste_rows]] = True
    held = masks["time"] | masks["next"] | masks["taste"]
    return {name: _make_split(f"validation-{name}", data, ~held, masks[name]) for name in TARGETS}


def make_split(data: Interactions, method: str, **params: float) -> Split:
    """Split by method name: "time" (test_fraction, warm_start), "leave-last-out" (n),
    "random" or "mixed" (test_fraction, seed)."""
    if method == "time":
        return time_split(data, **{k: (int(v) if k == "warm_start" else v) for k, v in params.items()})
    if method == "leave-last-out":
        return leave_last_out(data, **{k: int(v) for k, v in params.items()})
    if method in ("random", "mixed"):
        split_fn = random_split if method == "random" else mixed_split
        return split_fn(data, **{k: (int(v) if k == "seed" else v) for k, v in params.items()})
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
