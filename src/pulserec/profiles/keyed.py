"""Per-(owner, key) numbers for every owner at once, in sorted NumPy arrays instead of a dict
per owner (issue 17.2): the counters of `UserProfile` (devices, locations) and its decayed
scores (categories, tags) for a million users.

An entry's key is one int64, `owner << 32 | code`, so one owner's entries are one contiguous
range found by two binary searches. Storage is two sorted levels: `main` and a smaller `delta`
that new keys are inserted into (`np.insert` at `searchsorted` positions, O(delta) a batch);
the delta is merged into main once it outgrows `delta_limit`, so a batch costs O(batch x
log(main) + delta) and main is rewritten once per up to 512k new keys. A batch's entries for
a key that exists are combined in place, vectorised. Single events (the live path) queue in
`pending` lists and are folded in batches of `SETTLE_AT`, or before the next read.

Combining is associative, so batches and single events give one result in any grouping:
counters add; decayed scores keep (value, time of value) and combine as `DecayedCounter.add`
does (both decayed to the later time, then added).

An erased owner's entries (`erase`) get codes at or above `ERASED` right away (their values
zeroed: nothing of what they touched stays readable) and are dropped at the next merge."""

from __future__ import annotations

import math

import numpy as np

from pulserec.frozen import FrozenArrays

#: Codes at or above this mark erased entries (real codes are interned indices, far below).
ERASED = 1 << 31
#: Single-event entries wait in Python lists until this many, then fold as one batch.
SETTLE_AT = 1024
_LOW = (1 << 32) - 1


def keys_of(owners: np.ndarray, codes: np.ndarray) -> np.ndarray:
    return (owners.astype(np.int64) << 32) | codes.astype(np.int64)


class KeyedTable:
    """Sorted (owner, code) -> value (and, for decayed scores, time of value)."""

    __slots__ = ("rate", "keep_last", "main", "delta", "_pending", "frozen")

    def __init__(self, halflife: float | None = None, keep_last: int = 0) -> None:
        #: Decay rate of a decayed score per second; None: plain counters (added).
        self.rate = None if halflife is None else math.log(2.0) / halflife
        #: With keep_last, each merge keeps only an owner's `keep_last` highest codes (a log).
        self.keep_last = keep_last
        self.main = _empty()
        self.delta = _empty()
        self._pending: tuple[list[int], list[float], list[float]] = ([], [], [])
        #: A background snapshot reading this table (its in-place changes save before-images).
        self.frozen: FrozenArrays | None = None

    # -- writes -----------------------------------------------------------------------------
    def add(self, keys: np.ndarray, values: np.ndarray, ts: np.ndarray | None = None) -> None:
        """Fold entries (keys may repeat, any order) into the table."""
        if not len(keys):
            return
        keys, values, ts = self._aggregate(keys, np.asarray(values, dtype=np.float64),
                                           np.zeros(len(keys)) if ts is None else np.asarray(ts, dtype=np.float64))
        for level in (self.main, self.delta):
            if not len(keys) or not len(level[0]):
                continue
            pos = np.minimum(np.searchsorted(level[0], keys), len(level[0]) - 1)
            hit = level[0][pos] == keys
            at = pos[hit]
            if self.frozen is not None:
                self.frozen.before_write(level[1], at)
                self.frozen.before_write(level[2], at)
            level[1][at], level[2][at] = self._combine(level[1][at], level[2][at], values[hit], ts[hit])
            keys, values, ts = keys[~hit], values[~hit], ts[~hit]
        if len(keys):
            at = np.searchsorted(self.delta[0], keys)
            self.delta = tuple(np.insert(column, at, new) for column, new in zip(self.delta, (keys, values, ts)))
            if len(self.delta[0]) > self.delta_limit():
                self.merge()

    def add_one(self, key: int, value: float, ts: float = 0.0) -> None:
        keys, values, times = self._pending
        keys.append(key)
        values.append(value)
        times.append(ts)
        if len(keys) >= SETTLE_AT:
            self.settle()

    def settle(self) -> None:
        """Fold the pending single entries in."""
        keys, values, times = self._pending
        if keys:
            self._pending = ([], [], [])
            self.add(np.array(keys, dtype=np.int64), np.array(values), np.array(times))

    def delta_limit(self) -> int:
        return min(max(len(self.main[0]) // 8, 65_536), 524_288)

    def merge(self) -> None:
        """Fold the delta into main, dropping erased entries (and, for a log, the oldest)."""
        self.settle()
        delta = self.delta
        if len(delta[0]):
            at = np.searchsorted(self.main[0], delta[0])
            merged = tuple(np.insert(column, at, new) for column, new in zip(self.main, delta))
        else:
            merged = self.main
        live = (merged[0] & _LOW) < ERASED
        if self.keep_last:
            owners = merged[0] >> 32
            after = np.r_[owners[1:] != owners[:-1], True]  # last entry of each owner
            ends = np.flatnonzero(after)
            from_end = np.repeat(ends, np.diff(np.r_[-1, ends])) - np.arange(len(owners))
            live &= from_end < self.keep_last
        self.main = merged if live.all() else tuple(column[live] for column in merged)
        self.delta = _empty()

    def erase(self, owner: int) -> None:
        """Make an owner's entries unreadable now (zeroed, erased codes); dropped at the merge."""
        self.settle()
        for level in (self.main, self.delta):
            lo, hi = np.searchsorted(level[0], [owner << 32, (owner + 1) << 32])
            n = int(hi - lo)
            if n:
                if self.frozen is not None:
                    for column in level:
                        self.frozen.before_write(column, slice(int(lo), int(hi)))
                # Sorted and unique within the owner's range, above every real code.
                level[0][lo:hi] = (owner << 32) + (1 << 32) - n + np.arange(n)
                level[1][lo:hi] = 0.0
                level[2][lo:hi] = 0.0

    # -- reads ------------------------------------------------------------------------------
    def of(self, owner: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(codes, values, times) of one owner's live entries, by code (copies).

        An owner's range in one level is sorted by code, and erased codes (>= ERASED) sort after
        the live ones: with the owner in one level only (the usual case) its live entries are a
        prefix of its range, taken without the mask and the sort that two levels need (a profile
        read asks five tables; ~14-40 us each with them)."""
        self.settle()
        bounds = np.array([owner << 32, (owner + 1) << 32], dtype=np.int64)
        parts = []
        for level in (self.main, self.delta):
            lo, hi = level[0].searchsorted(bounds).tolist()
            if hi > lo:
                parts.append((level, lo, hi))
        if not parts:
            return np.empty(0, np.int64), np.empty(0), np.empty(0)
        if len(parts) == 1:
            (keys, values, times), lo, hi = parts[0]
            codes = keys[lo:hi] & _LOW
            live = int(codes.searchsorted(ERASED))
            return codes[:live], values[lo:lo + live].copy(), times[lo:lo + live].copy()
        keys, values, times = (np.concatenate([level[i][lo:hi] for level, lo, hi in parts]) for i in range(3))
        codes = keys & _LOW
        live = codes < ERASED
        order = np.argsort(codes[live], kind="stable")
        return codes[live][order], values[live][order], times[live][order]

    def __len__(self) -> int:
        return len(self.main[0]) + len(self.delta[0]) + len(self._pending[0])

    @property
    def nbytes(self) -> int:
        return sum(column.nbytes for level in (self.main, self.delta) for column in level)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every live entry, merged (keys, values, times): what a snapshot stores."""
        self.merge()
        return self.main

    def levels(self) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], tuple[list, list, list]]:
        """(main, delta, pending) as they are, registered with `frozen` (a background snapshot
        reads them as of now: call with writers held still; O(pending) copies)."""
        if self.frozen is not None:
            for column in (*self.main, *self.delta):
                self.frozen.track(column)
        return self.main, self.delta, tuple(list(column) for column in self._pending)  # type: ignore[return-value]

    def load(self, keys: np.ndarray, values: np.ndarray, ts: np.ndarray,
             delta: tuple[np.ndarray, ...] | None = None, pending: tuple[np.ndarray, ...] | None = None) -> None:
        """Fill from a snapshot: main (sorted, unique keys), and the delta and pending entries
        it held (merged here, as the next merge would have)."""
        for level in (keys, *(delta[:1] if delta else ())):
            if len(level) > 1 and not (np.diff(level) > 0).all():
                raise ValueError("profile table keys are not sorted and unique")
        self.main = (keys.astype(np.int64), values.astype(np.float64), ts.astype(np.float64))
        self.delta = _empty() if delta is None else tuple(c.astype(d) for c, d in zip(delta, (np.int64, np.float64, np.float64)))
        self._pending = ([], [], []) if pending is None else tuple(c.tolist() for c in pending)  # type: ignore[assignment]
        if delta is not None or pending is not None:
            self.merge()

    # -- combining --------------------------------------------------------------------------
    def _aggregate(self, keys: np.ndarray, values: np.ndarray, ts: np.ndarray):
        """One entry per distinct key, sorted, combined as single events would have been."""
        # One sort for both cases (np.unique's, then a stable argsort when the keys were all
        # distinct, sorted them twice): with no ties any sort is the stable order, and with
        # ties the groups and their entries' order (bincount sums in input order) are the same.
        order = np.argsort(keys)
        ordered = keys[order]
        first = np.r_[True, ordered[1:] != ordered[:-1]]
        if first.all():
            return ordered, values[order], ts[order]
        unique = ordered[first]
        inverse = np.empty(len(keys), dtype=np.int64)
        inverse[order] = np.cumsum(first) - 1
        if self.rate is None:
            return unique, np.bincount(inverse, weights=values, minlength=len(unique)), np.zeros(len(unique))
        latest = np.full(len(unique), -np.inf)
        np.maximum.at(latest, inverse, ts)
        decayed = values * np.exp(-self.rate * (latest[inverse] - ts))
        return unique, np.bincount(inverse, weights=decayed, minlength=len(unique)), latest

    def _combine(self, v1: np.ndarray, t1: np.ndarray, v2: np.ndarray, t2: np.ndarray):
        if self.rate is None:
            return v1 + v2, t1
        latest = np.maximum(t1, t2)
        return v1 * np.exp(-self.rate * (latest - t1)) + v2 * np.exp(-self.rate * (latest - t2)), latest


def _empty() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.float64)
