"""Time-local EASE: EASE over a Gram matrix whose item pairs are weighted by how close in time
the two events of a user were.

Plain EASE counts every pair of a user's items alike, so two films rated in one sitting and two
rated years apart say the same. Here a pair (i, j) of one user's events at times t_i, t_j adds

    floor + (1 - floor) * exp(-|t_i - t_j| / time_scale)

to G_ij instead of 1 (the diagonal, an item with itself, stays the item's count), and EASE's
closed form is solved over that G: items consumed together predict each other more than items
that merely share a user. ``floor`` = 1 is plain EASE; ``floor`` = 0 keeps only the local pairs.
On MovieLens' validation splits (its users rate in sessions) a one-hour kernel lifted EASE by
about 4% on the random split's validation (docs/benchmarks.md, issue 18); the kernel width is
a parameter learned on validation (benchmarks/accuracy.py's GRIDS), not assumed.

Pairs further apart than CUTOFF_SCALES time scales weigh under exp(-CUTOFF_SCALES) of a close
pair and are left to the floor's plain X^T X term, so the pair sweep touches only nearby events
(MovieLens: ~8M pairs within 10 h, 0.4 s). Memory and fit time are dense EASE's (the Gram
matrix and its inverse: 4 n^2 bytes kept, ~3x that while fitting; 9.7k items: 0.37 GiB B) plus
the pair sweep's chunks (at most PAIR_CHUNK pairs at a time, ~100 MB). Past ``dense_max_items``
it is plain low-rank EASE (the kernel needs the dense Gram matrix): stated by ``fitted_variant``.
Scoring is EASE's: the user's history vector times B."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from pulserec.models.ease import EASE
from pulserec.models.interactions import Interactions
from pulserec.models.weighting import as_dense

#: Pairs at most this many time scales apart get the kernel; further ones only the floor.
CUTOFF_SCALES = 10.0
#: Pairs gathered before they are summed into the sparse accumulator (bounds the sweep's memory).
PAIR_CHUNK = 4_000_000


def first_events(data: Interactions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, items, times) of each user's first event per item, sorted by user, then time:
    the binary matrix's entries, each at the time the user first met the item."""
    order = np.lexsort((np.arange(len(data)), data.timestamps, data.items, data.users))
    users, items = data.users[order], data.items[order]
    first = np.r_[True, (users[1:] != users[:-1]) | (items[1:] != items[:-1])] if len(order) else np.zeros(0, bool)
    users, items, times = users[first], items[first], data.timestamps[order][first].astype(np.float64)
    by_time = np.lexsort((times, users))
    return users[by_time], items[by_time], times[by_time]


def local_pairs(users: np.ndarray, times: np.ndarray, cutoff: float):
    """Chunks of (left, right, dt) index pairs of one user's events at most `cutoff` apart,
    left before right, over events sorted by user then time. Offset d pairs event k with
    k + d; once a pair is out of reach, every larger offset from k is too, so k drops out."""
    active = np.arange(max(len(users) - 1, 0))
    left, right, gaps, held, offset = [], [], [], 0, 1
    while active.size:
        other = active + offset
        keep = other < len(users)
        active, other = active[keep], other[keep]
        dt = times[other] - times[active]
        keep = (users[other] == users[active]) & (dt <= cutoff)
        active, other, dt = active[keep], other[keep], dt[keep]
        left.append(active), right.append(other), gaps.append(dt)
        held += active.size
        if held >= PAIR_CHUNK:
            yield np.concatenate(left), np.concatenate(right), np.concatenate(gaps)
            left, right, gaps, held = [], [], [], 0
        offset += 1
    if held:
        yield np.concatenate(left), np.concatenate(right), np.concatenate(gaps)


def time_local_gram(data: Interactions, time_scale: float, floor: float) -> np.ndarray:
    """floor * X^T X + (1 - floor) * K (dense float32), K_ij = the sum over users of
    exp(-|dt| / time_scale) over their pairs of events of i and j, K_ii = the count of i.
    Each chunk's pairs are added in place to the dense matrix (np.add.at: repeated keys sum)."""
    users, items, times = first_events(data)
    n = data.n_items
    x = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=(data.n_users, n))
    gram = np.ascontiguousarray(floor * as_dense(x.T @ x)) if floor > 0 else np.zeros((n, n), np.float32)
    flat = gram.reshape(-1)  # a view: the pairs are added in place
    for left, right, dt in local_pairs(users, times, CUTOFF_SCALES * time_scale):
        a, b = items[left].astype(np.int64), items[right].astype(np.int64)
        weight = ((1.0 - floor) * np.exp(-dt / time_scale)).astype(np.float32)
        np.add.at(flat, a * n + b, weight)
        np.add.at(flat, b * n + a, weight)
    gram[np.diag_indices(n)] = np.bincount(items, minlength=n)
    return gram


class TimeLocalEASE(EASE):
    name: ClassVar[str] = "ease_local"

    def __init__(self, regularization: float = 300.0, time_scale: float = 3600.0, floor: float = 0.0,
                 binary: bool = True, variant: str = "auto", dense_max_items: int = 20_000,
                 rank: int = 256, seed: int = 0, recent_weight: float = 0.0, keep: int = 0) -> None:
        if not time_scale > 0 or not np.isfinite(time_scale):
            raise ValueError("time_scale must be a finite number of seconds > 0")
        if not 0.0 <= floor <= 1.0:
            raise ValueError("floor must be in [0, 1]")
        super().__init__(regularization=regularization, binary=binary, variant=variant,
                         dense_max_items=dense_max_items, rank=rank, seed=seed, recent_weight=recent_weight,
                         keep=keep)
        self.time_scale = float(time_scale)
        self.floor = float(floor)

    def gram(self, data: Interactions) -> np.ndarray:
        """The time-weighted Gram matrix (module docstring) of the whole training log."""
        return time_local_gram(data, self.time_scale, self.floor)
